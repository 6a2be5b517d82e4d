"""Property-based fuzzing of bad input: every entry point rejects it cleanly and leaves it alone.

Malformed interactions (wrong shapes and dtypes, ragged rows, NaN/inf, fractional, negative and
huge ids, empty tables, booleans, objects that cannot be ids, broken sparse matrices and
DataFrames) and malformed modality features (not a mapping, bad keys, wrong row counts, wrong
ndim, NaN/inf, non-numeric dtypes, mixed or mismatched DataFrames, duplicate ids) go to ``fit``;
bad ids and arguments go to ``predict``, ``recommend`` and ``score`` of a small fitted model.

Each call must either raise one of the package's documented exception types (``ValueError``,
``TypeError`` and their subclasses such as ``UnknownIdError``, scikit-learn's
``NotFittedError``, and for files ``FileNotFoundError`` / ``ModelFileError``) with a non-empty
message, or, where hypothesis happens to draw a valid input, succeed. Either way the caller's
objects must be unchanged afterwards. ``docs/bad-input.md`` lists what each bad input gets.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.exceptions import NotFittedError

from diffmm import DiffMMRecommender, ModelFileError, UnknownIdError
from diffmm._validation import check_interactions
from diffmm.datasets import make_synthetic
from diffmm.metrics import METRICS

pd = pytest.importorskip("pandas")

ALLOWED = (ValueError, TypeError, NotFittedError, FileNotFoundError, ModelFileError)
SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

N_USERS, N_ITEMS = 30, 20
DATA = make_synthetic(n_users=N_USERS, n_items=N_ITEMS, interactions_per_user=5, random_state=0)
ROWS = DATA.interaction_rows("train")
HELD_OUT = DATA.interaction_rows("validation")
FEATURES = DATA.features
N_FEATURE_ROWS = next(iter(FEATURES.values())).shape[0]


def small_model() -> DiffMMRecommender:
    return DiffMMRecommender(
        epochs=1, denoiser_hidden_dims=(8,), embedding_dim=4, batch_size=64, random_state=0
    )


@pytest.fixture(scope="module")
def model() -> DiffMMRecommender:
    return small_model().fit(ROWS, FEATURES)


# ---------------------------------------------------------------------------------------------
# Checking a call: allowed exception with a message (or success), inputs unchanged
# ---------------------------------------------------------------------------------------------


def assert_same(after, before, where: str = "input") -> None:
    """``after`` (the caller's object after the call) equals ``before`` (a deep copy)."""
    assert type(after) is type(before), f"{where}: type changed"
    if sp.issparse(before):
        assert after.format == before.format and after.shape == before.shape, where
        assert after.dtype == before.dtype, f"{where}: dtype changed"
        assert np.array_equal(after.toarray(), before.toarray(), equal_nan=True), where
        for part in ("data", "indices", "indptr", "row", "col", "coords"):
            if hasattr(before, part) and part != "coords":
                a, b = getattr(after, part), getattr(before, part)
                if isinstance(b, np.ndarray):
                    assert_same(a, b, f"{where}.{part}")
    elif isinstance(before, pd.DataFrame):
        assert list(after.columns) == list(before.columns), f"{where}: columns changed"
        assert after.index.equals(before.index), f"{where}: index changed"
        assert list(after.dtypes) == list(before.dtypes), f"{where}: dtypes changed"
        assert after.equals(before), f"{where}: values changed"
    elif isinstance(before, np.ndarray):
        assert after.dtype == before.dtype and after.shape == before.shape, where
        if before.dtype.kind in "biufcmM":
            assert np.array_equal(after, before, equal_nan=before.dtype.kind in "fc"), where
        else:
            assert_same(after.tolist(), before.tolist(), where)
    elif isinstance(before, Mapping):
        assert list(after.keys()) == list(before.keys()), f"{where}: keys changed"
        for k in before:
            assert_same(after[k], before[k], f"{where}[{k!r}]")
    elif isinstance(before, (list, tuple)):
        assert len(after) == len(before), f"{where}: length changed"
        for i, (a, b) in enumerate(zip(after, before, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(before, float) and math.isnan(before):
        assert math.isnan(after), where
    else:
        assert after == before, f"{where}: {after!r} != {before!r}"


def check_call(target: str, call, *inputs) -> str:
    """Run ``call()``; return the outcome's name. Fails on any exception type not ALLOWED."""
    before = [copy.deepcopy(x) for x in inputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "n is larger than the candidate items"
        try:
            call()
        except ALLOWED as exc:
            assert str(exc).strip(), f"{type(exc).__name__} without a message"
            outcome = type(exc).__name__
        else:
            outcome = "ok"
    for i, (after, snapshot) in enumerate(zip(inputs, before, strict=True)):
        assert_same(after, snapshot, f"{target} argument {i}")
    return outcome


# ---------------------------------------------------------------------------------------------
# Strategies: malformed interactions
# ---------------------------------------------------------------------------------------------

user_ids = st.integers(0, N_USERS - 1)
item_ids = st.integers(0, N_ITEMS - 1)

# Values that are never a valid user or item id.
BAD_NUMBER_IDS = [
    math.nan,
    math.inf,
    -math.inf,
    -1.0,
    -7.0,
    0.5,
    2.25,
    1e30,
    -1e30,
    2.0**63,
    2.0**64,
]
BAD_OBJECT_IDS = [
    None,
    math.nan,
    math.inf,
    -1,
    0.5,
    2**63,
    2**70,
    -(2**70),
    True,
    False,
    [1],
    [],
    {},
    {"a": 1},
    (1, 2),
    {1},
    frozenset({1}),
    np.nan,
    1 + 2j,
]
BAD_WEIGHTS = [math.nan, math.inf, -math.inf, -1.0, -0.5]


@st.composite
def base_rows(draw, width: int | None = None, min_size: int = 1) -> np.ndarray:
    """A small float array of valid (user, item[, weight]) rows, to be broken by the caller."""
    n = draw(st.integers(min_size, 6))
    width = draw(st.sampled_from([2, 3])) if width is None else width
    users = draw(st.lists(user_ids, min_size=n, max_size=n))
    items = draw(st.lists(item_ids, min_size=n, max_size=n))
    columns = [users, items] + ([[1.0] * n] if width == 3 else [])
    return np.array(columns, dtype=np.float64).T.copy()


@st.composite
def wrong_shape_arrays(draw):
    shape = draw(
        st.one_of(
            st.just(()),
            st.tuples(st.integers(0, 6)),
            st.tuples(st.integers(0, 6), st.sampled_from([0, 1, 4, 5])),
            st.tuples(st.integers(0, 3), st.integers(1, 3), st.integers(1, 3)),
            st.tuples(st.just(0), st.sampled_from([2, 3])),
        )
    )
    dtype = draw(st.sampled_from([np.int64, np.int32, np.float64]))
    return draw(hnp.arrays(dtype, shape, elements=st.integers(0, 5)))


@st.composite
def ragged_lists(draw):
    lengths = draw(
        st.lists(st.integers(0, 4), min_size=2, max_size=6).filter(lambda ls: len(set(ls)) > 1)
    )
    return [draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)) for n in lengths]


@st.composite
def bad_number_arrays(draw):
    """A float array with one bad id (NaN, inf, fraction, negative, beyond int64) or weight."""
    arr = draw(base_rows())
    row = draw(st.integers(0, len(arr) - 1))
    col = draw(st.integers(0, arr.shape[1] - 1))
    arr[row, col] = draw(st.sampled_from(BAD_WEIGHTS if col == 2 else BAD_NUMBER_IDS))
    return arr


@st.composite
def bad_integer_arrays(draw, for_fit: bool):
    """Integer arrays with a negative id, an id beyond int64 (uint64) or a huge item id."""
    arr = draw(base_rows(width=2)).astype(np.int64)
    row = draw(st.integers(0, len(arr) - 1))
    kind = draw(st.sampled_from(["negative", "uint64", "huge item", "huge user"]))
    if kind == "huge user" and for_fit:
        kind = "huge item"  # a huge *user* id is a valid raw id in fit
    if kind == "negative":
        arr[row, draw(st.integers(0, 1))] = draw(st.integers(-(2**63), -1))
    elif kind == "uint64":
        arr = arr.astype(np.uint64)
        arr[row, draw(st.integers(0, 1))] = draw(st.integers(2**63, 2**64 - 1))
    else:
        arr[row, 1 if kind == "huge item" else 0] = draw(st.integers(2**40, 2**63 - 1))
    return arr


@st.composite
def bad_object_arrays(draw, for_fit: bool):
    """Object arrays or nested lists holding a value that cannot be an id."""
    arr = draw(base_rows()).astype(np.int64).astype(object)
    row = draw(st.integers(0, len(arr) - 1))
    col = draw(st.integers(0, 1))
    if draw(st.booleans()) and (col == 1 or not for_fit):
        arr[row, col] = draw(st.text(min_size=1, max_size=3))  # a string item id: no features
    else:
        arr[row, col] = draw(st.sampled_from(BAD_OBJECT_IDS))
    if draw(st.booleans()):
        return arr.tolist()  # nested Python lists: NumPy decides the dtype
    return arr


@st.composite
def odd_dtype_arrays(draw):
    n = draw(st.integers(1, 5))
    kind = draw(st.sampled_from(["bool", "complex", "datetime", "timedelta", "str", "bytes"]))
    if kind == "bool":
        return draw(hnp.arrays(np.bool_, (n, 2)))
    if kind == "complex":
        return draw(hnp.arrays(np.complex128, (n, 2), elements=st.integers(0, 5)))
    if kind == "datetime":
        return np.array([["2020-01-01", "2020-01-02"]] * n, dtype="datetime64[D]")
    if kind == "timedelta":
        return np.ones((n, 2), dtype="timedelta64[s]")
    # All-string arrays: string item ids cannot index array features.
    values = draw(st.lists(st.text("abc", min_size=1, max_size=2), min_size=2 * n))
    arr = np.array(values[: 2 * n]).reshape(n, 2)
    return arr.astype("S") if kind == "bytes" else arr


@st.composite
def bad_sparse(draw, for_fit: bool):
    fmt = draw(st.sampled_from(["csr", "csc", "coo", "lil"]))
    array_api = draw(st.booleans())
    kind = draw(st.sampled_from(["shape", "nan", "inf", "negative", "empty", "complex"]))
    shape = (N_USERS, N_ITEMS)
    if kind == "shape":
        shape = (draw(st.integers(1, 40)), draw(st.integers(1, 40).filter(lambda n: n != N_ITEMS)))
    dense = np.zeros(shape)
    if kind != "empty":
        rows, cols = np.nonzero(draw(hnp.arrays(np.bool_, shape)))
        dense[rows, cols] = 1.0
        r, c = draw(st.integers(0, shape[0] - 1)), draw(st.integers(0, shape[1] - 1))
        dense[r, c] = {"nan": math.nan, "inf": math.inf, "negative": -1.0}.get(kind, 1.0)
    if kind == "complex":
        dense = dense.astype(np.complex128)
    factory = getattr(sp, f"{fmt}_array" if array_api else f"{fmt}_matrix")
    return factory(dense)


@st.composite
def bad_frames(draw, for_fit: bool):
    n = draw(st.integers(1, 5))
    users = draw(st.lists(user_ids, min_size=n, max_size=n))
    items = draw(st.lists(item_ids, min_size=n, max_size=n))
    kind = draw(
        st.sampled_from(
            ["missing column", "nan id", "list id", "bad weight", "string weight", "dup column"]
        )
    )
    if kind == "missing column":
        names = draw(
            st.lists(
                st.sampled_from(["user", "item", "u", "i", "weight", "rating", "0"]),
                min_size=0,
                max_size=3,
                unique=True,
            ).filter(lambda cs: not {"user", "item"} <= set(cs))
        )
        return pd.DataFrame({c: users for c in names}, index=range(n))
    frame = pd.DataFrame({"user": users, "item": items})
    row = draw(st.integers(0, n - 1))
    if kind == "nan id":
        col = draw(st.sampled_from(["user", "item"]))
        frame[col] = frame[col].astype(float)
        frame.loc[row, col] = math.nan
    elif kind == "list id":
        frame["user"] = frame["user"].astype(object)
        frame.at[row, "user"] = [1, 2]
    elif kind == "bad weight":
        frame["weight"] = 1.0
        frame.loc[row, "weight"] = draw(st.sampled_from(BAD_WEIGHTS))
    elif kind == "string weight":
        frame["weight"] = "high"
    else:
        frame = pd.concat([frame, frame[["user"]]], axis=1)
    return frame


not_tables = st.sampled_from(
    [None, 0, 1.5, "user,item", b"0,1", {"user": [0], "item": [1]}, {(0, 1)}, Ellipsis]
)


def bad_interactions(*, for_fit: bool):
    return st.one_of(
        wrong_shape_arrays(),
        ragged_lists(),
        bad_number_arrays(),
        bad_integer_arrays(for_fit),
        bad_object_arrays(for_fit),
        odd_dtype_arrays(),
        bad_sparse(for_fit),
        bad_frames(for_fit),
        not_tables,
    )


# ---------------------------------------------------------------------------------------------
# Strategies: malformed modality features (with valid interactions)
# ---------------------------------------------------------------------------------------------


def good_block(n_rows: int = N_FEATURE_ROWS, dim: int = 3) -> np.ndarray:
    return np.arange(n_rows * dim, dtype=np.float64).reshape(n_rows, dim) / 10


@st.composite
def bad_feature_arrays(draw):
    """One modality's array with a defect (the other modalities are fine)."""
    kind = draw(
        st.sampled_from(
            ["rows", "ndim", "nan", "dtype", "no columns", "ragged", "sparse", "scalar", "none"]
        )
    )
    if kind == "rows":  # too few rows for the items the interactions use
        return good_block(draw(st.integers(0, int(ROWS[:, 1].max()))))
    if kind == "ndim":
        shape = draw(
            st.sampled_from([(N_FEATURE_ROWS,), (N_FEATURE_ROWS, 2, 2), (1, N_FEATURE_ROWS, 1)])
        )
        return np.ones(shape)
    if kind == "nan":
        block = good_block()
        r, c = draw(st.integers(0, N_FEATURE_ROWS - 1)), draw(st.integers(0, 2))
        block[r, c] = draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e300]))
        return block
    if kind == "dtype":
        dtype = draw(st.sampled_from([object, str, bool, np.complex128, "datetime64[s]"]))
        return good_block().astype(np.int64).astype(dtype)
    if kind == "no columns":
        return np.ones((N_FEATURE_ROWS, 0))
    if kind == "ragged":
        return [[1.0, 2.0]] * (N_FEATURE_ROWS - 1) + [[1.0]]
    if kind == "sparse":
        return sp.csr_matrix(good_block())
    if kind == "scalar":
        return draw(st.sampled_from([1.0, "visual", b"x"]))
    return None


@st.composite
def bad_feature_frames(draw):
    """DataFrame features with a defect: mismatched item sets, duplicates, odd indexes."""
    n = N_FEATURE_ROWS
    kind = draw(
        st.sampled_from(
            ["mixed", "other items", "duplicate", "missing items", "nan index", "tuple index"]
        )
    )
    first = pd.DataFrame(good_block(), index=range(n))
    if kind == "mixed":  # one DataFrame, one array
        return {"visual": first, "acoustic": good_block()}
    if kind == "other items":
        shift = draw(st.integers(1, 5))
        return {
            "visual": first,
            "acoustic": pd.DataFrame(good_block(), index=range(shift, n + shift)),
        }
    if kind == "duplicate":
        index = list(range(n))
        index[draw(st.integers(1, n - 1))] = draw(st.integers(0, n - 1))
        index = index if len(set(index)) < n else [0] * n
        return {"visual": pd.DataFrame(good_block(), index=index)}
    if kind == "missing items":
        keep = draw(st.integers(0, int(ROWS[:, 1].max())))
        return {"visual": pd.DataFrame(good_block(keep), index=range(keep))}
    if kind == "nan index":
        index = [float(i) for i in range(n)]
        index[draw(st.integers(0, n - 1))] = math.nan
        return {"visual": pd.DataFrame(good_block(), index=index)}
    return {"visual": pd.DataFrame(good_block(), index=[(i,) for i in range(n)])}


@st.composite
def bad_features(draw):
    kind = draw(st.sampled_from(["not a mapping", "empty", "bad key", "bad array", "frames"]))
    if kind == "not a mapping":
        return draw(st.sampled_from([None, [good_block()], (good_block(),), good_block(), "v", 3]))
    if kind == "empty":
        return {}
    if kind == "bad key":
        key = draw(st.sampled_from([0, 1.5, None, ("a",), b"visual", ""]))
        return {key: good_block()}
    if kind == "frames":
        return draw(bad_feature_frames())
    features = {"visual": good_block(), "acoustic": good_block()}
    features[draw(st.sampled_from(list(features)))] = draw(bad_feature_arrays())
    return features


# ---------------------------------------------------------------------------------------------
# Strategies: bad ids and arguments for a fitted model
# ---------------------------------------------------------------------------------------------

unknown_pairs = st.builds(
    lambda u, i, swap: np.array([[i, u]] if swap else [[u, i]]),
    st.integers(N_USERS, 2**62),
    st.integers(N_ITEMS, 2**62),
    st.booleans(),
)

bad_user_lists = st.one_of(
    st.lists(st.integers(N_USERS, 2**63 - 1), min_size=1, max_size=3),  # unknown
    st.lists(st.integers(-(2**63), -1), min_size=1, max_size=3),  # negative
    st.just([]),
    st.just(np.array([], dtype=np.int64)),
    hnp.arrays(np.int64, st.tuples(st.integers(1, 3), st.integers(2, 3)), elements=user_ids),
    ragged_lists(),
    st.lists(st.booleans(), min_size=1, max_size=3),
    st.lists(st.sampled_from([math.nan, math.inf, -math.inf, 0.5]), min_size=1, max_size=3),
    st.lists(st.text(min_size=1, max_size=3), min_size=1, max_size=3),
    st.sampled_from([None, {}, {"a": 1}, [[[0]]], [None], [2**70], [1 + 2j]]),
)
bad_counts = st.one_of(
    st.integers(-(2**63), 0),
    st.sampled_from([1.5, "3", None, True, False, math.nan, math.inf, [3], np.float64(2.0)]),
)


# ---------------------------------------------------------------------------------------------
# The properties
# ---------------------------------------------------------------------------------------------


def examples(n: int):
    return settings(SETTINGS, max_examples=n)


@examples(400)
@given(X=bad_interactions(for_fit=True))
def test_fit_rejects_bad_interactions(X):
    features = {k: v.copy() for k, v in FEATURES.items()}
    outcome = check_call("fit", lambda: small_model().fit(X, features), X, features)
    assert outcome != "ok", "fit accepted malformed interactions"


@examples(250)
@given(features=bad_features())
def test_fit_rejects_bad_features(features):
    rows = ROWS.copy()
    outcome = check_call("fit", lambda: small_model().fit(rows, features), rows, features)
    assert outcome != "ok", "fit accepted malformed modality features"


@examples(60)
@given(validation=st.one_of(bad_interactions(for_fit=False), unknown_pairs))
def test_fit_rejects_bad_validation_data(validation):
    # Checked before training starts; only held-out rows that are valid (unknown items next to
    # known ones count as misses) get as far as training.
    rows = ROWS.copy()
    outcome = check_call(
        "fit validation_data",
        lambda: small_model().fit(rows, FEATURES, validation_data=validation),
        rows,
        validation,
    )
    # None means no validation data: training without it is fine.
    assert (outcome == "ok") == (validation is None or _valid_held_out(validation)), outcome


def _valid_held_out(X) -> bool:
    """Held-out interactions the documented rules accept: known users, and at least one known
    item (unknown items beside known ones count as misses); a matrix of the model's shape."""
    try:
        rows = check_interactions(X, name="X")
    except (TypeError, ValueError):
        return False
    if rows.shape is not None:
        return rows.shape == (N_USERS, N_ITEMS)
    if rows.users.dtype.kind not in "iu" or rows.items.dtype.kind not in "iu":
        return False
    keep = rows.weights > 0 if rows.weights is not None else np.ones(len(rows), bool)
    users_known = (rows.users >= 0) & (rows.users < N_USERS)
    items_known = (rows.items >= 0) & (rows.items < N_ITEMS)
    return bool(users_known.all() and items_known[keep].any())


@examples(250)
@given(X=st.one_of(bad_interactions(for_fit=False), unknown_pairs))
def test_predict_rejects_bad_pairs(model, X):
    outcome = check_call("predict", lambda: model.predict(X), X)
    if outcome == "ok":  # e.g. a sparse matrix of another shape whose entries are known pairs
        assert sp.issparse(X)


@examples(250)
@given(X=st.one_of(bad_interactions(for_fit=False), unknown_pairs))
def test_score_rejects_bad_held_out(model, X):
    outcome = check_call("score", lambda: model.score(X), X)
    # Held-out rows whose unknown *items* sit next to known ones are valid: they count as misses.
    assert (outcome == "ok") == _valid_held_out(X), outcome


@examples(100)
@given(
    k=st.one_of(bad_counts, st.just(1)),
    metric=st.one_of(
        st.sampled_from(["recall", "nope", "", "RECALL", None, 3, ["recall"]]), st.text()
    ),
)
def test_score_rejects_bad_k_and_metric(model, k, metric):
    X = HELD_OUT.copy()
    outcome = check_call("score k/metric", lambda: model.score(X, k=k, metric=metric), X, k, metric)
    if outcome == "ok":  # st.text() may draw a real metric name too
        assert k == 1 and metric in METRICS


@examples(150)
@given(users=bad_user_lists)
def test_recommend_rejects_bad_users(model, users):
    outcome = check_call("recommend users", lambda: model.recommend(users, n=3), users)
    assert outcome != "ok"


@examples(150)
@given(argument=st.sampled_from(["n", "batch_size"]), value=bad_counts)
def test_recommend_rejects_bad_counts(model, argument, value):
    users = [0, 1]
    outcome = check_call(
        f"recommend {argument}",
        lambda: model.recommend(users, **{"n": 3, argument: value}),
        users,
        value,
    )
    assert outcome != "ok"


@examples(150)
@given(
    argument=st.sampled_from(["items", "exclude_items"]),
    items=st.one_of(bad_user_lists, st.just("all")),
)
def test_recommend_rejects_bad_item_lists(model, argument, items):
    if isinstance(items, str) and items == "all":  # no candidate left: all excluded, or none
        items = list(range(N_ITEMS)) if argument == "exclude_items" else []
    users = [0, 1]
    outcome = check_call(
        f"recommend {argument}",
        lambda: model.recommend(users, n=3, **{argument: items}),
        users,
        items,
    )
    # None (no restriction) is fine for both, and so is excluding no item at all.
    empty = isinstance(items, (list, np.ndarray)) and len(items) == 0
    assert outcome != "ok" or items is None or (argument == "exclude_items" and empty)


# ---------------------------------------------------------------------------------------------
# Regression tests for what the fuzzing found, and the other documented failures
# ---------------------------------------------------------------------------------------------


def _reject(call, exc_type, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc_type, match=match):
            call()


@pytest.mark.parametrize(
    "X, match",
    [
        (np.array([[0, 2**63]], dtype=np.uint64), "too large"),  # used to wrap to -2**63
        (np.array([[1e30, 1.0]]), "too large"),  # used to report "negative values"
        ([[2**70, 1]], "too large"),  # used to raise OverflowError
        ([[-(2**70), 1]], "negative"),  # used to raise OverflowError
        (np.array([[math.inf, 1]], dtype=object), "NaN or infinite"),  # used to be an id
        (np.array([[0.5, 1]], dtype=object), "non-integer"),  # used to be an id
        ([[True, 0], [1, 2]], "booleans"),  # NumPy made it [[1, 0], [1, 2]]: user 1
    ],
)
def test_ids_beyond_int64_or_non_integral_objects_are_rejected(X, match):
    _reject(lambda: small_model().fit(X, FEATURES), (ValueError, TypeError), match)


def test_integral_object_floats_are_integer_ids():
    rows = ROWS.astype(object)
    rows[0, 0] = float(rows[0, 0])
    model = small_model().fit(rows, FEATURES)
    assert model.user_ids_.dtype.kind == "i"


def test_complex_weights_are_rejected():
    X = sp.csr_matrix(np.ones((N_USERS, N_ITEMS), dtype=np.complex128))
    _reject(lambda: small_model().fit(X, FEATURES), TypeError, "complex")


@pytest.mark.parametrize(
    "kwargs, exc_type, match",
    [
        ({"users": [True]}, TypeError, "booleans"),  # used to mean user 1
        ({"users": [math.inf]}, UnknownIdError, r"\(inf\)"),  # used to show -2**63
        ({"items": [[0, 1]]}, ValueError, "1-D"),  # used to say "cannot reshape array"
        ({"items": [[[0]]]}, ValueError, "1-D"),  # used to be accepted
        ({"exclude_items": [False]}, TypeError, "booleans"),  # used to mean item 0
    ],
)
def test_recommend_id_arguments_are_checked(model, kwargs, exc_type, match):
    _reject(lambda: model.recommend(**{"users": [0], **kwargs}), exc_type, match)


@pytest.mark.parametrize(
    "index, exc_type, match",
    [
        ([math.nan, *range(1, N_FEATURE_ROWS)], ValueError, "NaN"),  # was an UnknownIdError
        ([(i,) for i in range(N_FEATURE_ROWS)], TypeError, "tuple"),  # was "no features"
        ([0.5, *range(1, N_FEATURE_ROWS)], ValueError, "non-integer"),
    ],
)
def test_feature_frame_index_is_checked_like_ids(index, exc_type, match):
    features = {"visual": pd.DataFrame(good_block(), index=index)}
    _reject(lambda: small_model().fit(ROWS, features), exc_type, match)


def test_score_with_k_far_beyond_the_catalogue(model):
    # Refused at once with a clear message, never an attempt to allocate n_users x k.
    for k in (10_001, 2**40):
        _reject(lambda k=k: model.score(HELD_OUT, k=k), ValueError, "larger than the")


def test_unfitted_model_and_missing_files():
    model = small_model()
    _reject(lambda: model.predict([[0, 0]]), NotFittedError, "not fitted")
    _reject(lambda: model.recommend([0]), NotFittedError, "not fitted")
    _reject(lambda: model.score(HELD_OUT), NotFittedError, "not fitted")
    _reject(lambda: DiffMMRecommender.load("/nonexistent/model.diffmm"), FileNotFoundError, "")


def test_garbage_model_file(tmp_path):
    path = tmp_path / "model.diffmm"
    path.write_bytes(b"not a zip archive")
    _reject(lambda: DiffMMRecommender.load(path), ModelFileError, "model")
