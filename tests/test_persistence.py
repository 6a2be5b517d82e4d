"""Saving and loading, checkpoints and resume, interrupts: nothing lost, nothing unsafe."""

from __future__ import annotations

import json
import os
import pickle
import warnings
import zipfile

import numpy as np
import pytest
import torch

from diffmm import DiffMMRecommender, ModelFileError, PopularityRecommender, estimator
from diffmm._persistence import FORMAT_VERSION, pack, read_archive, unpack, write_archive
from diffmm._training import Trainer

FAST = {"denoiser_hidden_dims": (16,), "batch_size": 128, "embedding_dim": 8, "random_state": 0}


@pytest.fixture(scope="module")
def model(tiny_data):
    return DiffMMRecommender(epochs=2, **FAST).fit(
        tiny_data.train, tiny_data.features, validation_data=tiny_data.validation
    )


def test_save_load_gives_identical_model(model, tiny_data, tmp_path):
    path = model.save(tmp_path / "model.diffmm")
    loaded = DiffMMRecommender.load(path)
    users = model.user_ids_
    ids, scores = model.recommend(users, n=10)
    loaded_ids, loaded_scores = loaded.recommend(users, n=10)
    np.testing.assert_array_equal(ids, loaded_ids)
    np.testing.assert_array_equal(scores, loaded_scores)
    assert loaded.score(tiny_data.validation) == model.score(tiny_data.validation)
    assert loaded.get_params() == model.get_params()
    assert loaded.history_ == model.history_
    assert loaded.modalities_ == model.modalities_
    assert loaded.fusion_weights_ == pytest.approx(model.fusion_weights_)
    saved, original = loaded.network_.state_dict(), model.network_.state_dict()
    assert saved.keys() == original.keys()
    for key in saved:
        assert np.array_equal(saved[key].numpy(), original[key].numpy())
    for g, h in zip(loaded.generated_graphs_, model.generated_graphs_, strict=True):
        assert (g != h).nnz == 0


def test_features_are_saved_beside_the_network(model, tmp_path):
    loaded = DiffMMRecommender.load(model.save(tmp_path / "model.diffmm"))
    assert not any(k.startswith("features_") for k in model.network_.state_dict())
    for m in range(len(model.modalities_)):
        np.testing.assert_array_equal(
            loaded.network_.modality_features(m).numpy(), model.network_.modality_features(m)
        )


def _format_1(tree: dict) -> dict:
    """The same content the way format 1 laid it out: features inside the network's state."""
    state = tree["fitted"] if "fitted" in tree else tree
    features = state.pop("features")
    state["feature_shapes"] = tuple(tuple(f.shape) for f in features)
    state["network"] = {
        **state["network"],
        **{f"features_{m}": f for m, f in enumerate(features)},
    }
    return tree


def test_format_1_model_files_still_load(model, tmp_path, monkeypatch):
    import diffmm._persistence as persistence

    monkeypatch.setattr(persistence, "FORMAT_VERSION", 1)
    old = {
        "class": "DiffMMRecommender",
        "params": model.get_params(deep=False),
        "fitted": model._fitted_state(),
    }
    path = write_archive(tmp_path / "old.diffmm", _format_1(old), kind="model")
    monkeypatch.undo()
    assert read_archive(path, kind="model")[1]["format_version"] == 1
    loaded = DiffMMRecommender.load(path)
    np.testing.assert_array_equal(loaded.recommend([0, 1])[0], model.recommend([0, 1])[0])
    for m in range(len(model.modalities_)):
        np.testing.assert_array_equal(
            loaded.network_.modality_features(m).numpy(), model.network_.modality_features(m)
        )


def test_file_holds_json_and_safetensors_only(model, tmp_path):
    path = model.save(tmp_path / "model.diffmm")
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["diffmm.json", "tensors.safetensors"]
        header = json.loads(archive.read("diffmm.json"))
    assert header["format_version"] == FORMAT_VERSION and header["kind"] == "model"
    assert header["content"]["__dict__"]["class"] == "DiffMMRecommender"


def test_string_and_mixed_ids_roundtrip(tmp_path):
    rows = np.array([["a", 1], ["b", 2], ["a", 2], ["c", 0]], dtype=object)
    popularity = PopularityRecommender().fit(rows)
    loaded = PopularityRecommender.load(popularity.save(tmp_path / "p.diffmm"))
    np.testing.assert_array_equal(loaded.user_ids_, popularity.user_ids_)
    np.testing.assert_array_equal(
        loaded.recommend(["a"], n=2)[0], popularity.recommend(["a"], n=2)[0]
    )


def test_pack_roundtrip():
    tree = {
        "a": (1, 2.5, None, True),
        3: [np.arange(4), np.array(["x", "y"])],
        "nested": {"t": np.ones((2, 2), dtype=np.float32)},
    }
    meta, tensors = pack(tree)
    json.dumps(meta)
    back = unpack(meta, tensors)
    assert back["a"] == (1, 2.5, None, True)
    np.testing.assert_array_equal(back[3][0], np.arange(4))
    np.testing.assert_array_equal(back[3][1], ["x", "y"])
    np.testing.assert_array_equal(back["nested"]["t"], np.ones((2, 2)))


def test_unsaveable_ids_are_refused(tmp_path):
    with pytest.raises(TypeError, match="Only integer or string ids"):
        pack({"ids": np.array([1.5, "a", (1, 2)], dtype=object)})


def test_newer_format_is_refused(tmp_path, monkeypatch):
    import diffmm._persistence as persistence

    monkeypatch.setattr(persistence, "FORMAT_VERSION", FORMAT_VERSION + 1)
    path = write_archive(tmp_path / "future.diffmm", {"x": 1}, kind="model")
    monkeypatch.setattr(persistence, "FORMAT_VERSION", FORMAT_VERSION)
    with pytest.raises(ModelFileError, match="newer than the format"):
        read_archive(path, kind="model")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "tensors"])
def test_corrupted_file_is_a_clear_error(model, tmp_path, damage):
    path = model.save(tmp_path / "model.diffmm")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a model at all")
    else:
        with zipfile.ZipFile(path) as archive:
            header = archive.read("diffmm.json")
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("diffmm.json", header)
            archive.writestr("tensors.safetensors", b"\x00" * 64)
    with pytest.raises(ModelFileError):
        DiffMMRecommender.load(path)


def test_loading_with_the_wrong_class_or_kind(model, tmp_path):
    path = model.save(tmp_path / "model.diffmm")
    with pytest.raises(ModelFileError, match="not a PopularityRecommender"):
        PopularityRecommender.load(path)
    with pytest.raises(ModelFileError, match="not a 'checkpoint'"):
        read_archive(path, kind="checkpoint")
    with pytest.raises(FileNotFoundError):
        DiffMMRecommender.load(tmp_path / "absent.diffmm")


def test_crash_mid_save_leaves_previous_file_intact(model, tmp_path, monkeypatch):
    path = model.save(tmp_path / "model.diffmm")
    before = path.read_bytes()
    import diffmm._persistence as persistence

    def exploding_save(tensors):
        raise OSError("disk full")

    monkeypatch.setattr(persistence, "save_arrays", exploding_save)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.diffmm"]  # no temporary file left behind


def test_save_before_fit_raises(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        DiffMMRecommender().save(tmp_path / "m.diffmm")


def test_pickle_still_works(model):
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.recommend([0])[0], model.recommend([0])[0])


# -- checkpoints and resume --------------------------------------------------------------------


@pytest.mark.parametrize("with_validation", [True, False])
def test_resume_reaches_the_uninterrupted_result(tiny_data, tmp_path, with_validation):
    validation = tiny_data.validation if with_validation else None
    full = DiffMMRecommender(epochs=4, **FAST).fit(
        tiny_data.train, tiny_data.features, validation_data=validation
    )
    DiffMMRecommender(epochs=2, checkpoint_dir=tmp_path, **FAST).fit(
        tiny_data.train, tiny_data.features, validation_data=validation
    )
    resumed = DiffMMRecommender(epochs=4, **FAST).fit(
        tiny_data.train, tiny_data.features, validation_data=validation, resume_from=tmp_path
    )
    np.testing.assert_array_equal(resumed.user_factors_, full.user_factors_)
    np.testing.assert_array_equal(resumed.item_factors_, full.item_factors_)
    assert resumed.best_epoch_ == full.best_epoch_
    drop = {"seconds_denoiser", "seconds_generation", "seconds_recommender", "seconds_evaluation"}
    strip = [{k: v for k, v in r.items() if k not in drop} for r in full.history_]
    assert [{k: v for k, v in r.items() if k not in drop} for r in resumed.history_] == strip


def test_format_1_checkpoints_still_resume(tiny_data, tmp_path):
    full = DiffMMRecommender(epochs=3, **FAST).fit(tiny_data.train, tiny_data.features)
    DiffMMRecommender(epochs=2, checkpoint_dir=tmp_path, **FAST).fit(
        tiny_data.train, tiny_data.features
    )
    path = tmp_path / "checkpoint.diffmm"
    tree, _ = read_archive(path, kind="checkpoint")
    features = [
        torch.from_numpy(tiny_data.features[m].astype(np.float32)) for m in tiny_data.modalities
    ]
    for key in ("best", "last_good"):  # format 1 snapshots held the features too
        snapshot = tree["state"]["result"][key]
        if snapshot is not None:
            snapshot["network"].update({f"features_{m}": f for m, f in enumerate(features)})
    write_archive(path, tree, kind="checkpoint")
    resumed = DiffMMRecommender(epochs=3, **FAST).fit(
        tiny_data.train, tiny_data.features, resume_from=tmp_path
    )
    np.testing.assert_array_equal(resumed.user_factors_, full.user_factors_)


def test_checkpoint_every_n_epochs(tiny_data, tmp_path, monkeypatch):
    written = []
    real = estimator.write_checkpoint

    def spy(folder, trainer, result, **kwargs):
        written.append(result.epoch)
        return real(folder, trainer, result, **kwargs)

    monkeypatch.setattr(estimator, "write_checkpoint", spy)
    DiffMMRecommender(epochs=5, checkpoint_dir=tmp_path, checkpoint_every=2, **FAST).fit(
        tiny_data.train, tiny_data.features
    )
    assert written == [2, 4, 5]
    assert (tmp_path / "checkpoint.diffmm").is_file()


def test_resume_refuses_other_data_or_settings(tiny_data, tmp_path):
    DiffMMRecommender(epochs=1, checkpoint_dir=tmp_path, **FAST).fit(
        tiny_data.train, tiny_data.features
    )
    other = {k: v[::-1].copy() for k, v in tiny_data.features.items()}
    with pytest.raises(ValueError, match="other training data"):
        DiffMMRecommender(epochs=2, **FAST).fit(tiny_data.train, other, resume_from=tmp_path)
    with pytest.raises(ValueError, match=r"different hyper-parameters \['temperature'\]"):
        DiffMMRecommender(epochs=2, temperature=0.1, **FAST).fit(
            tiny_data.train, tiny_data.features, resume_from=tmp_path
        )


# -- interrupts --------------------------------------------------------------------------------


def _interrupt_in_epoch(monkeypatch, epoch_to_interrupt):
    real = Trainer.recommender_epoch
    calls = {"n": 0}

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == epoch_to_interrupt:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(Trainer, "recommender_epoch", interrupted)


def test_ctrl_c_keeps_best_weights_and_warns(tiny_data, monkeypatch):
    reference = DiffMMRecommender(epochs=2, **FAST).fit(tiny_data.train, tiny_data.features)
    _interrupt_in_epoch(monkeypatch, 3)
    model = DiffMMRecommender(epochs=5, **FAST)
    with pytest.warns(UserWarning, match="interrupted after epoch 2"):
        model.fit(tiny_data.train, tiny_data.features)
    assert model.interrupted_ and model.best_epoch_ == 2 and len(model.history_) == 2
    # The weights are exactly those at the end of epoch 2, not a half-updated epoch 3.
    np.testing.assert_array_equal(model.user_factors_, reference.user_factors_)
    assert model.recommend([0], n=3)[0].shape == (1, 3)


def test_ctrl_c_before_any_epoch_propagates(tiny_data, monkeypatch):
    _interrupt_in_epoch(monkeypatch, 1)
    model = DiffMMRecommender(epochs=3, **FAST)
    with warnings.catch_warnings(), pytest.raises(KeyboardInterrupt):
        model.fit(tiny_data.train, tiny_data.features)
    assert not hasattr(model, "user_factors_")
