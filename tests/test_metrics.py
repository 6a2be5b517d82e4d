"""Tests for diffmm.metrics."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from diffmm import metrics as M
from diffmm._ranking import rank
from diffmm.metrics import (
    METRICS,
    catalogue_coverage_at_k,
    evaluate,
    get_metric,
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    rank_items,
    recall_at_k,
)

PER_USER = {
    "recall": recall_at_k,
    "precision": precision_at_k,
    "ndcg": ndcg_at_k,
    "hit_rate": hit_rate_at_k,
    "map": map_at_k,
    "mrr": mrr_at_k,
}

SETTINGS = settings(max_examples=50, deadline=None)


# ----------------------------------------------------------------------------
# Slow, obvious reference implementations (per-user Python loops)
# ----------------------------------------------------------------------------


def ref_user(name: str, ranked: list[int], relevant: set[int], k: int) -> float:
    ranked = list(ranked[:k])
    hit_flags = [item >= 0 and item in relevant for item in ranked]
    n_hits = sum(hit_flags)
    if name == "recall":
        return n_hits / len(relevant)
    if name == "precision":
        return n_hits / k
    if name == "ndcg":
        dcg = sum(1.0 / math.log2(r + 2) for r, h in enumerate(hit_flags) if h)
        idcg = sum(1.0 / math.log2(r + 2) for r in range(min(len(relevant), k)))
        return dcg / idcg
    if name == "hit_rate":
        return 1.0 if n_hits else 0.0
    if name == "map":
        total, seen = 0.0, 0
        for r, h in enumerate(hit_flags):
            if h:
                seen += 1
                total += seen / (r + 1)
        return total / min(len(relevant), k)
    if name == "mrr":
        for r, h in enumerate(hit_flags):
            if h:
                return 1.0 / (r + 1)
        return 0.0
    raise AssertionError(name)


def ref_metric(name: str, top: np.ndarray, held: sp.spmatrix, k: int):
    dense = held.toarray()
    per_user = []
    for u in range(top.shape[0]):
        relevant = {int(i) for i in np.flatnonzero(dense[u])}
        if not relevant:
            per_user.append(np.nan)
        else:
            per_user.append(ref_user(name, [int(x) for x in top[u]], relevant, k))
    per_user = np.array(per_user, dtype=float)
    return float(np.nanmean(per_user)), per_user


def ref_rank(scores: np.ndarray, k: int, excluded: np.ndarray):
    """Stable descending sort per user, excluded items dropped, padded."""
    n_users, _ = scores.shape
    items = np.full((n_users, k), -1, dtype=np.int64)
    vals = np.full((n_users, k), -np.inf)
    for u in range(n_users):
        cand = [i for i in range(scores.shape[1]) if not excluded[u, i]]
        cand.sort(key=lambda i: (-float(scores[u, i]), i))
        for j, i in enumerate(cand[:k]):
            items[u, j] = i
            vals[u, j] = scores[u, i]
    return items, vals


# ----------------------------------------------------------------------------
# Strategies
# ----------------------------------------------------------------------------


@st.composite
def ranking_problem(draw, min_ranked: int = 1):
    """(top_items, held_out csr, k): distinct items per row, random -1 padding."""
    n_users = draw(st.integers(1, 7))
    n_items = draw(st.integers(max(min_ranked, 1), 12))
    n_ranked = draw(st.integers(min_ranked, n_items))
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.sampled_from([0.0, 0.1, 0.3, 0.7]))
    pad_prob = draw(st.sampled_from([0.0, 0.2, 0.6]))
    rng = np.random.default_rng(seed)
    top = np.stack([rng.permutation(n_items)[:n_ranked] for _ in range(n_users)])
    top = np.where(rng.random(top.shape) < pad_prob, -1, top).astype(np.int64)
    held = (rng.random((n_users, n_items)) < density).astype(np.float64)
    held[0, rng.integers(n_items)] = 1.0  # at least one evaluable user
    k = draw(st.integers(1, n_ranked))
    return top, sp.csr_matrix(held), k


@st.composite
def held_out_problem(draw):
    """Random held-out sets (each user has >= 1 item) and a cut-off k."""
    n_users = draw(st.integers(1, 7))
    n_items = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    held = rng.random((n_users, n_items)) < rng.uniform(0.05, 0.8)
    held[np.arange(n_users), rng.integers(n_items, size=n_users)] = True
    k = draw(st.integers(1, n_items))
    return held, k, rng


# ----------------------------------------------------------------------------
# Hand-computed example
# ----------------------------------------------------------------------------

# 4 users, 8 items.  User 1 has no held-out item; user 3 has no hit.
TOP = np.array(
    [
        [0, 1, 2, 3],
        [5, 0, -1, -1],
        [2, 4, -1, -1],
        [3, 2, 1, 0],
    ]
)
HELD_DENSE = np.zeros((4, 8))
HELD_DENSE[0, [1, 3, 5]] = 1
HELD_DENSE[2, 4] = 1
HELD_DENSE[3, 5] = 1
HELD = sp.csr_matrix(HELD_DENSE)

L3 = 1 / math.log2(3)
L5 = 1 / math.log2(5)
# Per-user values (users 0, 2, 3) at k=4 and k=2.
EXPECTED = {
    ("recall", 4): [2 / 3, 1.0, 0.0],
    ("recall", 2): [1 / 3, 1.0, 0.0],
    ("precision", 4): [2 / 4, 1 / 4, 0.0],
    ("precision", 2): [1 / 2, 1 / 2, 0.0],
    ("ndcg", 4): [(L3 + L5) / (1 + L3 + 0.5), L3, 0.0],
    ("ndcg", 2): [L3 / (1 + L3), L3, 0.0],
    ("hit_rate", 4): [1.0, 1.0, 0.0],
    ("hit_rate", 2): [1.0, 1.0, 0.0],
    ("map", 4): [(1 / 2 + 2 / 4) / 3, 1 / 2, 0.0],
    ("map", 2): [(1 / 2) / 2, 1 / 2, 0.0],
    ("mrr", 4): [1 / 2, 1 / 2, 0.0],
    ("mrr", 2): [1 / 2, 1 / 2, 0.0],
}


@pytest.mark.parametrize(("name", "k"), sorted(EXPECTED))
def test_hand_computed(name, k):
    expected = EXPECTED[(name, k)]
    mean, per_user = PER_USER[name](TOP, HELD, k, return_per_user=True)
    assert isinstance(mean, float)
    assert per_user.dtype == np.float64
    assert per_user.shape == (4,)
    assert np.isnan(per_user[1])
    np.testing.assert_allclose(per_user[[0, 2, 3]], expected, rtol=1e-12)
    assert mean == pytest.approx(np.mean(expected), rel=1e-12)
    assert PER_USER[name](TOP, HELD, k) == pytest.approx(mean, rel=1e-12)


def test_k_none_uses_all_columns():
    for fn in PER_USER.values():
        assert fn(TOP, HELD) == fn(TOP, HELD, 4)


def test_coverage_hand_computed():
    assert catalogue_coverage_at_k(TOP, 8) == pytest.approx(6 / 8)
    assert catalogue_coverage_at_k(TOP, 8, k=1) == pytest.approx(4 / 8)
    assert catalogue_coverage_at_k(TOP, 8, k=2) == pytest.approx(6 / 8)
    assert catalogue_coverage_at_k(TOP[2:], 8, k=1) == pytest.approx(2 / 8)
    assert catalogue_coverage_at_k(np.full((2, 3), -1), 5) == 0.0


def test_all_sparse_formats_and_sparse_arrays_agree():
    expected = ndcg_at_k(TOP, HELD, 3, return_per_user=True)[1]
    for conv in (
        sp.csc_matrix,
        sp.coo_matrix,
        sp.lil_matrix,
        sp.dok_matrix,
        sp.csr_array,
        sp.coo_array,
    ):
        got = ndcg_at_k(TOP, conv(HELD_DENSE), 3, return_per_user=True)[1]
        np.testing.assert_array_equal(got, expected)


def test_explicit_zeros_and_duplicates():
    # Explicit stored zero for (0, 0) must not count; duplicate (0, 1) counts once.
    held = sp.coo_matrix(
        (np.array([0.0, 1.0, 1.0]), (np.array([0, 0, 0]), np.array([0, 1, 1]))), shape=(1, 4)
    )
    top = np.array([[0, 1, 2]])
    assert recall_at_k(top, held) == 1.0
    assert precision_at_k(top, held) == pytest.approx(1 / 3)


def test_integer_dtypes_and_lists_accepted():
    for dtype in (np.int32, np.int64, np.uint16):
        top = np.array([[1, 0], [2, 1]], dtype=dtype)
        held = sp.csr_matrix(np.array([[0, 1, 0], [0, 1, 0]]))
        assert recall_at_k(top, held) == 1.0
    assert recall_at_k([[1, 0]], sp.csr_matrix([[0, 1]])) == 1.0


def test_padding_does_not_collide_with_previous_users_last_item():
    # -1 in row u must not be mistaken for item n_items - 1 of row u - 1.
    held = sp.csr_matrix(np.array([[0, 0, 1], [0, 0, 1]]))
    top = np.array([[2, 0], [-1, -1]])
    _, per_user = hit_rate_at_k(top, held, return_per_user=True)
    np.testing.assert_array_equal(per_user, [1.0, 0.0])


def test_inputs_not_modified():
    top = TOP.copy()
    held = sp.coo_matrix(HELD_DENSE)
    held_copy = held.copy()
    evaluate(top, held, metrics=list(METRICS), ks=[1, 4])
    np.testing.assert_array_equal(top, TOP)
    np.testing.assert_array_equal(held.row, held_copy.row)
    np.testing.assert_array_equal(held.col, held_copy.col)
    np.testing.assert_array_equal(held.data, held_copy.data)


# ----------------------------------------------------------------------------
# Property-based tests
# ----------------------------------------------------------------------------


@SETTINGS
@given(ranking_problem())
def test_matches_reference_and_in_unit_interval(problem):
    top, held, k = problem
    for name, fn in PER_USER.items():
        mean, per_user = fn(top, held, k, return_per_user=True)
        ref_mean, ref_per_user = ref_metric(name, top, held, k)
        np.testing.assert_allclose(per_user, ref_per_user, rtol=1e-12, atol=1e-12)
        assert mean == pytest.approx(ref_mean, rel=1e-12, abs=1e-12)
        valid = per_user[~np.isnan(per_user)]
        assert np.all((valid >= 0) & (valid <= 1)), name
        assert 0.0 <= mean <= 1.0
    cov = catalogue_coverage_at_k(top, held.shape[1], k)
    assert 0.0 <= cov <= 1.0


@SETTINGS
@given(ranking_problem())
def test_users_without_held_out_are_skipped(problem):
    top, held, k = problem
    empty = np.asarray(held.getnnz(axis=1)) == 0
    for fn in PER_USER.values():
        mean, per_user = fn(top, held, k, return_per_user=True)
        np.testing.assert_array_equal(np.isnan(per_user), empty)
        assert mean == pytest.approx(float(np.mean(per_user[~empty])), rel=1e-12)
    res = evaluate(top, held, metrics=list(PER_USER), ks=[k])
    assert res["n_users_evaluated"] == int((~empty).sum())
    assert res["n_users_skipped"] == int(empty.sum())


@SETTINGS
@given(ranking_problem(), st.integers(0, 2**32 - 1))
def test_invariant_to_permuting_users(problem, seed):
    top, held, k = problem
    perm = np.random.default_rng(seed).permutation(top.shape[0])
    for fn in PER_USER.values():
        mean, per_user = fn(top, held, k, return_per_user=True)
        mean_p, per_user_p = fn(top[perm], held[perm], k, return_per_user=True)
        assert mean_p == pytest.approx(mean, rel=1e-12)
        np.testing.assert_array_equal(per_user_p, per_user[perm])


@SETTINGS
@given(ranking_problem())
def test_padding_never_counts(problem):
    top, held, k = problem
    # Replacing every entry by padding gives zero everywhere.
    padded = np.full_like(top, -1)
    for fn in PER_USER.values():
        _, per_user = fn(padded, held, k, return_per_user=True)
        assert np.all(per_user[~np.isnan(per_user)] == 0.0)
    # Padding some positions never increases the number of hits.
    _, base = precision_at_k(top, held, k, return_per_user=True)
    more_pad = top.copy()
    more_pad[:, ::2] = -1
    _, fewer = precision_at_k(more_pad, held, k, return_per_user=True)
    ok = ~np.isnan(base)
    assert np.all(fewer[ok] <= base[ok])


@SETTINGS
@given(held_out_problem())
def test_perfect_ranking(problem):
    held, k, rng = problem
    # Held-out items first (in random order), then the rest.
    order_key = np.where(held, 0.0, 1.0) + rng.random(held.shape) * 0.5
    top = np.argsort(order_key, axis=1)[:, :k]
    csr = sp.csr_matrix(held.astype(float))
    n_rel = held.sum(axis=1)
    for name in ("ndcg", "hit_rate", "mrr", "map"):
        mean, per_user = PER_USER[name](top, csr, k, return_per_user=True)
        np.testing.assert_allclose(per_user, 1.0, rtol=1e-12)
        assert mean == pytest.approx(1.0, rel=1e-12)
    _, recall = recall_at_k(top, csr, k, return_per_user=True)
    np.testing.assert_allclose(recall[n_rel <= k], 1.0)
    np.testing.assert_allclose(recall[n_rel > k], k / n_rel[n_rel > k])
    _, precision = precision_at_k(top, csr, k, return_per_user=True)
    np.testing.assert_allclose(precision, np.minimum(n_rel, k) / k)


# ----------------------------------------------------------------------------
# evaluate / registry
# ----------------------------------------------------------------------------


def test_evaluate_matches_individual_functions():
    res = evaluate(TOP, HELD, metrics=list(METRICS), ks=(2, 4))
    for name in PER_USER:
        for k in (2, 4):
            assert res[f"{name}@{k}"] == PER_USER[name](TOP, HELD, k)
    assert res["coverage@2"] == catalogue_coverage_at_k(TOP, 8, 2)
    assert res["coverage@4"] == catalogue_coverage_at_k(TOP, 8, 4)
    assert res["n_users_evaluated"] == 3
    assert res["n_users_skipped"] == 1
    assert isinstance(res["n_users_evaluated"], int)
    assert all(isinstance(v, float) for key, v in res.items() if "@" in key)


def test_evaluate_defaults_and_scalar_arguments():
    top = np.tile(np.arange(25), (2, 1))
    held = sp.csr_matrix(np.eye(2, 30))
    res = evaluate(top, held)
    assert set(res) == {
        "recall@10",
        "recall@20",
        "ndcg@10",
        "ndcg@20",
        "precision@10",
        "precision@20",
        "n_users_evaluated",
        "n_users_skipped",
    }
    assert res["recall@10"] == 1.0
    assert evaluate(top, held, metrics="mrr", ks=5) == {
        "mrr@5": 0.75,
        "n_users_evaluated": 2,
        "n_users_skipped": 0,
    }


def test_evaluate_coverage_only_without_held_out():
    res = evaluate(TOP, sp.csr_matrix((4, 8)), metrics=["coverage"], ks=[4])
    assert res == {"coverage@4": 0.75, "n_users_evaluated": 0, "n_users_skipped": 4}


def test_registry():
    assert set(METRICS) == {"recall", "precision", "ndcg", "hit_rate", "map", "mrr", "coverage"}
    for name, fn in METRICS.items():
        assert get_metric(name) is fn
    assert get_metric("coverage") is catalogue_coverage_at_k
    with pytest.raises(TypeError):
        METRICS["x"] = recall_at_k  # type: ignore[index]


# ----------------------------------------------------------------------------
# Bad inputs
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("fn", list(PER_USER.values()))
def test_bad_k(fn):
    with pytest.raises(ValueError, match=r"k must be between 1 and 4"):
        fn(TOP, HELD, 0)
    with pytest.raises(ValueError, match=r"k must be between 1 and 4"):
        fn(TOP, HELD, 5)
    with pytest.raises(ValueError, match=r"k must be an int"):
        fn(TOP, HELD, 2.0)
    with pytest.raises(ValueError, match=r"k must be an int"):
        fn(TOP, HELD, True)


@pytest.mark.parametrize("fn", list(PER_USER.values()))
def test_bad_top_items(fn):
    with pytest.raises(ValueError, match=r"top_items must be a 2-D array"):
        fn(np.array([0, 1, 2]), HELD[:1])
    with pytest.raises(TypeError, match=r"top_items must hold integer item indices"):
        fn(TOP.astype(float), HELD)
    with pytest.raises(TypeError, match=r"top_items must hold integer"):
        fn(TOP > 0, HELD)
    with pytest.raises(ValueError, match=r"held_out has 3 rows but top_items has 4"):
        fn(TOP, HELD[:3])
    with pytest.raises(ValueError, match=r"item indices must be >= 0"):
        fn(np.where(TOP == 0, -2, TOP), HELD)
    with pytest.raises(ValueError, match=r"item index 8 .* only 8 items"):
        fn(np.where(TOP == 0, 8, TOP), HELD)
    with pytest.raises(ValueError, match=r"same item more than once in row 2"):
        fn(np.where(TOP == 4, 2, TOP), HELD)
    with pytest.raises(ValueError, match=r"no columns"):
        fn(np.zeros((4, 0), dtype=int), HELD)


@pytest.mark.parametrize("fn", list(PER_USER.values()))
def test_bad_held_out(fn):
    with pytest.raises(TypeError, match=r"held_out must be a scipy.sparse matrix"):
        fn(TOP, HELD_DENSE)
    with pytest.raises(ValueError, match=r"no user has a held-out item"):
        fn(TOP, sp.csr_matrix((4, 8)))


def test_duplicates_beyond_k_are_ignored():
    top = np.array([[0, 1, 1]])
    assert recall_at_k(top, sp.csr_matrix([[1, 0]]), k=2) == 1.0


def test_bad_metric_names():
    with pytest.raises(ValueError, match=r"unknown metric 'auc'.*allowed names are: recall"):
        evaluate(TOP, HELD, metrics=["recall", "auc"], ks=[2])
    with pytest.raises(ValueError, match=r"unknown metric 'auc'.*coverage"):
        get_metric("auc")
    with pytest.raises(ValueError, match=r"metrics is empty"):
        evaluate(TOP, HELD, metrics=[], ks=[2])
    with pytest.raises(ValueError, match=r"ks is empty"):
        evaluate(TOP, HELD, ks=[])
    with pytest.raises(ValueError, match=r"ks entry must be between 1 and 4"):
        evaluate(TOP, HELD, ks=[2, 10])


def test_bad_coverage_arguments():
    with pytest.raises(ValueError, match=r"n_items must be an int >= 1"):
        catalogue_coverage_at_k(TOP, 0)
    with pytest.raises(ValueError, match=r"item index 5 .* only 5 items"):
        catalogue_coverage_at_k(TOP, 5)
    with pytest.raises(ValueError, match=r"k must be between 1 and 4"):
        catalogue_coverage_at_k(TOP, 8, k=9)


# ----------------------------------------------------------------------------
# rank_items
# ----------------------------------------------------------------------------


@st.composite
def scoring_problem(draw):
    n_users = draw(st.integers(1, 9))
    n_items = draw(st.integers(1, 10))
    k = draw(st.integers(1, n_items))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["float", "ties", "inf"]))
    if kind == "float":
        scores = rng.normal(size=(n_users, n_items))
    else:
        scores = rng.integers(-2, 3, size=(n_users, n_items)).astype(np.float64)
        if kind == "inf":
            scores[rng.random(scores.shape) < 0.3] = -np.inf
            scores[rng.random(scores.shape) < 0.1] = np.inf
    density = draw(st.sampled_from([0.0, 0.3, 0.8, 1.0]))
    excluded = rng.random((n_users, n_items)) < density
    return scores, excluded, k


@SETTINGS
@given(scoring_problem(), st.integers(1, 5))
def test_rank_items_matches_reference(problem, chunk_size):
    scores, excluded, k = problem
    exclude = sp.csr_matrix(excluded.astype(np.float64))
    frozen = scores.copy()
    frozen.setflags(write=False)  # any write to the caller's array would raise
    items, vals = rank_items(frozen, k, exclude=exclude, chunk_size=chunk_size)
    ref_items, ref_vals = ref_rank(scores, k, excluded)
    np.testing.assert_array_equal(items, ref_items)
    np.testing.assert_array_equal(vals, ref_vals)
    assert items.dtype == np.int64
    assert vals.dtype == np.float64
    assert not np.any(excluded[np.arange(len(items))[:, None], items] & (items >= 0))
    np.testing.assert_array_equal(frozen, scores)


@SETTINGS
@given(scoring_problem(), st.integers(1, 5))
def test_owned_blocks_are_masked_in_place_with_the_same_result(problem, chunk_size):
    # The recommenders' path: each chunk's block is fresh, so masking writes into it; the tie
    # and -inf redo must still see the block's own scores.
    scores, excluded, k = problem
    scores = scores.astype(np.float32)
    exclude = sp.csr_matrix(excluded.astype(np.float64))
    items, vals = rank(
        lambda u: scores[u].copy(),
        k,
        exclude=exclude,
        users=np.arange(len(scores)),
        chunk_size=chunk_size,
        owned_blocks=True,
    )
    ref_items, ref_vals = ref_rank(scores.astype(np.float64), k, excluded)
    np.testing.assert_array_equal(items, ref_items)
    np.testing.assert_array_equal(vals, ref_vals)


@SETTINGS
@given(scoring_problem())
def test_rank_items_chunk_size_invariant(problem):
    scores, excluded, k = problem
    exclude = sp.csc_matrix(excluded)
    base = rank_items(scores, k, exclude=exclude)
    for chunk_size in (1, 2, 3, 1000):
        items, vals = rank_items(scores, k, exclude=exclude, chunk_size=chunk_size)
        np.testing.assert_array_equal(items, base[0])
        np.testing.assert_array_equal(vals, base[1])


@SETTINGS
@given(scoring_problem(), st.integers(0, 2**32 - 1))
def test_rank_items_callable_with_user_subset(problem, seed):
    scores, excluded, k = problem
    rng = np.random.default_rng(seed)
    users = rng.integers(0, scores.shape[0], size=rng.integers(1, 8))
    calls = []

    def score_fn(user_idx):
        calls.append(len(user_idx))
        return scores[user_idx]

    exclude = sp.csr_matrix(excluded)
    items, vals = rank_items(score_fn, k, exclude=exclude, users=users, chunk_size=3)
    ref_items, ref_vals = ref_rank(scores[users], k, excluded[users])
    np.testing.assert_array_equal(items, ref_items)
    np.testing.assert_array_equal(vals, ref_vals)
    assert max(calls) <= 3
    assert sum(calls) == len(users)
    # Dense scores for the same users, rows aligned with `users`.
    items_d, vals_d = rank_items(scores[users], k, exclude=exclude, users=users)
    np.testing.assert_array_equal(items_d, ref_items)
    np.testing.assert_array_equal(vals_d, ref_vals)


def test_rank_items_basic_and_padding():
    scores = np.array([[0.1, 0.9, 0.5, 0.3], [0.8, 0.2, 0.2, 0.7]])
    exclude = sp.csr_matrix(np.array([[1, 1, 1, 0], [0, 0, 0, 0]]))
    items, vals = rank_items(scores, 3, exclude=exclude)
    np.testing.assert_array_equal(items, [[3, -1, -1], [0, 3, 1]])
    np.testing.assert_array_equal(vals, [[0.3, -np.inf, -np.inf], [0.8, 0.7, 0.2]])


def test_rank_items_excluded_ranked_below_genuine_minus_inf():
    scores = np.array([[-np.inf, -np.inf, 1.0]])
    exclude = sp.csr_matrix(np.array([[1, 0, 0]]))
    items, vals = rank_items(scores, 3, exclude=exclude)
    np.testing.assert_array_equal(items, [[2, 1, -1]])
    np.testing.assert_array_equal(vals, [[1.0, -np.inf, -np.inf]])


def test_rank_items_explicit_zero_in_exclude_is_not_excluded():
    exclude = sp.csr_matrix(
        (np.array([0.0, 1.0]), np.array([0, 1]), np.array([0, 2])), shape=(1, 3)
    )
    items, _ = rank_items(np.array([[3.0, 2.0, 1.0]]), 3, exclude=exclude)
    np.testing.assert_array_equal(items, [[0, 2, -1]])


def test_rank_items_dtypes_and_no_exclude():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(5, 7)).astype(np.float32)
    items, vals = rank_items(scores, 7)
    np.testing.assert_array_equal(items, np.argsort(-scores, axis=1, kind="stable"))
    np.testing.assert_array_equal(vals, np.sort(scores, axis=1)[:, ::-1].astype(np.float64))
    int_scores = np.array([[1, 3, 2]])
    items, vals = rank_items(int_scores, 2)
    np.testing.assert_array_equal(items, [[1, 2]])
    assert vals.dtype == np.float64
    items, _ = rank_items(np.zeros((0, 4)), 2)
    assert items.shape == (0, 2)


def test_rank_items_output_feeds_metrics():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(20, 30))
    train = sp.random(20, 30, density=0.2, random_state=2, format="csr")
    held = sp.random(20, 30, density=0.1, random_state=3, format="csr")
    items, _ = rank_items(scores, 10, exclude=train)
    res = evaluate(items, held, metrics=list(METRICS), ks=(5, 10))
    assert all(0.0 <= v <= 1.0 for key, v in res.items() if "@" in key)


def test_rank_items_bad_inputs():
    scores = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"k must be between 1 and n_items=3"):
        rank_items(scores, 4)
    with pytest.raises(ValueError, match=r"k must be an int >= 1"):
        rank_items(scores, 0)
    with pytest.raises(ValueError, match=r"chunk_size must be an int >= 1"):
        rank_items(scores, 1, chunk_size=0)
    with pytest.raises(ValueError, match=r"users is required when scores is a callable"):
        rank_items(lambda u: scores[u], 1)
    with pytest.raises(ValueError, match=r"k must be between 1 and n_items=3"):
        rank_items(lambda u: scores[u], 4, users=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"scores must be a 2-D array"):
        rank_items(np.zeros(3), 1)
    with pytest.raises(ValueError, match=r"scores contains NaN"):
        rank_items(np.array([[0.0, np.nan]]), 1)
    with pytest.raises(TypeError, match=r"exclude must be a scipy.sparse"):
        rank_items(scores, 1, exclude=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"exclude has 3 rows but scores has 2"):
        rank_items(scores, 1, exclude=sp.csr_matrix((3, 3)))
    with pytest.raises(ValueError, match=r"exclude has 4 columns but scores has 3"):
        rank_items(scores, 1, exclude=sp.csr_matrix((2, 4)))
    with pytest.raises(ValueError, match=r"users has 1 entries but scores has 2 rows"):
        rank_items(scores, 1, users=np.array([0]))
    with pytest.raises(ValueError, match=r"users contains index 5 but exclude has only 2"):
        rank_items(scores, 1, exclude=sp.csr_matrix((2, 3)), users=np.array([0, 5]))
    with pytest.raises(TypeError, match=r"users must hold integer"):
        rank_items(scores, 1, users=np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"one row per ranked user"):
        rank_items(lambda u: scores, 1, users=np.array([0]))


# ----------------------------------------------------------------------------
# Documentation
# ----------------------------------------------------------------------------


def test_docstring_examples():
    result = doctest.testmod(M, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_public_functions_documented():
    for name in M.__all__:
        obj = getattr(M, name)
        if callable(obj):
            doc = obj.__doc__ or ""
            assert "Parameters" in doc and "Returns" in doc and "Examples" in doc, name


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_topk_fast_path_equals_the_exact_ranking(seed, dtype):
    from diffmm._ranking import _rank_block, _rank_block_exact

    rng = np.random.default_rng(seed)
    n_rows, n_items, k = 40, 30, 5
    # Few distinct values: many ties, also at the k-th place; some -inf scores.
    block = rng.integers(0, 6, size=(n_rows, n_items)).astype(dtype)
    block[rng.random(block.shape) < 0.05] = -np.inf
    mask = rng.random(block.shape) < 0.3
    mask[0, :-2] = True  # a row with fewer than k candidates left
    ex_rows, ex_cols = np.nonzero(mask)
    original = block.copy()
    fast = _rank_block(block, k, ex_rows, ex_cols)
    exact = _rank_block_exact(block, k, ex_rows, ex_cols)
    np.testing.assert_array_equal(fast[0], exact[0])
    np.testing.assert_array_equal(fast[1], exact[1])
    np.testing.assert_array_equal(block, original)  # the caller's scores are never written
    continuous = rng.normal(size=(n_rows, n_items)).astype(dtype)
    fast = _rank_block(continuous, k, None, None)
    exact = _rank_block_exact(continuous, k, None, None)
    np.testing.assert_array_equal(fast[0], exact[0])
