"""Ranking: the top-k items of each user from scores, with excluded items masked.

The engine behind ``recommend``, evaluation and :func:`diffmm.metrics.rank_items` (the
public name): scores come as a dense array or, chunk by chunk, from a callable, so memory is
``chunk_size × n_items`` whatever the number of users. Ties go to the lower item index.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ._errors import InvalidInputError
from ._ids import IdMap
from ._validation import check_k, check_sparse, is_int

__all__ = [
    "factor_scores",
    "long_frame",
    "rank",
    "rank_items",
    "reusing_block",
    "similar",
    "top_n",
]


def _check_users(users: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(users)
    if arr.ndim != 1:
        raise ValueError(f"users must be a 1-D array of user indices; got shape {arr.shape}.")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"users must hold integer user indices; got dtype {arr.dtype}.")
    arr = arr.astype(np.int64, copy=False)
    if arr.min() < 0:
        raise ValueError(f"users must be non-negative indices; got {int(arr.min())}.")
    return arr


def _as_score_block(block: object, n_rows: int, n_items: int | None) -> np.ndarray:
    arr = np.asarray(block)
    if arr.ndim != 2 or arr.shape[0] != n_rows:
        raise ValueError(
            f"scores must have shape (n_users, n_items) with one row per ranked user "
            f"({n_rows} expected); got shape {arr.shape}."
        )
    if n_items is not None and arr.shape[1] != n_items:
        raise ValueError(
            f"scores has {arr.shape[1]} item columns but {n_items} were expected "
            "(from exclude or from the first chunk)."
        )
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"scores must be real numbers; got dtype {arr.dtype}.")
    return arr


def _check_k_le_items(k: int, n_items: int) -> None:
    if k > n_items:
        raise ValueError(
            f"k must be between 1 and n_items={n_items} (the number of score columns); got k={k}."
        )


def _rank_block(
    block: np.ndarray,
    k: int,
    ex_rows: np.ndarray | None,
    ex_cols: np.ndarray | None,
    *,
    owned: bool = False,
    use_torch: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of one chunk; ties broken by lower item index.

    Float scores go through ``torch.topk`` (one masked copy, or masking in place when the block
    is ``owned``, and a partial selection); rows where that could differ from the exact rule (a
    tie at the k-th place, or fewer than ``k`` finite candidates) are redone by
    :func:`_rank_block_exact`, so the result is the same. ``use_torch=False`` ranks with NumPy
    alone (the same result; for code that must not import torch).
    """
    if not use_torch or block.dtype.kind != "f" or block.dtype.itemsize < 4 or k >= block.shape[1]:
        return _rank_block_exact(block, k, ex_rows, ex_cols)
    import torch

    if not (block.flags.writeable and block.dtype.isnative):
        block = np.array(block)  # torch wants writable, native-order memory; never written
    key = torch.from_numpy(block)
    if ex_rows is not None:
        if not owned:
            key = key.clone()  # the caller's block is never written
        # (An owned block keeps the -inf: the exact redo below excludes these items anyway.)
        key[torch.from_numpy(ex_rows), torch.from_numpy(ex_cols)] = -torch.inf
    vals, idx = torch.topk(key, k + 1, dim=1)  # sorted, best first
    # topk ranks NaN above every number, so a row holding a NaN shows one in its top k + 1.
    if torch.isnan(vals).any():
        raise ValueError("scores contains NaN; replace NaN scores (e.g. with -np.inf) first.")
    unsure = (vals[:, k - 1] == vals[:, k]) | torch.isinf(vals[:, k - 1])
    vals, idx = vals[:, :k], idx[:, :k]
    # Equal scores inside the top k: lower item index first (sort by index, then stably by
    # score).
    by_index = torch.argsort(idx, dim=1)
    idx, vals = idx.gather(1, by_index), vals.gather(1, by_index)
    by_score = torch.sort(vals, dim=1, descending=True, stable=True).indices
    items = idx.gather(1, by_score).numpy().astype(np.int64)
    top_scores = vals.gather(1, by_score).numpy().astype(np.float64)
    redo = np.flatnonzero(unsure.numpy())
    if redo.size:
        sub_rows = sub_cols = None
        if ex_rows is not None:
            position = np.full(block.shape[0], -1)
            position[redo] = np.arange(redo.size)
            hit = position[ex_rows] >= 0
            sub_rows, sub_cols = position[ex_rows[hit]], ex_cols[hit]
        items[redo], top_scores[redo] = _rank_block_exact(block[redo], k, sub_rows, sub_cols)
    return items, top_scores


def _rank_block_exact(
    block: np.ndarray,
    k: int,
    ex_rows: np.ndarray | None,
    ex_cols: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of one chunk by partition and lexsort; ties broken by lower item index."""
    m = block.shape[0]
    dtype = block.dtype if block.dtype.kind == "f" else np.dtype(np.float64)
    # Work on the negated scores so smaller is better.  This is a fresh array:
    # the caller's block is never written to.
    key = block.astype(dtype, copy=True)
    np.negative(key, out=key)
    if np.isnan(key).any():
        raise ValueError("scores contains NaN; replace NaN scores (e.g. with -np.inf) first.")
    if ex_rows is not None:
        # NaN sorts after +inf, so excluded items rank below even genuine -inf
        # scores and can be told apart from them.
        key[ex_rows, ex_cols] = np.nan

    # k-th best key per row (NaN if fewer than k items are available).
    thresh = np.partition(key, k - 1, axis=1)[:, k - 1]
    short = np.isnan(thresh)
    thresh[short] = np.inf
    better = key < thresh[:, None]  # NaN compares False: excluded never selected
    tied = key == thresh[:, None]
    n_better = better.sum(axis=1)
    b_rows, b_cols = np.nonzero(better)
    t_rows, t_cols = np.nonzero(tied)  # row-major, so columns ascend within a row
    n_tied = np.bincount(t_rows, minlength=m)
    need = np.where(short, n_tied, k - n_better)
    rank_in_row = np.arange(t_rows.size) - (np.cumsum(n_tied) - n_tied)[t_rows]
    keep = rank_in_row < need[t_rows]  # lowest-index tied items win
    rows = np.concatenate([b_rows, t_rows[keep]])
    cols = np.concatenate([b_cols, t_cols[keep]])
    vals = key[rows, cols]

    order = np.lexsort((cols, vals, rows))  # by row, then key, then item index
    rows, cols, vals = rows[order], cols[order], vals[order]
    counts = np.bincount(rows, minlength=m)
    pos = np.arange(rows.size) - (np.cumsum(counts) - counts)[rows]
    items = np.full((m, k), -1, dtype=np.int64)
    top_scores = np.full((m, k), -np.inf, dtype=np.float64)
    items[rows, pos] = cols
    top_scores[rows, pos] = -vals.astype(np.float64)
    return items, top_scores


def rank_items(
    scores: npt.ArrayLike | Callable[[np.ndarray], npt.ArrayLike],
    k: int,
    *,
    exclude: sp.spmatrix | sp.sparray | None = None,
    users: npt.ArrayLike | None = None,
    chunk_size: int = 1024,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Rank items by score (highest first), masking excluded items.

    Users are processed in chunks of ``chunk_size`` so peak memory is
    ``O(chunk_size * n_items)``.  For each chunk the score block is copied
    (the caller's data is never modified), the excluded positions of that
    chunk's CSR slice are masked with vectorised fancy indexing, and the top
    ``k`` are selected with ``np.partition`` plus a sort of the selected
    entries only.

    Ties are broken deterministically by the lower item index, so the result is
    identical to a stable descending argsort and does not depend on
    ``chunk_size``.  Excluded items are never returned, even when other items
    have a score of ``-inf``: if fewer than ``k`` non-excluded items exist for
    a user, the row is padded with item ``-1`` and score ``-inf``.

    Parameters
    ----------
    scores : array_like of shape (n_rows, n_items), or callable
        Dense scores, or a function ``scores(user_indices)`` returning an array
        of shape ``(len(user_indices), n_items)``.  Integer / boolean scores
        are ranked as float64; floating scores keep their precision.  NaN
        scores are rejected.
    k : int
        Number of items to return per user, ``1 <= k <= n_items``.
    exclude : scipy.sparse matrix or array of shape (n_users_total, n_items), optional
        Stored nonzero entries are excluded (typically the training items).
        Row ``users[i]`` applies to result row ``i``.
    users : array_like of int, shape (n_users,), optional
        The users being ranked; row ``i`` of the result is ``users[i]``, which
        also indexes ``exclude`` and is passed (in chunks) to a callable
        ``scores``.  Required when ``scores`` is callable.  With dense
        ``scores``, row ``i`` of ``scores`` must already hold the scores of
        ``users[i]`` (so ``len(users) == n_rows``); it defaults to
        ``arange(n_rows)``.
    chunk_size : int, default=1024
        Number of users scored and ranked at a time.

    Returns
    -------
    top_items : ndarray of int64, shape (n_users, k)
        Item indices, best first, ``-1`` for padding.
    top_scores : ndarray of float64, shape (n_users, k)
        The corresponding scores, ``-inf`` for padding.

    Raises
    ------
    ValueError
        If ``k`` or ``chunk_size`` is out of range, shapes disagree, ``users``
        is missing for a callable, or scores contain NaN.
    TypeError
        If ``exclude`` is not sparse or ``users`` / ``scores`` have a bad dtype.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> scores = np.array([[0.1, 0.9, 0.5, 0.3], [0.8, 0.2, 0.2, 0.7]])
    >>> train = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0]]))
    >>> items, vals = rank_items(scores, 2, exclude=train)
    >>> items
    array([[2, 3],
           [0, 3]])
    >>> vals
    array([[0.5, 0.3],
           [0.8, 0.7]])
    >>> items, _ = rank_items(lambda u: scores[u], 3, users=np.array([1]))
    >>> items
    array([[0, 3, 1]])
    """
    return rank(scores, k, exclude=exclude, users=users, chunk_size=chunk_size)


def rank(
    scores: npt.ArrayLike | Callable[[np.ndarray], npt.ArrayLike],
    k: int,
    *,
    exclude: sp.spmatrix | sp.sparray | None = None,
    users: npt.ArrayLike | None = None,
    chunk_size: int = 1024,
    owned_blocks: bool = False,
    use_torch: bool = True,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """:func:`rank_items`; ``owned_blocks`` says a callable's blocks may be overwritten.

    The package's recommenders return a fresh (or scratch) block per chunk, so masking can
    write into it instead of copying it first.
    """
    if not is_int(k) or int(k) < 1:
        raise ValueError(f"k must be an int >= 1 (the number of items to return); got {k!r}.")
    k = int(k)
    if not is_int(chunk_size) or int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be an int >= 1; got {chunk_size!r}.")
    chunk_size = int(chunk_size)

    ex: Any = None
    if exclude is not None:
        check_sparse(exclude, "exclude")
        ex = exclude.tocsr()  # returns the same object for CSR input; only read

    dense: np.ndarray | None = None
    score_fn: Callable[[np.ndarray], npt.ArrayLike] | None = None
    if callable(scores):
        if users is None:
            raise ValueError(
                "users is required when scores is a callable; pass the indices of the "
                "users to rank, e.g. users=np.arange(n_users)."
            )
        score_fn = scores
        user_idx = _check_users(users)
        n_items: int | None = None if ex is None else int(ex.shape[1])
    else:
        dense = np.asarray(scores)
        if dense.ndim != 2:
            raise ValueError(
                "scores must be a 2-D array of shape (n_users, n_items) or a callable; got "
                f"shape {dense.shape}."
            )
        dense = _as_score_block(dense, dense.shape[0], None)
        n_items = int(dense.shape[1])
        if users is None:
            user_idx = np.arange(dense.shape[0], dtype=np.int64)
            if ex is not None and ex.shape[0] != dense.shape[0]:
                raise ValueError(
                    f"exclude has {ex.shape[0]} rows but scores has {dense.shape[0]}; pass "
                    "users=... to say which exclude row each scores row belongs to."
                )
        else:
            user_idx = _check_users(users)
            if user_idx.size != dense.shape[0]:
                raise ValueError(
                    f"users has {user_idx.size} entries but scores has {dense.shape[0]} rows; "
                    "with dense scores, row i of scores must hold the scores of users[i]."
                )
    if ex is not None:
        if n_items is not None and ex.shape[1] != n_items:
            raise ValueError(
                f"exclude has {ex.shape[1]} columns but scores has {n_items} items; both "
                "must cover the same item catalogue."
            )
        if user_idx.size and user_idx.max() >= ex.shape[0]:
            raise ValueError(
                f"users contains index {int(user_idx.max())} but exclude has only "
                f"{ex.shape[0]} rows."
            )
    if n_items is not None:
        _check_k_le_items(k, n_items)

    n_users = user_idx.size
    top_items = np.full((n_users, k), -1, dtype=np.int64)
    top_scores = np.full((n_users, k), -np.inf, dtype=np.float64)
    for start in range(0, n_users, chunk_size):
        stop = min(start + chunk_size, n_users)
        chunk_users = user_idx[start:stop]
        if dense is not None:
            block = dense[start:stop]
        else:
            assert score_fn is not None
            block = _as_score_block(score_fn(chunk_users.copy()), stop - start, n_items)
            if n_items is None:
                n_items = int(block.shape[1])
                _check_k_le_items(k, n_items)
        ex_rows = ex_cols = None
        if ex is not None:
            sub = ex[chunk_users]
            nz = np.asarray(sub.data) != 0
            ex_rows = np.repeat(np.arange(stop - start), np.diff(sub.indptr))[nz]
            ex_cols = np.asarray(sub.indices)[nz]
        owned = owned_blocks and dense is None
        items, vals = _rank_block(block, k, ex_rows, ex_cols, owned=owned, use_torch=use_torch)
        top_items[start:stop] = items
        top_scores[start:stop] = vals
    return top_items, top_scores


def factor_scores(
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    user_indices: np.ndarray,
    out: np.ndarray | None = None,
    *,
    use_torch: bool = True,
) -> np.ndarray:
    """``user_factors[user_indices] @ item_factors.T``, into ``out`` when it fits.

    Through torch's matmul, not NumPy's: NumPy's BLAS threads keep spinning after the product
    and take the cores from the top-k selection that follows (torch's threads).
    ``use_torch=False``: NumPy's (for code that must not import torch).
    """
    users, items = user_factors[user_indices], item_factors
    shape, dtype = (len(users), len(items)), np.result_type(users, items)
    if out is None or out.shape != shape or out.dtype != dtype:
        out = np.empty(shape, dtype=dtype)
    if use_torch and users.dtype == items.dtype == dtype and dtype in (np.float32, np.float64):
        import torch

        torch.mm(torch.from_numpy(users), torch.from_numpy(items).T, out=torch.from_numpy(out))
    else:
        np.matmul(users, items.T, out=out)
    return out


def reusing_block(score: Callable[[np.ndarray, np.ndarray | None], np.ndarray]) -> Callable:
    """``rows -> score(rows, out)`` with one scratch block reused for every chunk.

    :func:`rank_items` consumes (masks and ranks) each block before it asks for the next, so
    one array serves every chunk instead of a fresh allocation per chunk.
    """
    scratch: list[np.ndarray] = []

    def scores(rows: np.ndarray) -> np.ndarray:
        block = score(rows, scratch[0][: len(rows)] if scratch else None)
        if not scratch:
            scratch.append(block)
        return block

    return scores


def top_n(
    score_rows: Callable[[np.ndarray], np.ndarray],
    n_rows: int,
    n: int,
    universe: IdMap,
    *,
    exclude: sp.csr_matrix | None = None,
    wanted: Any = None,
    unwanted: Any = None,
    allowed: np.ndarray | None = None,
    batch_size: int = 1024,
    use_torch: bool = True,
    stacklevel: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``n`` raw ids of ``universe`` and their scores for ``n_rows`` rows of scores.

    ``score_rows(rows)`` gives rows ``rows`` of scores over the universe (a block that may be
    overwritten). ``exclude`` (rows × universe) masks entries per row; ``wanted`` /
    ``unwanted`` (raw ids) and ``allowed`` (indices) restrict the candidates of every row.
    Short lists are padded with ``universe.missing`` and score ``-inf``.
    """
    what = universe.what
    n = check_k(n, name="n")
    batch_size = check_k(batch_size, name="batch_size")
    n_columns = len(universe)
    candidates = np.arange(n_columns) if allowed is None else np.asarray(allowed)
    if wanted is not None:
        candidates = np.intersect1d(
            candidates, universe.index(np.atleast_1d(wanted), name=f"{what}s")
        )
    if unwanted is not None:
        dropped = universe.index(np.atleast_1d(unwanted), name=f"exclude_{what}s")
        candidates = np.setdiff1d(candidates, dropped, assume_unique=False)
    if candidates.size == 0:
        raise InvalidInputError(
            f"No candidate {what}s are left after `{what}s` and `exclude_{what}s`."
        )
    if n > candidates.size:
        warnings.warn(
            f"n={n} is larger than the {candidates.size} candidate {what}s; returning "
            f"{candidates.size} per row.",
            UserWarning,
            stacklevel=stacklevel + 1,
        )
        n = int(candidates.size)
    restricted = candidates.size < n_columns
    if restricted and exclude is not None:
        exclude = exclude[:, candidates]

    def block(rows: np.ndarray) -> np.ndarray:
        scores = score_rows(rows)
        return scores[:, candidates] if restricted else scores

    top, top_scores = rank(
        block,
        n,
        exclude=exclude,
        users=np.arange(n_rows),
        chunk_size=batch_size,
        owned_blocks=True,  # fresh or scratch blocks: masked in place
        use_torch=use_torch,
    )
    padding = top < 0
    top = np.where(padding, -1, candidates[np.where(padding, 0, top)])
    return universe.to_ids(top), np.where(padding, -np.inf, top_scores)


def similar(
    universe: IdMap,
    factors: np.ndarray,
    queries: Any,
    n: int,
    *,
    candidates: Any = None,
    exclude: Any = None,
    batch_size: int = 1024,
    use_torch: bool = True,
    as_frame: bool = False,
) -> Any:
    """The ``n`` most cosine-similar rows of ``factors`` to each query (never the query).

    Returns the similar raw ids and the cosine similarities, or with ``as_frame`` a long
    DataFrame (``what``, ``similar_<what>``, ``rank``, ``score``). The public
    ``similar_items`` / ``similar_users`` methods call this directly, so warnings name
    their caller.
    """
    query_idx = universe.index(np.atleast_1d(np.asarray(queries)), name=f"{universe.what}s")
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    unit = (factors / np.where(norms > 0, norms, 1.0)).astype(factors.dtype, copy=False)
    itself = sp.csr_matrix(
        (np.ones(len(query_idx), dtype=np.float32), (np.arange(len(query_idx)), query_idx)),
        shape=(len(query_idx), len(universe)),
    )

    def scores(rows: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        return factor_scores(unit, unit, query_idx[rows], out, use_torch=use_torch)

    ids, values = top_n(
        reusing_block(scores),
        len(query_idx),
        n,
        universe,
        exclude=itself,
        wanted=candidates,
        unwanted=exclude,
        batch_size=batch_size,
        use_torch=use_torch,
        stacklevel=3,
    )
    if as_frame:
        what = universe.what
        return long_frame(universe.ids[query_idx], ids, values, (what, f"similar_{what}"))
    return ids, values


def long_frame(queries: np.ndarray, ids: np.ndarray, scores: np.ndarray, names: tuple[str, str]):
    """A long DataFrame of ranked lists: ``names[0]``, ``names[1]``, ``rank``, ``score``.

    Row ``r`` of ``ids`` / ``scores`` is the list of ``queries[r]``; padding (score ``-inf``)
    is left out.
    """
    try:
        import pandas as pd
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "as_frame=True needs pandas: pip install pandas (or diffmm[pandas])."
        ) from None
    n_rows, n = ids.shape
    keep = np.isfinite(scores).ravel()
    ranks = np.tile(np.arange(1, n + 1, dtype=np.int64), n_rows)
    return pd.DataFrame(
        {
            names[0]: np.repeat(queries, n)[keep],
            names[1]: ids.ravel()[keep],
            "rank": ranks[keep],
            "score": scores.ravel().astype(np.float64)[keep],
        }
    )
