"""Tests for diffmm.datasets."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from diffmm.datasets import (
    MultiModalDataset,
    load_diffmm_format,
    load_mmrec_format,
    load_tiktok,
    make_synthetic,
)

TIKTOK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tiktok"


# ----------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------


def _pairs(matrix: sp.csr_matrix) -> set[tuple[int, int]]:
    coo = matrix.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))


def _assert_canonical_binary(matrix: sp.csr_matrix) -> None:
    assert isinstance(matrix, sp.csr_matrix)
    assert matrix.dtype == np.float32
    assert matrix.has_sorted_indices
    assert np.all(matrix.data == 1.0)
    copy = matrix.copy()
    copy.sum_duplicates()
    assert copy.nnz == matrix.nnz


def _dump(obj: object, file: Path) -> None:
    with open(file, "wb") as fh:
        pickle.dump(obj, fh)


@pytest.fixture(scope="module")
def synth() -> MultiModalDataset:
    return make_synthetic(random_state=0, test_fraction=0.1)


# ----------------------------------------------------------------------------------
# container
# ----------------------------------------------------------------------------------


def test_container_binarises_and_canonicalises():
    train = sp.coo_matrix(
        ([3.0, 1.0, 0.0, 2.5, -1.0], ([1, 1, 0, 0, 1], [2, 2, 1, 0, 0])), shape=(2, 3)
    )
    ds = MultiModalDataset(
        train=train,
        features={"a": np.arange(6, dtype=np.float16).reshape(3, 2)},
        validation=np.array([[0, 0, 1], [0, 4, 0]]),
        name="toy",
    )
    _assert_canonical_binary(ds.train)
    _assert_canonical_binary(ds.validation)
    assert _pairs(ds.train) == {(0, 0), (1, 0), (1, 2)}  # explicit zero dropped
    assert ds.n_users == 2 and ds.n_items == 3
    assert ds.modalities == ("a",)
    assert ds.features["a"].dtype == np.float32
    rows = ds.interaction_rows()
    assert rows.dtype == np.int64 and rows.shape == (3, 2)
    assert rows.tolist() == [[0, 0], [1, 0], [1, 2]]
    assert ds.interaction_rows("validation").tolist() == [[0, 2], [1, 1]]
    text = repr(ds)
    assert "n_users=2" in text and "n_items=3" in text and "a: 3x2" in text
    assert "test=None" in text


def test_container_does_not_mutate_input():
    train = sp.csr_matrix(np.array([[2.0, 0.0], [0.0, 5.0]]))
    MultiModalDataset(train=train, features={})
    assert train.data.tolist() == [2.0, 5.0]


def test_container_validation_errors():
    train = sp.csr_matrix(np.eye(3))
    with pytest.raises(ValueError, match="same"):
        MultiModalDataset(train=train, features={}, validation=sp.csr_matrix((3, 4)))
    with pytest.raises(ValueError, match="rows but there are 3 items"):
        MultiModalDataset(train=train, features={"x": np.zeros((2, 5))})
    with pytest.raises(ValueError, match="non-finite"):
        MultiModalDataset(train=train, features={"x": np.full((3, 2), np.nan)})
    with pytest.raises(ValueError, match="2-D"):
        MultiModalDataset(train=train, features={"x": np.zeros(3)})
    ds = MultiModalDataset(train=train, features={})
    with pytest.raises(ValueError, match="not available"):
        ds.interaction_rows("test")
    with pytest.raises(ValueError, match="split must be one of"):
        ds.interaction_rows("bogus")


def test_module_does_not_import_pandas():
    code = (
        "import sys, diffmm; before = 'pandas' in sys.modules; "
        "import diffmm.datasets; "
        "assert before or 'pandas' not in sys.modules, 'pandas imported'"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        env={"PYTHONPATH": src, "PATH": ""},
        capture_output=True,
    )


# ----------------------------------------------------------------------------------
# synthetic generator
# ----------------------------------------------------------------------------------


def test_synthetic_shapes_and_types(synth):
    ds = synth
    assert ds.train.shape == (600, 400)
    assert ds.validation.shape == ds.train.shape == ds.test.shape
    assert ds.modalities == ("visual", "acoustic")
    assert ds.features["visual"].shape == (400, 64)
    assert ds.features["acoustic"].shape == (400, 32)
    for arr in ds.features.values():
        assert arr.dtype == np.float32 and np.all(np.isfinite(arr))
    for matrix in (ds.train, ds.validation, ds.test):
        _assert_canonical_binary(matrix)
    assert ds.info["user_factors"].shape == (600, 16)
    assert ds.info["item_factors"].shape == (400, 16)
    assert ds.info["modality_weights"]["visual"].shape == (16, 64)
    assert len(ds.info["modality_only_factors"]) == round(0.3 * 16)
    assert ds.name == "synthetic" and ds.missing == ()


def test_synthetic_splits(synth):
    ds = synth
    assert np.all(ds.train.getnnz(axis=1) >= 1)
    tr, va, te = _pairs(ds.train), _pairs(ds.validation), _pairs(ds.test)
    assert not (tr & va) and not (tr & te) and not (va & te)
    total = np.asarray((ds.train + ds.validation + ds.test).getnnz(axis=1))
    assert total.min() >= 3
    assert abs(total.mean() - 20) < 2
    frac_val = ds.validation.nnz / total.sum()
    frac_test = ds.test.nnz / total.sum()
    assert 0.15 < frac_val < 0.25 and 0.05 < frac_test < 0.15


def test_synthetic_defaults_have_no_test_split():
    ds = make_synthetic(n_users=40, n_items=30, random_state=1)
    assert ds.test is None and ds.validation is not None
    ds = make_synthetic(n_users=40, n_items=30, validation_fraction=0.0, random_state=1)
    assert ds.validation is None
    assert np.all(ds.train.getnnz(axis=1) >= 3)


def test_synthetic_determinism():
    a = make_synthetic(n_users=80, n_items=60, random_state=7)
    b = make_synthetic(n_users=80, n_items=60, random_state=7)
    c = make_synthetic(n_users=80, n_items=60, random_state=8)
    assert (a.train != b.train).nnz == 0 and (a.validation != b.validation).nnz == 0
    for key in a.features:
        np.testing.assert_array_equal(a.features[key], b.features[key])
    np.testing.assert_array_equal(a.info["item_factors"], b.info["item_factors"])
    assert (a.train != c.train).nnz > 0
    assert not np.array_equal(a.features["visual"], c.features["visual"])


def test_synthetic_does_not_touch_global_rng():
    np.random.seed(123)  # noqa: NPY002 - checks the legacy global RNG
    expected = np.random.random()  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002 - checks the legacy global RNG
    make_synthetic(n_users=20, n_items=15, random_state=0)
    assert np.random.random() == expected  # noqa: NPY002


def test_synthetic_small_and_custom_modalities():
    ds = make_synthetic(
        n_users=5,
        n_items=2,
        n_factors=3,
        modality_dims={"text": 1},
        interactions_per_user=10,
        random_state=0,
    )
    assert ds.modalities == ("text",) and ds.features["text"].shape == (2, 1)
    assert np.all(ds.train.getnnz(axis=1) >= 1)
    total = (ds.train + ds.validation).getnnz(axis=1)
    assert np.all(total == 2)  # capped at n_items


def test_synthetic_ground_truth_recovers_held_out(synth):
    ds = synth
    p, v = ds.info["user_factors"], ds.info["item_factors"]
    scores = p @ v.T
    seen = ds.train.toarray() > 0
    held = ds.validation.toarray() > 0
    scores[seen] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :20]
    users = held.sum(axis=1) > 0
    recall = (np.take_along_axis(held, top, axis=1).sum(axis=1) / np.maximum(held.sum(1), 1))[
        users
    ].mean()
    random_recall = 20 / (ds.n_items - seen.sum(axis=1).mean())
    assert recall > 5 * random_recall


def _ridge_r2(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = x.shape[0]
    perm = rng.permutation(n)
    fit, ev = perm[: n // 2], perm[n // 2 :]
    x = np.hstack([x, np.ones((n, 1))])
    w = np.linalg.solve(x[fit].T @ x[fit] + np.eye(x.shape[1]), x[fit].T @ y[fit])
    resid = ((y[ev] - x[ev] @ w) ** 2).sum(axis=0)
    total = ((y[ev] - y[ev].mean(axis=0)) ** 2).sum(axis=0)
    return 1 - resid / total


def test_synthetic_features_encode_all_factors(synth):
    ds = synth
    v = ds.info["item_factors"]
    for key in ds.modalities:
        r2 = _ridge_r2(ds.features[key].astype(np.float64), v, np.random.default_rng(0))
        assert r2.mean() > 0.5, key
        # every factor, including the modality-only ones, is visible in the features
        assert r2[ds.info["modality_only_factors"]].min() > 0.2, key
    noisy = make_synthetic(random_state=0, feature_noise=50.0)
    r2 = _ridge_r2(noisy.features["visual"].astype(np.float64), v, np.random.default_rng(0))
    assert r2.mean() < 0.2


def test_synthetic_collaborative_factors_cluster(synth):
    info = synth.info
    v, clusters = info["item_factors"], info["item_clusters"]
    for cols, shared in (
        (info["collaborative_factors"], True),
        (info["modality_only_factors"], False),
    ):
        within = []
        for c in np.unique(clusters):
            members = v[clusters == c][:, cols]
            if len(members) > 1:
                within.append(members.var(axis=0).mean())
        ratio = np.mean(within) / v[:, cols].var(axis=0).mean()
        assert (ratio < 0.3) if shared else (ratio > 0.6)


def test_synthetic_popularity_skew_concentrates_interactions():
    flat = make_synthetic(popularity_skew=0.0, random_state=3)
    skewed = make_synthetic(popularity_skew=3.0, random_state=3)

    def top_share(ds):
        counts = np.sort(np.asarray(ds.train.sum(axis=0)).ravel())[::-1]
        return counts[: ds.n_items // 10].sum() / counts.sum()

    assert top_share(skewed) > top_share(flat) + 0.1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_users": 0}, "n_users must be an integer >= 1"),
        ({"n_items": -3}, "n_items must be an integer >= 1"),
        ({"n_items": 2.5}, "n_items must be an integer"),
        ({"n_factors": True}, "n_factors must be an integer"),
        ({"interactions_per_user": 0}, "interactions_per_user"),
        ({"modality_dims": {}}, "modality_dims must be a non-empty"),
        ({"modality_dims": {"v": 0}}, r"modality_dims\['v'\]"),
        ({"modality_dims": {"": 3}}, "modality names"),
        ({"modality_only_signal": 1.0}, "modality_only_signal must lie in"),
        ({"modality_only_signal": -0.1}, "modality_only_signal must lie in"),
        ({"feature_noise": -1.0}, "feature_noise"),
        ({"popularity_skew": float("nan")}, "popularity_skew"),
        ({"temperature": 0.0}, "temperature"),
        ({"validation_fraction": 1.0}, "validation_fraction must lie in"),
        ({"test_fraction": -0.5}, "test_fraction must lie in"),
        ({"validation_fraction": 0.6, "test_fraction": 0.4}, "must be < 1"),
        ({"n_item_clusters": 0}, "n_item_clusters"),
    ],
)
def test_synthetic_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_synthetic(**kwargs)


# ----------------------------------------------------------------------------------
# DiffMM format
# ----------------------------------------------------------------------------------


def _write_diffmm(
    folder: Path, *, with_val: bool = True, with_test: bool = True
) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    train = np.array([[1, 0, 1, 0], [0, 2, 0, 0], [1, 1, 0, 0]], dtype=np.float64)
    # coo with a duplicate entry and a weighted value
    coo = sp.coo_matrix(
        ([1.0, 1.0, 1.0, 2.0, 1.0, 1.0], ([0, 0, 0, 1, 2, 2], [0, 0, 2, 1, 0, 1])),
        shape=(3, 4),
    )
    _dump(coo, folder / "trnMat.pkl")
    if with_val:
        _dump(
            sp.csc_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0.5]])),
            folder / "valMat.pkl",
        )
    if with_test:
        _dump(
            sp.csr_matrix(np.array([[0, 0, 0, 1.0], [1, 0, 0, 0], [0, 0, 1, 0]])),
            folder / "tstMat.pkl",
        )
    image = np.full((4, 8), 60000, dtype=np.float16)  # float16 sum would overflow
    audio = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(folder / "image_feat.npy", image)
    np.save(folder / "audio_feat.npy", audio)
    return {"train": train, "image": image, "audio": audio}


def test_diffmm_reader_roundtrip(tmp_path):
    expected = _write_diffmm(tmp_path / "toy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_diffmm_format(tmp_path / "toy")
    assert ds.name == "toy" and ds.missing == ()
    assert ds.train.shape == (3, 4)
    np.testing.assert_array_equal(ds.train.toarray(), (expected["train"] > 0).astype(np.float32))
    for matrix in (ds.train, ds.validation, ds.test):
        _assert_canonical_binary(matrix)
    assert _pairs(ds.validation) == {(0, 1), (1, 3), (2, 3)}
    assert ds.modalities == ("audio", "image")
    img = ds.features["image"]
    assert img.dtype == np.float32
    with np.errstate(over="ignore"):
        assert np.isinf(expected["image"].sum(dtype=np.float16))  # the trap is real
    assert np.isfinite(img.sum()) and img.sum() == pytest.approx(60000.0 * 32)
    np.testing.assert_array_equal(ds.features["audio"], expected["audio"])
    assert set(ds.info["files"]) == {"train", "validation", "test", "image", "audio"}


def test_diffmm_reader_alternative_and_explicit_names(tmp_path):
    folder = tmp_path / "alt"
    folder.mkdir()
    mat = sp.coo_matrix(np.eye(3))
    _dump(mat, folder / "train_mat.pkl")
    _dump(mat, folder / "val_mat.pkl")
    _dump(mat, folder / "test.pkl")
    _dump(sp.coo_matrix(np.ones((3, 3))), folder / "other.pkl")
    with pytest.warns(UserWarning, match="no modalities"):
        ds = load_diffmm_format(folder)
    assert ds.train.nnz == 3 and ds.validation.nnz == 3 and ds.test.nnz == 3
    ds = load_diffmm_format(folder, train_file="other.pkl", modalities=[])
    assert ds.train.nnz == 9 and ds.modalities == ()
    with pytest.raises(FileNotFoundError, match=re.escape("nope.pkl")):
        load_diffmm_format(folder, test_file="nope.pkl")


def test_diffmm_reader_missing_splits_and_modalities(tmp_path):
    _write_diffmm(tmp_path / "d", with_val=False, with_test=False)
    with pytest.warns(UserWarning) as record:
        ds = load_diffmm_format(tmp_path / "d", modalities=["image", "text"])
    messages = " ".join(str(w.message) for w in record)
    assert "validation" in messages and "test" in messages and "text" in messages
    assert ds.validation is None and ds.test is None
    assert ds.modalities == ("image",)
    assert set(ds.missing) == {"validation", "test", "text"}
    assert record[0].filename == __file__  # warning points at the caller


def test_diffmm_reader_selects_single_modality(tmp_path):
    _write_diffmm(tmp_path / "d")
    ds = load_diffmm_format(tmp_path / "d", modalities="image")
    assert ds.modalities == ("image",) and ds.missing == ()


def test_diffmm_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        load_diffmm_format(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape("trnMat.pkl")):
        load_diffmm_format(empty)

    bad_rows = tmp_path / "rows"
    _write_diffmm(bad_rows)
    np.save(bad_rows / "image_feat.npy", np.zeros((5, 8), dtype=np.float16))
    with pytest.raises(ValueError, match=r"image_feat\.npy has 5 rows"):
        load_diffmm_format(bad_rows)

    nan = tmp_path / "nan"
    _write_diffmm(nan)
    feats = np.zeros((4, 3), dtype=np.float32)
    feats[1, 2] = np.nan
    np.save(nan / "audio_feat.npy", feats)
    with pytest.raises(ValueError, match=r"audio_feat\.npy contains non-finite"):
        load_diffmm_format(nan)

    inf16 = tmp_path / "inf16"
    _write_diffmm(inf16)
    np.save(inf16 / "image_feat.npy", np.full((4, 2), np.inf, dtype=np.float16))
    with pytest.raises(ValueError, match=r"image_feat\.npy contains non-finite"):
        load_diffmm_format(inf16)

    shape = tmp_path / "shape"
    _write_diffmm(shape)
    _dump(sp.coo_matrix(np.ones((3, 5))), shape / "valMat.pkl")
    with pytest.raises(ValueError, match="same shape"):
        load_diffmm_format(shape)

    notmat = tmp_path / "notmat"
    _write_diffmm(notmat)
    _dump({"a": 1}, notmat / "trnMat.pkl")
    with pytest.raises(ValueError, match="does not hold a scipy sparse matrix"):
        load_diffmm_format(notmat)


def test_diffmm_docstring_warns_about_pickle():
    assert "execute" in load_diffmm_format.__doc__
    assert "trust" in load_diffmm_format.__doc__


# ----------------------------------------------------------------------------------
# MMRec format
# ----------------------------------------------------------------------------------

_INTER = (
    "userID\titemID\trating\ttimestamp\tx_label\n"
    "0\t0\t5\t100\t0\n"
    "0\t1\t4\t101\t0\n"
    "0\t0\t3\t102\t0\n"  # duplicate interaction
    "1\t2\t4\t103\t0\n"
    "2\t1\t2\t104\t0\n"
    "0\t3\t4\t105\t1\n"
    "1\t1\t1\t106\t1\n"
    "2\t3\t5\t107\t2\n"
)


def _write_mmrec(folder: Path, *, inter: str = _INTER, n_feat_rows: int = 5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy.inter").write_text(inter)
    np.save(folder / "image_feat.npy", np.full((n_feat_rows, 4), 60000, dtype=np.float16))
    np.save(folder / "text_feat.npy", np.ones((n_feat_rows, 6), dtype=np.float32))
    return folder


def test_mmrec_reader_roundtrip(tmp_path):
    folder = _write_mmrec(tmp_path / "m")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_mmrec_format(folder)
    assert ds.name == "toy" and ds.missing == ()
    assert ds.n_users == 3 and ds.n_items == 5  # feature rows exceed max itemID + 1
    assert _pairs(ds.train) == {(0, 0), (0, 1), (1, 2), (2, 1)}
    assert _pairs(ds.validation) == {(0, 3), (1, 1)}
    assert _pairs(ds.test) == {(2, 3)}
    for matrix in (ds.train, ds.validation, ds.test):
        _assert_canonical_binary(matrix)
    assert ds.modalities == ("image", "text")
    assert ds.features["image"].dtype == np.float32
    assert np.isfinite(ds.features["image"].sum())
    assert load_mmrec_format(folder, name="toy").train.nnz == 4


def test_mmrec_reader_other_column_order_and_type_tags(tmp_path):
    inter = "itemID:token\tx_label:float\tuserID:token\n3\t0\t1\n0\t0\t0\n2\t1\t1\n"
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "x.inter").write_text(inter)
    np.save(folder / "image_feat.npy", np.zeros((4, 2)))
    np.save(folder / "text_feat.npy", np.zeros((4, 2)))
    with pytest.warns(UserWarning, match="test"):
        ds = load_mmrec_format(folder)
    assert _pairs(ds.train) == {(1, 3), (0, 0)} and _pairs(ds.validation) == {(1, 2)}
    assert ds.missing == ("test",)


def test_mmrec_reader_missing_splits_and_modalities(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "toy.inter").write_text("userID\titemID\tx_label\n0\t0\t0\n1\t1\t0\n")
    np.save(folder / "image_feat.npy", np.zeros((2, 3), dtype=np.float16))
    with pytest.warns(UserWarning) as record:
        ds = load_mmrec_format(folder)
    assert set(ds.missing) == {"validation", "test", "text"}
    assert ds.validation is None and ds.test is None and ds.modalities == ("image",)
    assert any("text" in str(w.message) for w in record)
    assert record[0].filename == __file__


def test_mmrec_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        load_mmrec_format(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \*\.inter"):
        load_mmrec_format(empty)

    two = _write_mmrec(tmp_path / "two")
    (two / "other.inter").write_text(_INTER)
    with pytest.raises(ValueError, match=re.escape("other.inter, toy.inter")):
        load_mmrec_format(two)
    assert load_mmrec_format(two, name="other").name == "other"
    with pytest.raises(FileNotFoundError, match=re.escape("nope.inter")):
        load_mmrec_format(two, name="nope")

    cols = _write_mmrec(tmp_path / "cols", inter="user\titemID\tx_label\n0\t0\t0\n")
    with pytest.raises(ValueError, match="lacks column"):
        load_mmrec_format(cols)

    label = _write_mmrec(tmp_path / "label", inter="userID\titemID\tx_label\n0\t0\t0\n0\t1\t7\n")
    with pytest.raises(ValueError, match="x_label must be"):
        load_mmrec_format(label)

    notrain = _write_mmrec(tmp_path / "notrain", inter="userID\titemID\tx_label\n0\t0\t1\n")
    with pytest.raises(ValueError, match="no training rows"):
        load_mmrec_format(notrain)

    rows = _write_mmrec(tmp_path / "rows", n_feat_rows=2)  # max itemID + 1 == 4
    with pytest.raises(ValueError, match=r"feat\.npy has 2 rows"):
        load_mmrec_format(rows)

    nan = _write_mmrec(tmp_path / "nan")
    np.save(nan / "text_feat.npy", np.full((5, 6), np.nan))
    with pytest.raises(ValueError, match=r"text_feat\.npy contains non-finite"):
        load_mmrec_format(nan)


# ----------------------------------------------------------------------------------
# TikTok
# ----------------------------------------------------------------------------------


def test_load_tiktok_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_tiktok(tmp_path / "absent")


def test_load_tiktok_reads_the_path_from_the_environment(tmp_path, monkeypatch):
    _write_diffmm(tmp_path / "tt", with_test=False)
    monkeypatch.delenv("DIFFMM_TIKTOK_PATH", raising=False)
    with pytest.raises(ValueError, match="DIFFMM_TIKTOK_PATH"):
        load_tiktok()
    monkeypatch.setenv("DIFFMM_TIKTOK_PATH", str(tmp_path / "tt"))
    assert load_tiktok().train.shape == load_tiktok(tmp_path / "tt").train.shape


def test_load_tiktok_on_fixture(tmp_path):
    _write_diffmm(tmp_path / "tt", with_test=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the kept-aside test split does not warn
        ds = load_tiktok(tmp_path / "tt")
    assert ds.name == "tiktok"
    assert ds.modalities == ("image", "audio")
    assert ds.missing == ("test",)


@pytest.mark.realdata
def test_tiktok_real_data():
    if not TIKTOK.is_dir():
        pytest.skip(f"TikTok data not found at {TIKTOK}")
    ds = load_tiktok(TIKTOK)
    assert ds.name == "tiktok"
    assert ds.train.shape == (9308, 6710)
    assert ds.train.nnz == 59_541
    _assert_canonical_binary(ds.train)
    assert ds.validation.shape == (9308, 6710)
    assert ds.validation.nnz == 3_051
    per_user = ds.validation.getnnz(axis=1)
    assert int((per_user == 1).sum()) == 3_051 and per_user.max() == 1
    assert ds.train.multiply(ds.validation).nnz == 0
    assert ds.test is None and ds.missing == ("test",)
    assert ds.modalities == ("image", "audio")
    for arr in ds.features.values():
        assert arr.shape == (6710, 128) and arr.dtype == np.float32
        assert np.all(np.isfinite(arr)) and np.isfinite(arr.sum())
    assert int((ds.train.getnnz(axis=1) == 0).sum()) == 10
    assert int((ds.train.getnnz(axis=0) == 0).sum()) == 465
