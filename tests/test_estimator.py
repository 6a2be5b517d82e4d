"""DiffMMRecommender: the scikit-learn contract, training behaviour, ablations and bad input."""

from __future__ import annotations

import logging
import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.utils import estimator_checks

from diffmm import DiffMMRecommender, PopularityRecommender, UnknownIdError, losses
from diffmm._diffusion_phases import DiffusionPhases
from diffmm._training import NonFiniteLossError
from diffmm.datasets import load_tiktok
from diffmm.model_selection import UserHoldoutSplit, make_ranking_scorer

FAST = {"denoiser_hidden_dims": (32,), "batch_size": 256, "embedding_dim": 16}


def small_model(**params) -> DiffMMRecommender:
    return DiffMMRecommender(**{**FAST, "epochs": 2, "random_state": 0, **params})


# -- scikit-learn conformance ------------------------------------------------------------------

APPLICABLE_CHECKS = [
    "check_no_attributes_set_in_init",
    "check_get_params_invariance",
    "check_set_params",
    "check_parameters_default_constructible",
]

NOT_APPLICABLE = {
    # Every check that calls fit(X, y) with a numeric feature matrix: our fit takes interaction
    # rows plus a required modality_features mapping, and X holds ids, not features.
    "check_fit2d_1sample": "fit needs interactions + modality_features, not (X, y)",
    "check_fit2d_predict1d": "predict takes (user, item) rows, not feature vectors",
    "check_estimators_dtypes": "X holds ids; dtype coercion is the id mapping's job",
    "check_dict_unchanged": "predict/transform on feature matrices does not apply",
    "check_methods_sample_order_invariance": "scores depend on ids, not row order of features",
    "check_n_features_in": "a recommender has no n_features_in_; items come from features",
    "check_fit_score_takes_y": "covered directly: score(X, y=None) ignores y (tested below)",
}


@pytest.mark.parametrize("check_name", APPLICABLE_CHECKS)
def test_sklearn_api_checks(check_name):
    check = getattr(estimator_checks, check_name)
    check(type(DiffMMRecommender()).__name__, DiffMMRecommender())


def test_not_applicable_checks_exist_and_are_explained():
    # The skip list names real checks, each with a reason.
    for name, reason in NOT_APPLICABLE.items():
        assert hasattr(estimator_checks, name), name
        assert len(reason) > 10


def test_init_only_stores_parameters():
    model = DiffMMRecommender(device="cuda:7", random_state=3)
    assert model.get_params()["device"] == "cuda:7"  # not probed or resolved in __init__
    assert not any(name.endswith("_") for name in vars(model))


def test_clone_and_set_params_roundtrip():
    model = small_model(contrastive="main_modal", temperature=0.2)
    twin = clone(model)
    assert twin.get_params() == model.get_params()
    twin.set_params(temperature=0.3)
    assert twin.temperature == 0.3 and model.temperature == 0.2


def test_presets_follow_the_spec():
    model = DiffMMRecommender.from_preset("tiktok")
    assert model.l2_weight == 1e-4 and model.projection == "linear"
    assert model.contrastive == "main_modal" and model.contrastive_weight == 1e-2
    assert DiffMMRecommender.from_preset("amazon-sports").temperature == 0.1
    tuned = DiffMMRecommender.from_preset("tiktok-tuned").get_params()
    spec = DiffMMRecommender.from_preset("tiktok").get_params()
    assert {k for k in tuned if tuned[k] != spec[k]} == {"generated_graph_weight"}
    with pytest.raises(ValueError, match="Unknown preset 'nope'"):
        DiffMMRecommender.from_preset("nope")


# -- fitting and the public API ----------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted(tiny_data):
    model = small_model(epochs=3)
    return model.fit(tiny_data.train, tiny_data.features, validation_data=tiny_data.validation)


def test_fitted_attributes(fitted, tiny_data):
    assert fitted.modalities_ == tuple(tiny_data.features)
    assert fitted.user_factors_.shape == (tiny_data.n_users, 16)
    assert fitted.item_factors_.shape == (tiny_data.n_items, 16)
    assert fitted.device_ == torch.device("cpu")
    assert len(fitted.history_) == 3
    assert np.isclose(sum(fitted.fusion_weights_.values()), 1.0)
    assert len(fitted.generated_graphs_) == 2
    record = fitted.history_[0]
    for key in (
        "loss_bpr",
        "loss_l2",
        "loss_contrastive",
        "loss_diffusion",
        "loss_alignment",
        "seconds_denoiser",
        "seconds_generation",
        "seconds_recommender",
        "seconds_evaluation",
        "validation_score",
    ):
        assert key in record and np.isfinite(record[key]), key


def test_predict_matches_recommend_scores(fitted):
    ids, scores = fitted.recommend([0, 5], n=4)
    pairs = np.column_stack([np.repeat([0, 5], 4), ids.ravel()])
    np.testing.assert_allclose(fitted.predict(pairs), scores.ravel(), rtol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_recommend_reuses_one_score_block_with_the_same_result(fitted):
    users = fitted.user_ids_
    full = fitted.user_factors_ @ fitted.item_factors_.T
    scratch = np.empty((4, fitted.n_items_), dtype=np.float32)
    block = fitted._score_block(np.arange(3), out=scratch[:3])
    assert np.shares_memory(block, scratch)
    np.testing.assert_allclose(block, full[:3], rtol=1e-5, atol=1e-6)
    # Chunks of 7 users through one scratch block rank like one chunk of every user.
    small = fitted.recommend(users, n=5, batch_size=7)
    large = fitted.recommend(users, n=5, batch_size=len(users))
    np.testing.assert_array_equal(small[0], large[0])
    np.testing.assert_allclose(small[1], large[1], rtol=1e-5)


def test_recommend_excludes_training_items(fitted, tiny_data):
    ids, _ = fitted.recommend(np.arange(tiny_data.n_users), n=10)
    seen = tiny_data.train
    for user in range(tiny_data.n_users):
        assert not set(ids[user]) & set(seen[user].indices)
    ids_all, _ = fitted.recommend([0], n=tiny_data.n_items, exclude_seen=False)
    assert sorted(ids_all[0]) == list(range(tiny_data.n_items))


def test_score_is_recall_at_20_by_default(fitted, tiny_data):
    result = fitted.evaluate(tiny_data.validation, metrics=("recall", "ndcg"), ks=(20,))
    assert fitted.score(tiny_data.validation) == pytest.approx(result["recall@20"])
    assert fitted.score(tiny_data.validation, metric="ndcg", k=20) == pytest.approx(
        result["ndcg@20"]
    )


def test_best_epoch_is_restored(tiny_data):
    model = small_model(epochs=4, patience=None)
    model.fit(tiny_data.train, tiny_data.features, validation_data=tiny_data.validation)
    scores = [r["validation_score"] for r in model.history_]
    assert model.best_epoch_ == int(np.argmax(scores)) + 1
    assert model.score(tiny_data.validation) == pytest.approx(max(scores))


def test_early_stopping_on_patience(tiny_data, monkeypatch):
    # A validation score that never improves after epoch 1 stops training after `patience`.
    model = small_model(epochs=10, patience=2)
    calls = iter([0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0])
    monkeypatch.setattr(
        DiffMMRecommender,
        "_validation_scorer",
        lambda self, matrix, held_out: lambda users, items: next(calls),
    )
    model.fit(tiny_data.train, tiny_data.features, validation_data=tiny_data.validation)
    assert len(model.history_) == 3
    assert model.stopped_early_ and model.best_epoch_ == 1


def test_same_random_state_gives_identical_recommendations(tiny_data):
    a = small_model().fit(tiny_data.train, tiny_data.features)
    b = small_model().fit(tiny_data.train, tiny_data.features)
    c = small_model(random_state=1).fit(tiny_data.train, tiny_data.features)
    users = np.arange(20)
    np.testing.assert_array_equal(a.recommend(users)[0], b.recommend(users)[0])
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    assert not np.array_equal(a.user_factors_, c.user_factors_)


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_pickle_roundtrip(fitted, tmp_path, dump):
    path = tmp_path / "model.bin"
    if dump == "pickle":
        path.write_bytes(pickle.dumps(fitted))
        loaded = pickle.loads(path.read_bytes())
    else:
        joblib.dump(fitted, path)
        loaded = joblib.load(path)
    users = fitted.user_ids_[:10]
    np.testing.assert_array_equal(loaded.recommend(users)[0], fitted.recommend(users)[0])
    np.testing.assert_allclose(loaded.recommend(users)[1], fitted.recommend(users)[1])


def test_dataframe_input_with_raw_ids(tiny_data):
    pd = pytest.importorskip("pandas")
    rows = tiny_data.interaction_rows("train")
    frame = pd.DataFrame({"user": [f"u{u}" for u in rows[:, 0]], "item": rows[:, 1]})
    features = {
        name: pd.DataFrame(values, index=np.arange(tiny_data.n_items))
        for name, values in tiny_data.features.items()
    }
    model = small_model(epochs=1).fit(frame, features)
    assert model.user_ids_[0].startswith("u")
    ids, _ = model.recommend(["u3"], n=3)
    assert ids.shape == (1, 3) and set(ids[0]) <= set(range(tiny_data.n_items))


def test_cold_items_from_feature_frames_are_in_the_catalogue(tiny_data):
    pd = pytest.importorskip("pandas")
    rows = tiny_data.interaction_rows("train")
    rows = rows[rows[:, 1] != 0]  # item 0 has features but no interaction
    features = {
        name: pd.DataFrame(values, index=np.arange(tiny_data.n_items))
        for name, values in tiny_data.features.items()
    }
    model = small_model(epochs=1).fit(rows, features)
    assert 0 in model.item_ids_ and model.n_items_ == tiny_data.n_items
    assert np.isfinite(model.predict([[rows[0, 0], 0]])).all()


# -- model selection ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_with_splitter_and_scorer(tiny_data, n_jobs):
    rows = tiny_data.interaction_rows("train")
    search = GridSearchCV(
        small_model(epochs=1),
        {"contrastive_weight": [0.0, 0.01]},
        cv=UserHoldoutSplit(n_splits=2, test_size=0.2, random_state=0),
        scoring=make_ranking_scorer("ndcg", k=10),
        n_jobs=n_jobs,
    )
    search.fit(rows, modality_features=tiny_data.features)
    assert search.best_params_["contrastive_weight"] in (0.0, 0.01)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.n_items_ == tiny_data.n_items


def test_cross_validate_default_scoring(tiny_data):
    rows = tiny_data.interaction_rows("train")
    result = cross_validate(
        small_model(epochs=1),
        rows,
        cv=UserHoldoutSplit(n_splits=2, random_state=0),
        params={"modality_features": tiny_data.features},
    )
    assert np.all((result["test_score"] >= 0) & (result["test_score"] <= 1))


# -- what the model learns ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted():
    from diffmm.datasets import make_synthetic

    return make_synthetic(n_users=400, n_items=300, interactions_per_user=15, random_state=3)


def _fit_recall(data, features, seed, **params):
    model = DiffMMRecommender(
        **{
            "denoiser_hidden_dims": (128,),
            "batch_size": 512,
            "epochs": 12,
            "random_state": seed,
            "contrastive": "main_modal",
            **params,
        }
    )
    model.fit(data.train, features)
    return model.score(data.validation, k=20)


def test_beats_popularity_on_planted_data(planted):
    popularity = PopularityRecommender().fit(planted.train).score(planted.validation, k=20)
    recall = _fit_recall(planted, planted.features, seed=0)
    assert recall > 1.3 * popularity, (recall, popularity)


def test_shuffled_modalities_do_worse(planted):
    rng = np.random.default_rng(0)
    order = rng.permutation(planted.n_items)
    shuffled = {name: values[order] for name, values in planted.features.items()}
    real = np.mean([_fit_recall(planted, planted.features, seed=s) for s in (0, 1)])
    broken = np.mean([_fit_recall(planted, shuffled, seed=s) for s in (0, 1)])
    assert real > broken + 0.01, (real, broken)


# -- ablation switches change what is computed ------------------------------------------------


def test_without_graph_generation_no_denoiser_work(tiny_data):
    model = small_model(generate_graphs=False)
    model.fit(tiny_data.train, tiny_data.features)
    assert model.generated_graphs_ is None
    assert all("seconds_denoiser" not in r and "loss_diffusion" not in r for r in model.history_)
    fresh = small_model(generate_graphs=False)
    fresh.fit(tiny_data.train, tiny_data.features)
    untrained = small_model(epochs=1, generate_graphs=True)
    # The denoisers are left at their initial weights.
    a = model.denoisers_[0].layers[0].weight
    b = fresh.denoisers_[0].layers[0].weight
    torch.testing.assert_close(a, b)
    assert untrained.generate_graphs


def test_no_contrastive_loss_when_disabled(tiny_data):
    model = small_model(contrastive=None).fit(tiny_data.train, tiny_data.features)
    assert all(r["loss_contrastive"] == 0.0 for r in model.history_)
    zero_weight = small_model(contrastive_weight=0.0).fit(tiny_data.train, tiny_data.features)
    np.testing.assert_allclose(model.user_factors_, zero_weight.user_factors_, rtol=1e-5)


def test_contrastive_schemes_differ(tiny_data):
    main = small_model(contrastive="main_modal").fit(tiny_data.train, tiny_data.features)
    modal = small_model(contrastive="modal_modal").fit(tiny_data.train, tiny_data.features)
    assert main.history_[0]["loss_contrastive"] != modal.history_[0]["loss_contrastive"]
    assert not np.allclose(main.user_factors_, modal.user_factors_)


def test_alignment_weight_zero_cuts_the_recommender_out_of_denoiser_training(tiny_data):
    # The alignment loss is the only path from the recommender into the denoisers: with
    # alignment_weight=0 the denoisers must not depend on the recommender's learning rate.
    def denoiser_weights(**params):
        model = small_model(epochs=2, **params).fit(tiny_data.train, tiny_data.features)
        return model.denoisers_[0].layers[-1].weight.detach().clone()

    off_a = denoiser_weights(alignment_weight=0.0, learning_rate=1e-3)
    off_b = denoiser_weights(alignment_weight=0.0, learning_rate=5e-2)
    on_a = denoiser_weights(alignment_weight=0.1, learning_rate=1e-3)
    on_b = denoiser_weights(alignment_weight=0.1, learning_rate=5e-2)
    torch.testing.assert_close(off_a, off_b)
    assert not torch.allclose(on_a, on_b)


def test_single_modality(tiny_data):
    name = next(iter(tiny_data.features))
    features = {name: tiny_data.features[name]}
    model = small_model(contrastive="main_modal").fit(tiny_data.train, features)
    assert model.modalities_ == (name,)
    with pytest.raises(ValueError, match="needs at least two"):
        small_model(contrastive="modal_modal").fit(tiny_data.train, features)


# -- training that goes wrong -----------------------------------------------------------------


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_weights(tiny_data, monkeypatch):
    real_bpr = losses.bpr_loss
    calls = {"n": 0}
    n_batches = int(np.ceil(tiny_data.train.nnz / FAST["batch_size"]))

    def flaky_bpr(*args):
        calls["n"] += 1
        value = real_bpr(*args)
        return value * float("nan") if calls["n"] > n_batches else value

    monkeypatch.setattr(losses, "bpr_loss", flaky_bpr)
    model = small_model(epochs=3)
    with pytest.raises(NonFiniteLossError, match="bpr loss became nan in epoch 2") as caught:
        model.fit(tiny_data.train, tiny_data.features)
    assert not hasattr(model, "user_factors_")  # the estimator is as it was: unfitted
    kept = caught.value.model  # the best weights so far, as a fitted model
    assert kept.best_epoch_ == 1
    assert np.all(np.isfinite(kept.user_factors_))
    _, scores = kept.recommend([0], n=3)
    assert np.all(np.isfinite(scores))


# -- progress and logging ----------------------------------------------------------------------


def test_verbose_shows_progress_bar(tiny_data, capsys):
    small_model(epochs=1, verbose=True).fit(tiny_data.train, tiny_data.features)
    assert "DiffMM" in capsys.readouterr().err


def test_quiet_training_logs_epochs(tiny_data, caplog):
    with caplog.at_level(logging.INFO, logger="diffmm"):
        small_model(epochs=2).fit(tiny_data.train, tiny_data.features)
    assert sum("epoch" in r.getMessage() for r in caplog.records) == 2


# -- devices -----------------------------------------------------------------------------------


def test_device_auto_resolves_without_changing_the_parameter(tiny_data):
    model = small_model(epochs=1).fit(tiny_data.train, tiny_data.features)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert model.device == "auto" and model.device_.type == expected


def test_unavailable_cuda_is_a_clear_error(tiny_data):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        small_model(device="cuda").fit(tiny_data.train, tiny_data.features)


def test_fit_on_each_device_unpickles_on_cpu(tiny_data, torch_device):
    model = small_model(epochs=1, device=torch_device).fit(tiny_data.train, tiny_data.features)
    assert model.device_.type == torch_device
    loaded = pickle.loads(pickle.dumps(model))
    assert all(p.device.type == "cpu" for p in loaded.network_.parameters())
    np.testing.assert_array_equal(loaded.recommend([0, 1])[0], model.recommend([0, 1])[0])


# -- bad input ---------------------------------------------------------------------------------


def test_modality_features_required(tiny_data):
    with pytest.raises(TypeError, match="modality_features is missing"):
        small_model().fit(tiny_data.train)
    with pytest.raises(ValueError, match="is empty"):
        small_model().fit(tiny_data.train, {})


def test_feature_row_count_must_match(tiny_data):
    bad = {k: v[:-1] for k, v in tiny_data.features.items()}
    with pytest.raises(ValueError, match="rows but the interactions have"):
        small_model().fit(tiny_data.train, bad)


def test_nan_features_rejected_and_input_untouched(tiny_data):
    bad = {k: v.copy() for k, v in tiny_data.features.items()}
    name = next(iter(bad))
    bad[name][3, 1] = np.nan
    before = bad[name].copy()
    with pytest.raises(ValueError, match="NaN or infinite"):
        small_model().fit(tiny_data.train, bad)
    np.testing.assert_array_equal(bad[name], before)


def test_interactions_with_items_lacking_features(tiny_data):
    pd = pytest.importorskip("pandas")
    rows = tiny_data.interaction_rows("train")
    features = {
        name: pd.DataFrame(values[1:], index=np.arange(1, tiny_data.n_items))
        for name, values in tiny_data.features.items()
    }
    rows = np.vstack([rows, [[0, 0]]])
    with pytest.raises(ValueError, match="have no features"):
        small_model().fit(rows, features)


def test_unknown_users(fitted):
    with pytest.raises(UnknownIdError, match="unknown user"):
        fitted.recommend([10_000])
    with pytest.raises(UnknownIdError, match="unknown user"):
        fitted.predict([[10_000, 0]])


def test_n_out_of_range(fitted, tiny_data):
    with pytest.raises(ValueError, match="n must be >= 1"):
        fitted.recommend([0], n=0)
    with pytest.warns(UserWarning, match="larger than the"):
        ids, _ = fitted.recommend([0], n=tiny_data.n_items + 5, exclude_seen=False)
    assert ids.shape == (1, tiny_data.n_items)


@pytest.mark.parametrize("method", ["predict", "recommend", "score"])
def test_not_fitted(method):
    model = DiffMMRecommender()
    with pytest.raises(NotFittedError):
        if method == "recommend":
            model.recommend([0])
        else:
            getattr(model, method)([[0, 0]])


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("epochs", 0, r"'epochs' parameter must be an int in the range \[1, inf\]"),
        ("edge_keep_rate", 0.0, r"'edge_keep_rate' parameter must be a float in the range \(0"),
        ("projection", "conv", r"'projection' parameter must be one of"),
        ("contrastive", "both", r"'contrastive' parameter must be one of"),
        ("temperature", -1.0, r"'temperature' parameter must be a float in the range \(0"),
        ("denoiser_hidden_dims", (), r"non-empty tuple of ints"),
        ("patience", 0, r"'patience' parameter must be an int in the range \[1, inf\] or None"),
        ("noise_min", 0.5, r"noise_min \(0.5\) must be smaller than noise_max"),
        ("graph_top_k", 10_000, r"graph_top_k \(10000\) is larger than the"),
    ],
)
def test_invalid_hyper_parameters(tiny_data, param, value, message):
    with pytest.raises(ValueError, match=message):
        small_model(**{param: value}).fit(tiny_data.train, tiny_data.features)


# -- real data ---------------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.slow
def test_tiktok_few_epochs_beat_popularity(tiktok_path):
    data = load_tiktok(tiktok_path)
    popularity = PopularityRecommender().fit(data.train, data.features)
    model = DiffMMRecommender.from_preset(
        "tiktok", epochs=3, denoiser_hidden_dims=(64,), random_state=0
    )
    model.fit(data.train, data.features)
    assert np.all(np.isfinite(model.user_factors_))
    assert model.score(data.validation) > popularity.score(data.validation)


# -- copy_features ----------------------------------------------------------------------------


def _shares_features(model, arrays) -> list[bool]:
    return _shares_features_of(model.network_, arrays)


def _shares_features_of(network, arrays) -> list[bool]:
    buffers = [network.modality_features(m).numpy() for m in range(network.n_modalities)]
    return [np.shares_memory(b, a) for b, a in zip(buffers, arrays, strict=True)]


def test_features_are_copied_by_default_and_referenced_on_request(tiny_data):
    features = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tiny_data.features.items()}
    copied = small_model(epochs=1).fit(tiny_data.train, features)
    shared = small_model(epochs=1, copy_features=False).fit(tiny_data.train, features)
    arrays = list(features.values())
    assert not any(_shares_features(copied, arrays))
    assert all(_shares_features(shared, arrays))
    # Same model either way, and the caller's arrays are left as they were.
    np.testing.assert_array_equal(copied.user_factors_, shared.user_factors_)
    for name, array in features.items():
        np.testing.assert_array_equal(array, tiny_data.features[name].astype(np.float32))


def test_training_reads_the_callers_arrays_and_copies_them_after(tiny_data, monkeypatch):
    # The model's own copy is made once training is over, so it never adds to the peak.
    features = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tiny_data.features.items()}
    seen = []
    real = DiffusionPhases.train_denoisers

    def spy(self):
        seen.append(_shares_features_of(self.network, list(features.values())))
        return real(self)

    monkeypatch.setattr(DiffusionPhases, "train_denoisers", spy)
    model = small_model(epochs=2).fit(tiny_data.train, features)
    assert seen == [[True, True], [True, True]]
    assert not any(_shares_features(model, features.values()))


def test_read_only_memory_maps_are_never_written(tiny_data, tmp_path):
    # The end of training restores the best epoch's weights; writing the features back then
    # would crash the process on a read-only memory map.
    maps = {}
    for name, values in tiny_data.features.items():
        np.save(tmp_path / f"{name}.npy", np.ascontiguousarray(values, dtype=np.float32))
        maps[name] = np.load(tmp_path / f"{name}.npy", mmap_mode="r")
    fit = {"validation_data": tiny_data.validation}
    referenced = small_model(epochs=3, copy_features=False).fit(tiny_data.train, maps, **fit)
    copied = small_model(epochs=3).fit(tiny_data.train, maps, **fit)
    assert all(_shares_features(referenced, maps.values()))
    assert not any(_shares_features(copied, maps.values()))
    np.testing.assert_array_equal(referenced.user_factors_, copied.user_factors_)


def test_copy_features_false_copies_what_it_cannot_reference(tiny_data):
    # float64 input is converted (a copy); a read-only float32 array (as from a read-only
    # memory map) is referenced without a warning about non-writable arrays.
    as64 = {k: np.asarray(v, dtype=np.float64) for k, v in tiny_data.features.items()}
    model = small_model(epochs=1, copy_features=False).fit(tiny_data.train, as64)
    assert not any(_shares_features(model, as64.values()))
    frozen = {k: np.array(v, dtype=np.float32) for k, v in tiny_data.features.items()}
    for array in frozen.values():
        array.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = small_model(epochs=1, copy_features=False).fit(tiny_data.train, frozen)
    assert all(_shares_features(model, frozen.values()))
    with pytest.raises(ValueError, match="copy_features"):
        small_model(copy_features="yes").fit(tiny_data.train, frozen)
