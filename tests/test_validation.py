"""Tests for diffmm._validation: interaction parsing, id maps, features and parameter checks."""

from __future__ import annotations

import copy
import json
import numbers
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffmm import UnknownIdError
from diffmm._ids import IdMap
from diffmm._validation import (
    Interval,
    Options,
    Predicate,
    check_interactions,
    check_k,
    check_modality_features,
    interaction_matrix,
    resolve_universes,
    validate_params,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The same 5 interactions (user 1 has item 2 twice) in every accepted form.
PAIRS = np.array([[0, 1], [0, 2], [1, 2], [1, 2], [2, 0]])
EXPECTED_BINARY = np.array([[0, 1, 1], [0, 0, 1], [1, 0, 0]], dtype=np.float32)


def dense(rows) -> np.ndarray:
    users, items, _ = resolve_universes(rows)
    binary, _ = interaction_matrix(rows, users, items)
    return binary.toarray()


def snapshot(obj):
    """A comparable deep picture of ``obj`` (NaN-safe), to check that a call left it alone."""
    if isinstance(obj, pd.DataFrame):
        return ("df", obj.copy(deep=True), tuple(map(str, obj.dtypes)), tuple(obj.index))
    if sp.issparse(obj):
        parts = [obj.format, obj.shape, str(obj.dtype)]
        for attr in ("data", "indices", "indptr", "row", "col"):
            if hasattr(obj, attr):
                parts.append(repr(np.asarray(getattr(obj, attr)).tolist()))
        return ("sparse", *parts)
    if isinstance(obj, np.ndarray):
        return ("array", str(obj.dtype), obj.shape, repr(obj.tolist()))
    if isinstance(obj, dict):
        return ("dict", tuple((k, snapshot(v)) for k, v in obj.items()))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(snapshot(v) for v in obj))
    return ("value", repr(obj))


def assert_unchanged(before, obj) -> None:
    after = snapshot(obj)
    if before[0] == "df":
        assert after[0] == "df" and before[1].equals(after[1]) and before[2:] == after[2:]
    elif before[0] == "dict":
        assert [k for k, _ in before[1]] == [k for k, _ in after[1]]
        for (_, b), (_, a) in zip(before[1], after[1], strict=True):
            if b[0] == "df":
                assert b[1].equals(a[1]) and b[2:] == a[2:]
            else:
                assert a == b
    else:
        assert after == before


# ---------------------------------------------------------------------------------------------
# Interactions in every accepted form
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: PAIRS.copy(), id="ndarray-n2"),
        pytest.param(lambda: PAIRS.tolist(), id="list-n2"),
        pytest.param(lambda: [tuple(r) for r in PAIRS.tolist()], id="list-of-tuples"),
        pytest.param(lambda: np.column_stack([PAIRS, np.ones(5)]), id="ndarray-n3"),
        pytest.param(lambda: pd.DataFrame(PAIRS, columns=["user", "item"]), id="dataframe"),
        pytest.param(
            lambda: pd.DataFrame(PAIRS, columns=["user", "item"]).assign(weight=1.0),
            id="dataframe-weight",
        ),
    ],
)
def test_row_forms_give_the_same_interactions(make):
    X = make()
    before = snapshot(X)
    rows = check_interactions(X)
    assert_unchanged(before, X)
    assert rows.users.tolist() == PAIRS[:, 0].tolist()
    assert rows.items.tolist() == PAIRS[:, 1].tolist()
    assert rows.users.dtype == np.int64 and rows.items.dtype == np.int64
    assert rows.shape is None
    np.testing.assert_array_equal(dense(rows), EXPECTED_BINARY)


@pytest.mark.parametrize("fmt", ["coo", "csr", "csc"])
def test_sparse_forms(fmt):
    weights = np.array([1.0, 2.0, 0.5, 0.5, 3.0])
    X = sp.coo_matrix((weights, (PAIRS[:, 0], PAIRS[:, 1])), shape=(4, 5)).asformat(fmt)
    before = snapshot(X)
    rows = check_interactions(X)
    assert_unchanged(before, X)
    assert rows.shape == (4, 5)  # the matrix fixes both universes, empty rows/columns included
    got = sorted(zip(rows.users.tolist(), rows.items.tolist(), rows.weights.tolist(), strict=True))
    if fmt == "coo":  # duplicates are kept as rows; interaction_matrix sums them
        assert got == [(0, 1, 1.0), (0, 2, 2.0), (1, 2, 0.5), (1, 2, 0.5), (2, 0, 3.0)]
    else:
        assert got == [(0, 1, 1.0), (0, 2, 2.0), (1, 2, 1.0), (2, 0, 3.0)]
    users, items, _ = resolve_universes(rows)
    assert len(users) == 4 and len(items) == 5
    binary, summed = interaction_matrix(rows, users, items)
    assert binary.shape == (4, 5)
    np.testing.assert_array_equal(binary.toarray()[:3, :3], EXPECTED_BINARY)
    assert summed[1, 2] == pytest.approx(1.0) and summed[2, 0] == pytest.approx(3.0)


def test_sparse_explicit_zeros_are_not_interactions():
    X = sp.csr_matrix((np.array([0.0, 1.0]), np.array([0, 1]), np.array([0, 1, 2])), shape=(2, 2))
    assert X.nnz == 2
    rows = check_interactions(X)
    assert rows.users.tolist() == [1] and rows.items.tolist() == [1]


def test_dataframe_custom_columns_weight_and_timestamp():
    df = pd.DataFrame(
        {
            "uid": ["a", "b", "a"],
            "iid": [10, 20, 30],
            "w": [1.0, 0.0, 2.5],
            "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
        }
    )
    before = snapshot(df)
    rows = check_interactions(
        df, user_col="uid", item_col="iid", weight_col="w", timestamp_col="ts"
    )
    assert_unchanged(before, df)
    assert rows.users.tolist() == ["a", "b", "a"]
    assert rows.items.tolist() == [10, 20, 30]
    assert rows.weights.tolist() == [1.0, 0.0, 2.5]
    assert rows.timestamps.dtype.kind == "M" and len(rows.timestamps) == 3
    # Absent optional columns are simply not used.
    plain = check_interactions(df, user_col="uid", item_col="iid")
    assert plain.weights is None and plain.timestamps is None


def test_dataframe_missing_column_names_it_and_says_what_to_do():
    df = pd.DataFrame({"u": [0], "i": [1]})
    with pytest.raises(ValueError, match=r"interactions has no column\(s\) \['user', 'item'\].*"):
        check_interactions(df)
    with pytest.raises(ValueError, match="pass user_col= / item_col="):
        check_interactions(df, user_col="u")


def test_mixed_type_rows_keep_their_types():
    # Regression: NumPy turned the integer items of ("u1", 10) into the strings "10".
    rows = check_interactions([("u1", 10), ("u2", 11), ("u1", 11)])
    assert rows.users.tolist() == ["u1", "u2", "u1"]
    assert rows.items.dtype == np.int64 and rows.items.tolist() == [10, 11, 11]
    weighted = check_interactions([("u1", 10, 0.5), ("u2", 11, 2)])
    assert weighted.items.tolist() == [10, 11] and weighted.weights.tolist() == [0.5, 2.0]


def test_mixed_type_object_ids():
    X = np.array([[1, "a"], ["x", 2], [1, 2]], dtype=object)
    rows = check_interactions(X)
    users, items, _ = resolve_universes(rows)
    assert set(users.ids.tolist()) == {1, "x"} and set(items.ids.tolist()) == {"a", 2}
    binary, _ = interaction_matrix(rows, users, items)
    assert binary.nnz == 3
    u = users.index(np.array([1, "x"], dtype=object))
    assert users.to_ids(u).tolist() == [1, "x"]


def test_integer_valued_float_ids_become_integers():
    rows = check_interactions(np.array([[0.0, 3.0], [2.0, 1.0]]))
    assert rows.users.dtype == np.int64 and rows.items.tolist() == [3, 1]


def test_interaction_matrix_collapses_duplicates_and_drops_zero_weights():
    rows = check_interactions(
        np.array([[0, 0, 1.5], [0, 0, 2.0], [0, 1, 0.0], [1, 1, 1.0], [1, 0, 0.25]])
    )
    users, items = IdMap.range(2, what="user"), IdMap.range(2, what="item")
    binary, summed = interaction_matrix(rows, users, items)
    assert binary.dtype == np.float32
    np.testing.assert_array_equal(binary.toarray(), [[1, 0], [1, 1]])
    np.testing.assert_allclose(summed.toarray(), [[3.5, 0], [0.25, 1.0]])
    assert binary.nnz == 3 and summed.nnz == 3  # the weight-0 pair is not stored at all


def test_interaction_matrix_unknown_ids():
    rows = check_interactions([[0, 0], [5, 1]])
    with pytest.raises(UnknownIdError, match=r"interactions user ids: 1 unknown user\(s\) \(5\)"):
        interaction_matrix(rows, IdMap.range(2, what="user"), IdMap.range(2, what="item"))


# ---------------------------------------------------------------------------------------------
# IdMap
# ---------------------------------------------------------------------------------------------

int_ids = st.integers(0, 10**12)
# Not empty: "" is the padding id of string-id recommendations, never an id.
str_ids = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), min_size=1
)
mixed_ids = st.one_of(st.integers(-(10**6), 10**6), str_ids)
raw_ids = st.one_of(st.integers(0, 10**6), str_ids)  # interactions refuse negative integers


@SETTINGS
@given(values=st.one_of(st.lists(int_ids, min_size=1), st.lists(str_ids, min_size=1)))
def test_idmap_round_trip_homogeneous(values):
    m = IdMap.from_values(values)
    assert len(m) == len(set(values))
    idx = m.index(values)
    assert idx.dtype == np.int64 and idx.min() >= 0 and idx.max() < len(m)
    assert sorted(set(idx.tolist())) == list(range(len(m)))  # contiguous
    assert m.to_ids(idx).tolist() == list(values)
    assert m.ids.tolist() == sorted(set(values))  # comparable ids are kept sorted
    assert m.contains(values).all()


@SETTINGS
@given(values=st.lists(mixed_ids, min_size=1))
def test_idmap_round_trip_mixed_objects(values):
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    m = IdMap.from_values(arr)
    assert len(m) == len(set(values))
    idx = m.index(arr)
    assert sorted(set(idx.tolist())) == list(range(len(m)))
    back = m.to_ids(idx).tolist()
    assert back == values and [type(v) for v in back] == [type(v) for v in values]


@SETTINGS
@given(n=st.integers(1, 50))
def test_idmap_integer_range_maps_to_itself(n):
    m = IdMap.from_values(np.arange(n)[::-1])
    np.testing.assert_array_equal(m.index(np.arange(n)), np.arange(n))


@SETTINGS
@given(
    users=st.lists(raw_ids, min_size=1, max_size=20),
    data=st.data(),
)
def test_interaction_ids_round_trip(users, data):
    items = data.draw(st.lists(raw_ids, min_size=len(users), max_size=len(users)))
    X = np.empty((len(users), 2), dtype=object)
    X[:, 0], X[:, 1] = users, items
    rows = check_interactions(X)
    user_map, item_map, _ = resolve_universes(rows)
    u = user_map.index(rows.users)
    i = item_map.index(rows.items)
    assert user_map.to_ids(u).tolist() == users
    assert item_map.to_ids(i).tolist() == items
    binary, _ = interaction_matrix(rows, user_map, item_map)
    assert binary.nnz == len(set(zip(users, items, strict=True)))


def test_idmap_unknown_ids_are_named():
    m = IdMap.from_values(["a", "b"], what="user")
    with pytest.raises(UnknownIdError, match=r"users: 2 unknown user\(s\) \('z', 'y'\)"):
        m.index(["a", "z", "y"], name="users")
    with pytest.raises(UnknownIdError, match=r"unknown user\(s\) \(1\)"):
        m.index([1])  # an id of another kind is unknown, not a crash
    ints = IdMap.range(3, what="item")
    with pytest.raises(UnknownIdError, match=r"unknown item\(s\) \('a'\)"):
        ints.index(["a"])
    np.testing.assert_array_equal(ints.contains([0, 3, 2]), [True, False, True])
    many = [f"x{j}" for j in range(8)]
    with pytest.raises(UnknownIdError, match=r"8 unknown user\(s\) .* and 3 more"):
        m.index(many)


def test_idmap_rejects_duplicate_ids():
    with pytest.raises(ValueError, match="item ids must be unique"):
        IdMap(np.array([0, 1, 1]), what="item")
    with pytest.raises(ValueError, match="item ids must be unique"):
        IdMap(np.array([1, "a", 1], dtype=object), what="item")


# ---------------------------------------------------------------------------------------------
# Modality features and the item universe
# ---------------------------------------------------------------------------------------------


def test_array_features_are_fresh_float32():
    visual = np.arange(12, dtype=np.float16).reshape(4, 3)
    text = np.arange(8, dtype=np.int64).reshape(4, 2)
    given_ = {"visual": visual, "text": text}
    before = snapshot(given_)
    feats, items = check_modality_features(given_)
    assert_unchanged(before, given_)
    assert items is None
    assert list(feats) == ["visual", "text"]
    for key, value in feats.items():
        assert value.dtype == np.float32
        assert not np.shares_memory(value, given_[key])
        np.testing.assert_array_equal(value, given_[key].astype(np.float32))
    # float32 input is copied too.
    f32 = np.ones((4, 2), dtype=np.float32)
    out, _ = check_modality_features({"a": f32})
    assert not np.shares_memory(out["a"], f32)


def test_float16_upcast_avoids_overflow():
    big = np.full((2, 3), 60000, dtype=np.float16)  # float16 sums overflow to inf
    with np.errstate(over="ignore"):
        assert np.isinf(big.sum(dtype=np.float16))
    feats, _ = check_modality_features({"v": big})
    assert feats["v"].dtype == np.float32 and feats["v"].sum() == pytest.approx(6 * 60000, rel=1e-3)


def test_dataframe_features_define_the_item_universe_with_cold_items():
    visual = pd.DataFrame(
        np.arange(8.0).reshape(4, 2), index=["d", "b", "a", "c"], columns=["v0", "v1"]
    )
    # Same items, other row order: rows must be aligned by item id, not by position.
    text = visual.loc[["a", "c", "b", "d"]].rename(columns={"v0": "t0", "v1": "t1"}) * 10
    features = {"visual": visual, "text": text}
    before = snapshot(features)
    rows = check_interactions(pd.DataFrame({"user": ["u", "u", "w"], "item": ["a", "b", "a"]}))
    users, items, feats = resolve_universes(rows, features)
    assert_unchanged(before, features)
    assert items.ids.tolist() == ["a", "b", "c", "d"]  # c and d are cold (no interactions)
    assert users.ids.tolist() == ["u", "w"]
    for key, frame in features.items():
        expected = frame.loc[items.ids.tolist()].to_numpy(dtype=np.float32)
        np.testing.assert_array_equal(feats[key], expected)
    np.testing.assert_array_equal(feats["text"], feats["visual"] * 10)
    binary, _ = interaction_matrix(rows, users, items)
    assert binary.shape == (2, 4)
    np.testing.assert_array_equal(binary.toarray(), [[1, 1, 0, 0], [1, 0, 0, 0]])


def test_dataframe_features_integer_ids():
    frame = pd.DataFrame(np.eye(3), index=[30, 10, 20])
    rows = check_interactions([[0, 10], [1, 30]])
    _, items, feats = resolve_universes(rows, {"v": frame})
    assert items.ids.tolist() == [10, 20, 30]
    np.testing.assert_array_equal(feats["v"], np.eye(3)[[1, 2, 0]])


def test_dataframe_features_must_describe_the_same_items():
    a = pd.DataFrame(np.ones((2, 2)), index=["x", "y"])
    b = pd.DataFrame(np.ones((2, 2)), index=["x", "z"])
    with pytest.raises(ValueError, match=r"modality_features\['b'\] is indexed by a different set"):
        check_modality_features({"a": a, "b": b})
    dup = pd.DataFrame(np.ones((2, 2)), index=["x", "x"])
    with pytest.raises(ValueError, match=r"modality_features\['a'\] has duplicate item ids"):
        check_modality_features({"a": dup})


def test_array_features_define_items_by_row():
    rows = check_interactions([[0, 0], [1, 2]])
    users, items, feats = resolve_universes(rows, {"v": np.ones((5, 2))})
    assert feats["v"].shape == (5, 2)
    assert items.ids.tolist() == [0, 1, 2, 3, 4]  # items 1, 3 and 4 are cold
    assert users.ids.tolist() == [0, 1]
    rows = check_interactions(sp.csr_matrix(np.eye(3)))
    users, items, _ = resolve_universes(rows, {"v": np.ones((3, 2))})
    assert len(users) == 3 and len(items) == 3


# ---------------------------------------------------------------------------------------------
# Bad input: a clear error naming the argument, and the caller's objects untouched
# ---------------------------------------------------------------------------------------------


def _obj_array(rows):
    arr = np.empty((len(rows), len(rows[0])), dtype=object)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            arr[r, c] = value
    return arr


def _interactions(X):
    return check_interactions(X)


def _universe(X, features):
    return resolve_universes(check_interactions(X), features)


BAD_INTERACTIONS = [
    # (factory, exception, message pattern)
    pytest.param(
        lambda: np.array([[0, 1.5], [1, 2.0]]),
        ValueError,
        r"interactions item ids contain non-integer numbers .*1\.5.*ids must be integers",
        id="float-id",
    ),
    pytest.param(
        lambda: pd.DataFrame({"user": [0, 1], "item": [2.0, 1.5]}),
        ValueError,
        r"interactions\['item'\] contain non-integer numbers",
        id="float-id-df",
    ),
    pytest.param(
        lambda: np.array([[0, 1], [-3, 2]]),
        ValueError,
        r"interactions user ids contain negative values \(e\.g\. -3\); integer ids must be >= 0",
        id="negative-id",
    ),
    pytest.param(
        lambda: np.array([[0, 1, 1.0], [1, 2, np.nan]]),
        ValueError,
        r"interactions weights \(third column\) contains 1 NaN or infinite.*remove or impute",
        id="nan-weight",
    ),
    pytest.param(
        lambda: pd.DataFrame({"user": [0, 1], "item": [1, 2], "weight": [np.inf, 1.0]}),
        ValueError,
        r"interactions\['weight'\] contains 1 NaN or infinite value\(s\); remove or impute",
        id="inf-weight-df",
    ),
    pytest.param(
        lambda: sp.csr_matrix(np.array([[0.0, np.nan], [1.0, 0.0]])),
        ValueError,
        r"interactions values contains 1 NaN or infinite",
        id="nan-sparse",
    ),
    pytest.param(
        lambda: np.array([[0, 1, -1.0]]),
        ValueError,
        r"interactions weights \(third column\) contain negative values; weights must be >= 0",
        id="negative-weight",
    ),
    pytest.param(
        lambda: np.empty((0, 2), dtype=np.int64),
        ValueError,
        r"interactions is empty; at least one interaction is needed",
        id="empty-array",
    ),
    pytest.param(
        list, ValueError, r"interactions is empty; at least one interaction", id="empty-list"
    ),
    pytest.param(
        lambda: pd.DataFrame({"user": [], "item": []}),
        ValueError,
        r"interactions is empty",
        id="empty-df",
    ),
    pytest.param(
        lambda: sp.csr_matrix((3, 4)), ValueError, r"interactions is empty", id="empty-sp"
    ),
    pytest.param(
        lambda: sp.coo_matrix((np.zeros(2), ([0, 1], [1, 0])), shape=(2, 2)),
        ValueError,
        r"interactions is empty",
        id="all-zero-sparse",
    ),
    pytest.param(
        lambda: np.zeros((3, 4), dtype=np.int64),
        ValueError,
        r"interactions must have shape \(n_interactions, 2\) or \(n_interactions, 3\) "
        r"\(user, item\[, weight\]\), got shape \(3, 4\)",
        id="n4",
    ),
    pytest.param(
        lambda: np.arange(6),
        ValueError,
        r"interactions must have shape \(n_interactions, 2\).*got shape \(6,\)",
        id="1d",
    ),
    pytest.param(
        lambda: np.zeros((2, 2, 2), dtype=np.int64),
        ValueError,
        r"interactions must have shape .*got shape \(2, 2, 2\)",
        id="3d",
    ),
    pytest.param(
        lambda: np.array(["a", "b"], dtype=object),
        ValueError,
        r"interactions must have shape .*got shape \(2,\)",
        id="1d-object-strings",
    ),
    pytest.param(
        lambda: [[0, 1], [0, 1, 2, 3]],
        ValueError,
        r"interactions is ragged.*every row must be \(user, item\) or \(user, item, weight\)",
        id="ragged-list",
    ),
    pytest.param(
        lambda: np.array([[0, 1], [2]], dtype=object),
        ValueError,
        r"interactions is ragged; every row must be",
        id="ragged-object-array",
    ),
    pytest.param(
        lambda: _obj_array([[None, 1], [2, 3]]),
        ValueError,
        r"interactions user ids contain missing values \(None/NaN\); drop those rows",
        id="object-none",
    ),
    pytest.param(
        lambda: _obj_array([[0, float("nan")], [2, 3]]),
        ValueError,
        r"interactions item ids contain missing values \(None/NaN\); drop those rows",
        id="object-nan",
    ),
    pytest.param(
        lambda: _obj_array([[[1, 2], 1], [2, 3]]),
        TypeError,
        r"interactions user ids contain a value of type list that cannot be an id; ids must be",
        id="object-list",
    ),
    pytest.param(
        lambda: _obj_array([[0, {"a": 1}], [2, 3]]),
        TypeError,
        r"interactions item ids contain a value of type dict that cannot be an id",
        id="object-dict",
    ),
    pytest.param(
        lambda: _obj_array([[True, 1], [2, 3]]),
        TypeError,
        r"interactions user ids contain booleans; ids must be integers or strings",
        id="object-bool",
    ),
    pytest.param(
        lambda: pd.DataFrame({"user": [True, False], "item": [1, 2]}),
        TypeError,
        r"interactions\['user'\] are booleans; ids must be integers or strings",
        id="bool-column",
    ),
    pytest.param(
        lambda: {"user": [0], "item": [1]},
        TypeError,
        r"interactions must be a DataFrame, an \(n, 2\) / \(n, 3\) array of ids or a sparse",
        id="mapping",
    ),
]


@pytest.mark.parametrize(("make", "exc", "match"), BAD_INTERACTIONS)
def test_bad_interactions(make, exc, match):
    X = make()
    before = snapshot(X)
    with pytest.raises(exc, match=match):
        check_interactions(X)
    assert_unchanged(before, X)


def test_none_interactions():
    with pytest.raises(TypeError, match=r"interactions is None; pass a DataFrame, an \(n, 2\)"):
        check_interactions(None)


def test_error_messages_use_the_given_argument_name():
    with pytest.raises(ValueError, match=r"^validation_data is empty"):
        check_interactions(np.empty((0, 2)), name="validation_data")
    with pytest.raises(ValueError, match=r"^X user ids contain negative values"):
        check_interactions([[-1, 0]], name="X")


BAD_FEATURES = [
    pytest.param(
        lambda: ([[0, 1]], {"visual": np.array([[1.0, np.nan], [0.0, 1.0]])}),
        ValueError,
        r"modality_features\['visual'\] contains 1 NaN or infinite value\(s\); remove or impute",
        id="nan-features",
    ),
    pytest.param(
        lambda: ([[0, 1]], {"visual": np.array([[1.0, np.inf], [-np.inf, 1.0]])}),
        ValueError,
        r"modality_features\['visual'\] contains 2 NaN or infinite",
        id="inf-features",
    ),
    pytest.param(
        lambda: ([[0, 1]], {"v": pd.DataFrame([[np.nan], [1.0]], index=[0, 1])}),
        ValueError,
        r"modality_features\['v'\] contains 1 NaN",
        id="nan-features-df",
    ),
    pytest.param(
        lambda: ([[0, 1], [1, 5]], {"visual": np.ones((4, 2))}),
        ValueError,
        r"interactions reference item index 5, but the modality_features arrays have only 4 "
        r"rows; feature row i must describe item i",
        id="item-index-beyond-rows",
    ),
    pytest.param(
        lambda: (sp.csr_matrix(np.eye(3)), {"visual": np.ones((4, 2))}),
        ValueError,
        r"modality_features has 4 rows but the interactions have 3 items; feature row i must",
        id="sparse-columns-vs-rows",
    ),
    pytest.param(
        lambda: ([[0, 1]], {"a": np.ones((3, 2)), "b": np.ones((4, 2))}),
        ValueError,
        r"modality_features modalities have different numbers of rows \{'a': 3, 'b': 4\}",
        id="row-count-mismatch",
    ),
    pytest.param(
        lambda: (
            pd.DataFrame({"user": ["u", "u", "w"], "item": ["a", "z", "y"]}),
            {"visual": pd.DataFrame(np.ones((2, 2)), index=["a", "b"])},
        ),
        ValueError,
        r"interactions reference 2 item\(s\) that have no features \('y', 'z'\); add rows for "
        r"them to every modality DataFrame or drop those interactions",
        id="df-missing-items",
    ),
    pytest.param(
        lambda: ([["u", "a"]], {"visual": np.ones((2, 2))}),
        ValueError,
        r"item ids are not integers, but modality_features are plain arrays.*Pass DataFrames",
        id="string-items-with-array-features",
    ),
    pytest.param(
        lambda: ([[0, 1]], {}),
        ValueError,
        r"modality_features is empty; give at least one modality",
        id="empty-mapping",
    ),
    pytest.param(
        lambda: ([[0, 1]], [np.ones((2, 2))]),
        TypeError,
        r"modality_features must be a mapping \{modality_name: array of shape \(n_items, d\)\}, "
        r"got list",
        id="list",
    ),
    pytest.param(
        lambda: ([[0, 1]], np.ones((2, 2))),
        TypeError,
        r"modality_features must be a mapping .*got ndarray",
        id="array",
    ),
    pytest.param(
        lambda: ([[0, 1]], {"a": np.ones((2, 2)), "b": pd.DataFrame(np.ones((2, 2)))}),
        TypeError,
        r"modality_features mixes DataFrames \(indexed by item id\) and plain arrays; give every",
        id="mixed-df-array",
    ),
    pytest.param(
        lambda: ([[0, 1]], {1: np.ones((2, 2))}),
        TypeError,
        r"modality_features keys must be non-empty strings \(modality names\), got 1",
        id="int-key",
    ),
    pytest.param(
        lambda: ([[0, 1]], {"": np.ones((2, 2))}),
        TypeError,
        r"modality_features keys must be non-empty strings",
        id="empty-key",
    ),
    pytest.param(
        lambda: ([[0, 1]], {"v": np.ones(2)}),
        ValueError,
        r"modality_features\['v'\] must have shape \(n_items, n_features\), got shape \(2,\)",
        id="1d-features",
    ),
    pytest.param(
        lambda: ([[0, 1]], {"v": [[1.0, 2.0], [3.0]]}),
        ValueError,
        r"modality_features\['v'\] is ragged or malformed",
        id="ragged-features",
    ),
    pytest.param(
        lambda: ([[0, 1]], {"v": np.array([["a", "b"], ["c", "d"]])}),
        TypeError,
        r"modality_features\['v'\] must be numeric",
        id="string-features",
    ),
]


@pytest.mark.parametrize(("make", "exc", "match"), BAD_FEATURES)
def test_bad_features(make, exc, match):
    X, features = make()
    before_x, before_f = snapshot(X), snapshot(features)
    with pytest.raises(exc, match=match):
        resolve_universes(check_interactions(X), features)
    assert_unchanged(before_x, X)
    assert_unchanged(before_f, features)


def test_features_required():
    rows = check_interactions([[0, 1]])
    with pytest.raises(TypeError, match=r"modality_features is missing; pass \{modality_name"):
        resolve_universes(rows, None, require_features=True)
    with pytest.raises(TypeError, match=r"modality_features must be a mapping .*got NoneType"):
        check_modality_features(None)
    # Optional features: None is fine and the items come from the interactions.
    _, items, feats = resolve_universes(rows, None)
    assert feats is None and items.ids.tolist() == [1]


def test_sparse_interactions_with_fewer_feature_rows_in_dataframe_form_are_named():
    rows = check_interactions(sp.csr_matrix(np.eye(3)))
    frame = pd.DataFrame(np.ones((2, 2)), index=[0, 1])
    with pytest.raises(ValueError, match=r"reference 1 item\(s\) that have no features \(2\)"):
        resolve_universes(rows, {"v": frame})


# ---------------------------------------------------------------------------------------------
# check_k and validate_params
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "exc", "match"),
    [
        (0, ValueError, r"^k must be >= 1, got 0\.$"),
        (-5, ValueError, r"^k must be >= 1, got -5\.$"),
        (np.int64(0), ValueError, r"^k must be >= 1, got 0\.$"),
        (2.0, TypeError, r"^k must be an integer >= 1, got 2\.0\.$"),
        (True, TypeError, r"^k must be an integer >= 1, got True\.$"),
        ("3", TypeError, r"^k must be an integer >= 1, got '3'\.$"),
        (None, TypeError, r"^k must be an integer >= 1, got None\.$"),
    ],
)
def test_check_k_rejects(k, exc, match):
    with pytest.raises(exc, match=match):
        check_k(k)


def test_check_k_accepts_and_bounds():
    assert check_k(1) == 1 and type(check_k(np.int32(7))) is int
    assert check_k(5, upper=5) == 5
    with pytest.raises(ValueError, match=r"^n must be <= 4, got 5\.$"):
        check_k(5, name="n", upper=4)


@pytest.mark.parametrize(
    ("value", "constraints", "expected"),
    [
        (
            2.5,
            [Interval(numbers.Real, 0, 1)],
            "The 'p' parameter must be a float in the range [0, 1]; got 2.5.",
        ),
        (
            0,
            [Interval(numbers.Integral, 1, None)],
            "The 'p' parameter must be an int in the range [1, inf]; got 0.",
        ),
        (
            1.0,
            [Interval(numbers.Real, 0, 1, closed="left")],
            "The 'p' parameter must be a float in the range [0, 1); got 1.0.",
        ),
        (
            0,
            [Interval(numbers.Real, 0, None, closed="neither")],
            "The 'p' parameter must be a float in the range (0, inf); got 0.",
        ),
        (
            "adam ",
            [Options(["sgd", "adam"])],
            "The 'p' parameter must be one of {'adam', 'sgd'}; got 'adam '.",
        ),
        (
            -1,
            [Interval(numbers.Integral, 0, None), None],
            "The 'p' parameter must be an int in the range [0, inf] or None; got -1.",
        ),
        (3, [str, None], "The 'p' parameter must be str or None; got 3."),
        (
            "x",
            [Predicate(lambda v: v > 0, "a positive number")],
            "The 'p' parameter must be a positive number; got 'x'.",
        ),
        (
            True,
            [Interval(numbers.Integral, 0, None)],
            "The 'p' parameter must be an int in the range [0, inf]; got True.",
        ),
        (
            float("nan"),
            [Interval(numbers.Real, None, None)],
            "The 'p' parameter must be a float in the range [-inf, inf]; got nan.",
        ),
        (
            np.float32("inf"),
            [Interval(numbers.Real, 0, None)],
            "The 'p' parameter must be a float in the range [0, inf]; got np.float32(inf).",
        ),
        (
            1.5,
            [Interval(numbers.Integral, 1, 10)],
            "The 'p' parameter must be an int in the range [1, 10]; got 1.5.",
        ),
    ],
)
def test_validate_params_messages(value, constraints, expected):
    with pytest.raises(ValueError) as info:
        validate_params({"p": value, "other": 1}, {"p": constraints})
    assert str(info.value) == expected


def test_validate_params_accepts():
    constraints = {
        "a": [Interval(numbers.Real, 0, 1, closed="neither")],
        "b": [Interval(numbers.Integral, 1, None)],
        "c": [Options({"x", "y"}), None],
        "d": [bool],
        "e": [np.random.Generator, None],
    }
    validate_params(
        {"a": np.float32(0.5), "b": np.int64(3), "c": None, "d": False, "e": None}, constraints
    )
    validate_params(
        {"a": 0.999, "b": 1, "c": "y", "d": True, "e": np.random.default_rng(0)}, constraints
    )
    with pytest.raises(ValueError, match=r"The 'd' parameter must be bool; got 1\."):
        validate_params({"a": 0.5, "b": 1, "c": None, "d": 1, "e": None}, constraints)
    with pytest.raises(
        ValueError, match=r"The 'a' parameter must be a float in the range \(0, 1\)"
    ):
        validate_params({"a": 0.0, "b": 1, "c": None, "d": True, "e": None}, constraints)


# ---------------------------------------------------------------------------------------------
# pandas stays optional
# ---------------------------------------------------------------------------------------------

# One interpreter: record who first asks for pandas, then refuse it as if it were not installed,
# and check that the package still imports and works.
_PANDAS_SPY = textwrap.dedent(
    """
    import json, sys, traceback

    class Spy:
        stack = None

        def find_spec(self, name, path=None, target=None):
            if name == "pandas" or name.startswith("pandas."):
                if Spy.stack is None:
                    Spy.stack = [
                        f.filename.replace("\\\\", "/")
                        for f in traceback.extract_stack()[:-1]
                        if "importlib" not in f.filename and "<frozen" not in f.filename
                    ]
                raise ModuleNotFoundError("No module named 'pandas' (blocked)", name=name)
            return None

    sys.meta_path.insert(0, Spy())
    import numpy as np
    import diffmm, diffmm.baselines, diffmm.metrics, diffmm.model_selection, diffmm.datasets

    model = diffmm.PopularityRecommender().fit(np.array([[0, 0], [1, 0], [1, 1]]))
    print(json.dumps({
        "wanted": Spy.stack is not None,
        "stack": Spy.stack or [],
        "recommended": model.recommend([0], n=1)[0].tolist(),
    }))
    """
)


@pytest.fixture(scope="module")
def pandas_import():
    done = subprocess.run(
        [sys.executable, "-c", _PANDAS_SPY], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"diffmm fails without pandas:\n{done.stderr}"
    return json.loads(done.stdout)


def test_diffmm_works_without_pandas(pandas_import):
    assert pandas_import["recommended"] == [[1]]


def test_no_diffmm_module_imports_pandas(pandas_import):
    if pandas_import["wanted"]:
        importer = pandas_import["stack"][-1]
        assert "/diffmm/" not in importer, f"pandas is imported at import time by {importer}"


def test_import_diffmm_does_not_import_pandas(pandas_import):
    if pandas_import["wanted"]:
        importer = pandas_import["stack"][-1]
        via = [f for f in pandas_import["stack"] if "/diffmm/" in f]
        if "/sklearn/" in importer:
            pytest.skip(
                f"scikit-learn imports pandas itself ({importer}), reached from "
                f"{via[-1] if via else 'diffmm'}; diffmm cannot avoid it while it subclasses "
                "sklearn.base.BaseEstimator."
            )
    assert not pandas_import["wanted"], f"pandas imported via {pandas_import['stack']}"


def test_copy_helpers_detect_changes():
    # The "unchanged" checks above must be able to fail.
    X = np.array([[0, 1.0]])
    before = snapshot(X)
    X[0, 1] = np.nan
    with pytest.raises(AssertionError):
        assert_unchanged(before, X)
    df = pd.DataFrame({"a": [1]})
    before = snapshot({"f": df})
    df.loc[0, "a"] = 2
    with pytest.raises(AssertionError):
        assert_unchanged(before, {"f": df})
    S = sp.csr_matrix(np.eye(2))
    before = snapshot(S)
    S.data[0] = 5
    with pytest.raises(AssertionError):
        assert_unchanged(before, S)
    assert copy.deepcopy(before) == before
