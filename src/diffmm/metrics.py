"""Vectorised top-k ranking metrics for implicit-feedback recommenders.

All per-user metrics share one calling convention:

* ``top_items`` is an integer array of shape ``(n_users, n_ranked)``; row ``u``
  is the ranked recommendation list of user ``u`` (best first).  The value
  ``-1`` marks an empty position (padding) and never counts as a hit.
* ``held_out`` is a SciPy sparse matrix (or sparse array) of shape
  ``(n_users, n_items)`` in any format; stored entries with a nonzero value are
  the relevant (held-out) items.  Row ``u`` of ``held_out`` belongs to row ``u``
  of ``top_items``.
* Only the first ``k`` columns of ``top_items`` are evaluated
  (``k=None`` means all columns).
* Scores are averaged over the users that have at least one held-out item;
  the others are skipped (``NaN`` in the per-user output).

Everything is computed with array operations (CSR ``indptr``/``indices``,
sorted linear keys and ``np.searchsorted``); there are no per-user Python
loops.  Only NumPy and SciPy are used.

:func:`rank_items` turns a score matrix (or a scoring callable) into the
``top_items`` array these metrics consume, masking out e.g. training items.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import torch

__all__ = [
    "METRICS",
    "catalogue_coverage_at_k",
    "evaluate",
    "get_metric",
    "hit_rate_at_k",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "rank_items",
    "recall_at_k",
]

PerUserResult = tuple[float, npt.NDArray[np.float64]]
_Kernel = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


# ----------------------------------------------------------------------------
# Input validation helpers
# ----------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _check_top_items(top_items: npt.ArrayLike) -> np.ndarray:
    """Return ``top_items`` as a 2-D int64 array (a copy only if a cast is needed)."""
    arr = np.asarray(top_items)
    if arr.ndim != 2:
        raise ValueError(
            "top_items must be a 2-D array of shape (n_users, n_ranked); got an array "
            f"with {arr.ndim} dimension(s) and shape {arr.shape}. For a single user's "
            "ranked list use top_items[None, :]."
        )
    if arr.dtype.kind not in "iu":
        raise TypeError(
            f"top_items must hold integer item indices; got dtype {arr.dtype}. Convert it "
            "with top_items.astype(np.int64) (use -1 for empty positions)."
        )
    if arr.shape[1] == 0:
        raise ValueError(
            "top_items has no columns (shape[1] == 0); it needs at least one ranked "
            "position per user."
        )
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < -1:
        raise ValueError(
            f"top_items contains the value {int(arr.min())}; item indices must be >= 0 "
            "and -1 is reserved for empty (padding) positions."
        )
    return arr


def _check_item_range(top: np.ndarray, n_items: int, source: str) -> None:
    if top.size and top.max() >= n_items:
        raise ValueError(
            f"top_items contains the item index {int(top.max())} but {source} has only "
            f"{n_items} items; item indices must lie in [0, {n_items}) (or be -1 for padding)."
        )


def _resolve_k(k: int | None, n_ranked: int, name: str = "k") -> int:
    if k is None:
        return n_ranked
    if not _is_int(k):
        raise ValueError(
            f"{name} must be an int between 1 and {n_ranked} (top_items.shape[1]) or None; "
            f"got {k!r} of type {type(k).__name__}."
        )
    k = int(k)
    if not 1 <= k <= n_ranked:
        raise ValueError(
            f"{name} must be between 1 and {n_ranked} (top_items.shape[1], the number of "
            f"ranked positions); got {name}={k}. Use a smaller {name} or rank more items."
        )
    return k


def _check_no_duplicates(top_k: np.ndarray) -> None:
    """Raise if a row lists the same (non-padding) item twice."""
    if top_k.shape[1] < 2:
        return
    srt = np.sort(top_k, axis=1)
    dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
    if dup.any():
        user = int(np.flatnonzero(dup.any(axis=1))[0])
        raise ValueError(
            f"top_items lists the same item more than once in row {user} (within the first "
            f"{top_k.shape[1]} columns); each ranked list must contain distinct items."
        )


def _check_sparse(matrix: object, name: str) -> None:
    if not sp.issparse(matrix):
        raise TypeError(
            f"{name} must be a scipy.sparse matrix or array of shape (n_users, n_items); got "
            f"{type(matrix).__name__}. Wrap dense data with scipy.sparse.csr_matrix({name})."
        )
    if len(matrix.shape) != 2:  # type: ignore[attr-defined]
        raise ValueError(
            f"{name} must be 2-D with shape (n_users, n_items); got shape {matrix.shape}."  # type: ignore[attr-defined]
        )


def _relevance(held_out: object, n_users: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Sorted unique linear keys ``user * n_items + item`` of relevant pairs.

    Returns ``(keys, n_relevant_per_user, n_items)``.  ``held_out`` is only
    read, never modified.
    """
    _check_sparse(held_out, "held_out")
    n_rows, n_items = held_out.shape  # type: ignore[attr-defined]
    if n_rows != n_users:
        raise ValueError(
            f"held_out has {n_rows} rows but top_items has {n_users}; row u of held_out "
            "must hold the held-out items of the user ranked in row u of top_items."
        )
    coo = held_out.tocoo()  # type: ignore[attr-defined]
    nonzero = np.asarray(coo.data) != 0
    rows = np.asarray(coo.row, dtype=np.int64)[nonzero]
    cols = np.asarray(coo.col, dtype=np.int64)[nonzero]
    keys = np.unique(rows * n_items + cols)  # sorted; duplicates removed
    n_rel = np.bincount(keys // max(n_items, 1), minlength=n_users).astype(np.int64)
    return keys, n_rel, int(n_items)


def _hits(top_k: np.ndarray, keys: np.ndarray, n_items: int) -> np.ndarray:
    """Boolean ``(n_users, k)`` array: is ``top_k[u, j]`` a held-out item of ``u``?"""
    if keys.size == 0:
        return np.zeros(top_k.shape, dtype=bool)
    user = np.arange(top_k.shape[0], dtype=np.int64)[:, None]
    query = user * n_items + top_k
    pos = np.searchsorted(keys, query)
    np.minimum(pos, keys.size - 1, out=pos)
    # Padding (-1) would map onto the previous user's last item; mask it out.
    return (top_k >= 0) & (keys[pos] == query)


# ----------------------------------------------------------------------------
# Per-user kernels: (hits (n, k) bool, n_rel (n,) >= 1, k) -> (n,) float64
# ----------------------------------------------------------------------------


def _recall_kernel(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    return hits.sum(axis=1) / n_rel


def _precision_kernel(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    return hits.sum(axis=1) / float(k)


def _ndcg_kernel(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    discounts = 1.0 / np.log2(np.arange(k, dtype=np.float64) + 2.0)
    dcg = hits.astype(np.float64) @ discounts
    idcg = np.cumsum(discounts)[np.minimum(n_rel, k) - 1]
    return np.minimum(dcg / idcg, 1.0)  # guard against 1 + ulp round-off


def _hit_rate_kernel(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    return hits.any(axis=1).astype(np.float64)


def _map_kernel(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    precision_at_pos = np.cumsum(hits, axis=1) / np.arange(1, k + 1, dtype=np.float64)
    return (precision_at_pos * hits).sum(axis=1) / np.minimum(n_rel, k)


def _mrr_kernel(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    first = hits.argmax(axis=1)
    return np.where(hits.any(axis=1), 1.0 / (first + 1.0), 0.0)


_KERNELS: dict[str, _Kernel] = {
    "recall": _recall_kernel,
    "precision": _precision_kernel,
    "ndcg": _ndcg_kernel,
    "hit_rate": _hit_rate_kernel,
    "map": _map_kernel,
    "mrr": _mrr_kernel,
}

_NO_HELD_OUT_MSG = (
    "no user has a held-out item (every row of held_out is empty), so the metric is "
    "undefined; pass a held_out matrix with at least one nonzero entry."
)


def _metric_at_k(
    kernel: _Kernel,
    top_items: npt.ArrayLike,
    held_out: object,
    k: int | None,
    return_per_user: bool,
) -> float | PerUserResult:
    top = _check_top_items(top_items)
    k = _resolve_k(k, top.shape[1])
    keys, n_rel, n_items = _relevance(held_out, top.shape[0])
    _check_item_range(top, n_items, "held_out")
    top_k = top[:, :k]
    _check_no_duplicates(top_k)
    evaluated = n_rel > 0
    if not evaluated.any():
        raise ValueError(_NO_HELD_OUT_MSG)
    hits = _hits(top_k, keys, n_items)
    per_user = np.full(top.shape[0], np.nan, dtype=np.float64)
    per_user[evaluated] = kernel(hits[evaluated], n_rel[evaluated], k)
    mean = float(per_user[evaluated].mean())
    if return_per_user:
        return mean, per_user
    return mean


# ----------------------------------------------------------------------------
# Public per-user metrics
# ----------------------------------------------------------------------------


def recall_at_k(
    top_items: npt.ArrayLike,
    held_out: sp.spmatrix | sp.sparray,
    k: int | None = None,
    *,
    return_per_user: bool = False,
) -> float | PerUserResult:
    """Recall@k: fraction of a user's held-out items found in the top ``k``.

    ``recall_u = hits_u / |held_out_u|``, averaged over users with at least
    one held-out item.

    Parameters
    ----------
    top_items : array_like of int, shape (n_users, n_ranked)
        Ranked item indices per user, best first; ``-1`` marks padding.
    held_out : scipy.sparse matrix or array, shape (n_users, n_items)
        Relevant items (stored nonzero entries), any sparse format.
    k : int or None, default=None
        Cut-off, ``1 <= k <= n_ranked``; ``None`` uses all ``n_ranked`` columns.
    return_per_user : bool, default=False
        If True, also return the per-user values.

    Returns
    -------
    mean : float
        Mean over users with at least one held-out item.
    per_user : ndarray of float64, shape (n_users,)
        Only if ``return_per_user``; ``NaN`` for users without held-out items.

    Raises
    ------
    ValueError
        If ``k`` is out of range, shapes disagree, or no user has a held-out item.
    TypeError
        If ``top_items`` is not integer or ``held_out`` is not sparse.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> top = np.array([[0, 1, 2], [2, 0, -1]])
    >>> held = sp.csr_matrix(np.array([[0, 1, 0, 1], [1, 0, 0, 0]]))
    >>> recall_at_k(top, held, k=2)
    0.75
    >>> recall_at_k(top, held, k=2, return_per_user=True)[1]
    array([0.5, 1. ])
    """
    return _metric_at_k(_recall_kernel, top_items, held_out, k, return_per_user)


def precision_at_k(
    top_items: npt.ArrayLike,
    held_out: sp.spmatrix | sp.sparray,
    k: int | None = None,
    *,
    return_per_user: bool = False,
) -> float | PerUserResult:
    """Precision@k: number of hits in the top ``k`` divided by ``k``.

    Padding positions (``-1``) still count in the denominator ``k``.

    Parameters
    ----------
    top_items : array_like of int, shape (n_users, n_ranked)
        Ranked item indices per user, best first; ``-1`` marks padding.
    held_out : scipy.sparse matrix or array, shape (n_users, n_items)
        Relevant items (stored nonzero entries), any sparse format.
    k : int or None, default=None
        Cut-off, ``1 <= k <= n_ranked``; ``None`` uses all ``n_ranked`` columns.
    return_per_user : bool, default=False
        If True, also return the per-user values.

    Returns
    -------
    mean : float
        Mean over users with at least one held-out item.
    per_user : ndarray of float64, shape (n_users,)
        Only if ``return_per_user``; ``NaN`` for users without held-out items.

    Raises
    ------
    ValueError
        If ``k`` is out of range, shapes disagree, or no user has a held-out item.
    TypeError
        If ``top_items`` is not integer or ``held_out`` is not sparse.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> top = np.array([[0, 1, 2], [2, 0, -1]])
    >>> held = sp.csr_matrix(np.array([[0, 1, 0, 1], [1, 0, 0, 0]]))
    >>> precision_at_k(top, held, k=2)
    0.5
    """
    return _metric_at_k(_precision_kernel, top_items, held_out, k, return_per_user)


def ndcg_at_k(
    top_items: npt.ArrayLike,
    held_out: sp.spmatrix | sp.sparray,
    k: int | None = None,
    *,
    return_per_user: bool = False,
) -> float | PerUserResult:
    """NDCG@k with binary relevance.

    ``DCG_u = sum_{hits at 0-based rank r < k} 1 / log2(r + 2)`` and ``IDCG_u``
    is the DCG of an ideal list with ``min(|held_out_u|, k)`` hits at the top;
    ``NDCG_u = DCG_u / IDCG_u``.

    Parameters
    ----------
    top_items : array_like of int, shape (n_users, n_ranked)
        Ranked item indices per user, best first; ``-1`` marks padding.
    held_out : scipy.sparse matrix or array, shape (n_users, n_items)
        Relevant items (stored nonzero entries), any sparse format.
    k : int or None, default=None
        Cut-off, ``1 <= k <= n_ranked``; ``None`` uses all ``n_ranked`` columns.
    return_per_user : bool, default=False
        If True, also return the per-user values.

    Returns
    -------
    mean : float
        Mean over users with at least one held-out item.
    per_user : ndarray of float64, shape (n_users,)
        Only if ``return_per_user``; ``NaN`` for users without held-out items.

    Raises
    ------
    ValueError
        If ``k`` is out of range, shapes disagree, or no user has a held-out item.
    TypeError
        If ``top_items`` is not integer or ``held_out`` is not sparse.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> top = np.array([[1, 0, 2]])
    >>> held = sp.csr_matrix(np.array([[0, 1, 1]]))
    >>> ndcg_at_k(top, held, k=1)
    1.0
    >>> round(ndcg_at_k(top, held, k=3), 4)
    0.9197
    """
    return _metric_at_k(_ndcg_kernel, top_items, held_out, k, return_per_user)


def hit_rate_at_k(
    top_items: npt.ArrayLike,
    held_out: sp.spmatrix | sp.sparray,
    k: int | None = None,
    *,
    return_per_user: bool = False,
) -> float | PerUserResult:
    """Hit rate@k: 1 if at least one held-out item is in the top ``k``, else 0.

    Parameters
    ----------
    top_items : array_like of int, shape (n_users, n_ranked)
        Ranked item indices per user, best first; ``-1`` marks padding.
    held_out : scipy.sparse matrix or array, shape (n_users, n_items)
        Relevant items (stored nonzero entries), any sparse format.
    k : int or None, default=None
        Cut-off, ``1 <= k <= n_ranked``; ``None`` uses all ``n_ranked`` columns.
    return_per_user : bool, default=False
        If True, also return the per-user values.

    Returns
    -------
    mean : float
        Mean over users with at least one held-out item.
    per_user : ndarray of float64, shape (n_users,)
        Only if ``return_per_user``; ``NaN`` for users without held-out items.

    Raises
    ------
    ValueError
        If ``k`` is out of range, shapes disagree, or no user has a held-out item.
    TypeError
        If ``top_items`` is not integer or ``held_out`` is not sparse.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> top = np.array([[0, 1], [2, 0]])
    >>> held = sp.csr_matrix(np.array([[0, 1, 0], [0, 1, 0]]))
    >>> hit_rate_at_k(top, held)
    0.5
    """
    return _metric_at_k(_hit_rate_kernel, top_items, held_out, k, return_per_user)


def map_at_k(
    top_items: npt.ArrayLike,
    held_out: sp.spmatrix | sp.sparray,
    k: int | None = None,
    *,
    return_per_user: bool = False,
) -> float | PerUserResult:
    """MAP@k: mean average precision at ``k``.

    ``AP_u = sum_{hit positions j < k} precision@(j+1) / min(|held_out_u|, k)``.

    Parameters
    ----------
    top_items : array_like of int, shape (n_users, n_ranked)
        Ranked item indices per user, best first; ``-1`` marks padding.
    held_out : scipy.sparse matrix or array, shape (n_users, n_items)
        Relevant items (stored nonzero entries), any sparse format.
    k : int or None, default=None
        Cut-off, ``1 <= k <= n_ranked``; ``None`` uses all ``n_ranked`` columns.
    return_per_user : bool, default=False
        If True, also return the per-user values.

    Returns
    -------
    mean : float
        Mean over users with at least one held-out item.
    per_user : ndarray of float64, shape (n_users,)
        Only if ``return_per_user``; ``NaN`` for users without held-out items.

    Raises
    ------
    ValueError
        If ``k`` is out of range, shapes disagree, or no user has a held-out item.
    TypeError
        If ``top_items`` is not integer or ``held_out`` is not sparse.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> top = np.array([[0, 1, 2, 3]])
    >>> held = sp.csr_matrix(np.array([[0, 1, 0, 1]]))
    >>> map_at_k(top, held)  # (1/2 + 2/4) / 2
    0.5
    """
    return _metric_at_k(_map_kernel, top_items, held_out, k, return_per_user)


def mrr_at_k(
    top_items: npt.ArrayLike,
    held_out: sp.spmatrix | sp.sparray,
    k: int | None = None,
    *,
    return_per_user: bool = False,
) -> float | PerUserResult:
    """MRR@k: reciprocal 1-based rank of the first hit within ``k``, else 0.

    Parameters
    ----------
    top_items : array_like of int, shape (n_users, n_ranked)
        Ranked item indices per user, best first; ``-1`` marks padding.
    held_out : scipy.sparse matrix or array, shape (n_users, n_items)
        Relevant items (stored nonzero entries), any sparse format.
    k : int or None, default=None
        Cut-off, ``1 <= k <= n_ranked``; ``None`` uses all ``n_ranked`` columns.
    return_per_user : bool, default=False
        If True, also return the per-user values.

    Returns
    -------
    mean : float
        Mean over users with at least one held-out item.
    per_user : ndarray of float64, shape (n_users,)
        Only if ``return_per_user``; ``NaN`` for users without held-out items.

    Raises
    ------
    ValueError
        If ``k`` is out of range, shapes disagree, or no user has a held-out item.
    TypeError
        If ``top_items`` is not integer or ``held_out`` is not sparse.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> top = np.array([[0, 1, 2, 3]])
    >>> held = sp.csr_matrix(np.array([[0, 0, 0, 1]]))
    >>> mrr_at_k(top, held)
    0.25
    >>> mrr_at_k(top, held, k=3)
    0.0
    """
    return _metric_at_k(_mrr_kernel, top_items, held_out, k, return_per_user)


def _coverage(top: np.ndarray, n_items: int, k: int) -> float:
    shown = top[:, :k]
    return np.unique(shown[shown >= 0]).size / n_items


def catalogue_coverage_at_k(
    top_items: npt.ArrayLike,
    n_items: int,
    k: int | None = None,
) -> float:
    """Catalogue coverage@k: share of the catalogue recommended to anyone.

    The number of distinct items appearing in any user's top ``k`` divided by
    ``n_items``.  This is a catalogue-level metric; padding (``-1``) is ignored.

    Parameters
    ----------
    top_items : array_like of int, shape (n_users, n_ranked)
        Ranked item indices per user, best first; ``-1`` marks padding.
    n_items : int
        Size of the item catalogue (``>= 1``); indices must be ``< n_items``.
    k : int or None, default=None
        Cut-off, ``1 <= k <= n_ranked``; ``None`` uses all ``n_ranked`` columns.

    Returns
    -------
    float
        Coverage in ``[0, 1]``.

    Raises
    ------
    ValueError
        If ``k`` or ``n_items`` is out of range or an index is ``>= n_items``.
    TypeError
        If ``top_items`` is not integer.

    Examples
    --------
    >>> import numpy as np
    >>> top = np.array([[0, 1], [1, 2], [1, -1]])
    >>> catalogue_coverage_at_k(top, n_items=6)
    0.5
    >>> catalogue_coverage_at_k(top, n_items=6, k=1)
    0.3333333333333333
    """
    top = _check_top_items(top_items)
    if not _is_int(n_items) or int(n_items) < 1:
        raise ValueError(f"n_items must be an int >= 1 (the catalogue size); got {n_items!r}.")
    n_items = int(n_items)
    k = _resolve_k(k, top.shape[1])
    _check_item_range(top, n_items, "the catalogue (n_items)")
    return _coverage(top, n_items, k)


# ----------------------------------------------------------------------------
# Registry and batch evaluation
# ----------------------------------------------------------------------------

METRICS: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {
        "recall": recall_at_k,
        "precision": precision_at_k,
        "ndcg": ndcg_at_k,
        "hit_rate": hit_rate_at_k,
        "map": map_at_k,
        "mrr": mrr_at_k,
        "coverage": catalogue_coverage_at_k,
    }
)
"""Read-only mapping from metric name to metric function.

``"coverage"`` maps to :func:`catalogue_coverage_at_k`, whose second argument
is ``n_items`` rather than ``held_out``; all others take
``(top_items, held_out, k=None, *, return_per_user=False)``.
"""


def _unknown_metric(name: object) -> ValueError:
    return ValueError(f"unknown metric {name!r}; allowed names are: {', '.join(METRICS)}.")


def get_metric(name: str) -> Callable[..., Any]:
    """Look up a metric function by name.

    Parameters
    ----------
    name : str
        One of ``"recall"``, ``"precision"``, ``"ndcg"``, ``"hit_rate"``,
        ``"map"``, ``"mrr"``, ``"coverage"``.

    Returns
    -------
    callable
        The metric function, e.g. :func:`recall_at_k` for ``"recall"``.

    Raises
    ------
    ValueError
        If ``name`` is not a known metric (the message lists allowed names).

    Examples
    --------
    >>> get_metric("ndcg") is ndcg_at_k
    True
    """
    if not isinstance(name, str) or name not in METRICS:
        raise _unknown_metric(name)
    return METRICS[name]


def evaluate(
    top_items: npt.ArrayLike,
    held_out: sp.spmatrix | sp.sparray,
    *,
    metrics: Iterable[str] | str = ("recall", "ndcg", "precision"),
    ks: Iterable[int] | int = (10, 20),
) -> dict[str, float | int]:
    """Compute several metrics at several cut-offs in one pass.

    Hits are computed once for the largest ``k`` and sliced for the others.

    Parameters
    ----------
    top_items : array_like of int, shape (n_users, n_ranked)
        Ranked item indices per user, best first; ``-1`` marks padding.
        ``n_ranked`` must be at least ``max(ks)``.
    held_out : scipy.sparse matrix or array, shape (n_users, n_items)
        Relevant items (stored nonzero entries), any sparse format.  Its
        number of columns is the catalogue size used for ``"coverage"``.
    metrics : iterable of str or str, default=("recall", "ndcg", "precision")
        Names from :data:`METRICS`.
    ks : iterable of int or int, default=(10, 20)
        Cut-offs, each ``1 <= k <= n_ranked``.

    Returns
    -------
    dict
        ``{"<metric>@<k>": float, ..., "n_users_evaluated": int,
        "n_users_skipped": int}`` where the per-user metrics are averaged over
        users with at least one held-out item (``n_users_evaluated``) and the
        others are skipped (``n_users_skipped``).

    Raises
    ------
    ValueError
        For an unknown metric name, an invalid ``k``, mismatched shapes, or
        when a per-user metric is requested and no user has a held-out item.
    TypeError
        If ``top_items`` is not integer or ``held_out`` is not sparse.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> top = np.array([[0, 1, 2], [2, 0, 1], [1, 2, 0]])
    >>> held = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]]))
    >>> evaluate(top, held, metrics=["recall", "hit_rate"], ks=[1, 2])
    {'recall@1': 0.0, 'recall@2': 1.0, 'hit_rate@1': 0.0, 'hit_rate@2': 1.0, \
'n_users_evaluated': 2, 'n_users_skipped': 1}
    """
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    for name in names:
        if not isinstance(name, str) or name not in METRICS:
            raise _unknown_metric(name)
    if not names:
        raise ValueError(f"metrics is empty; pass at least one of: {', '.join(METRICS)}.")
    names = list(dict.fromkeys(names))
    k_list = [ks] if _is_int(ks) else list(ks)  # type: ignore[arg-type]
    if not k_list:
        raise ValueError("ks is empty; pass at least one cut-off, e.g. ks=(10, 20).")

    top = _check_top_items(top_items)
    k_list = list(dict.fromkeys(_resolve_k(k, top.shape[1], "ks entry") for k in k_list))
    keys, n_rel, n_items = _relevance(held_out, top.shape[0])
    _check_item_range(top, n_items, "held_out")
    k_max = max(k_list)
    top_k = top[:, :k_max]
    _check_no_duplicates(top_k)

    evaluated = n_rel > 0
    n_eval = int(evaluated.sum())
    per_user_names = [name for name in names if name in _KERNELS]
    if per_user_names and n_eval == 0:
        raise ValueError(_NO_HELD_OUT_MSG)
    hits = _hits(top_k, keys, n_items)[evaluated]
    n_rel_eval = n_rel[evaluated]

    result: dict[str, float | int] = {}
    for name in names:
        for k in k_list:
            if name == "coverage":
                result[f"coverage@{k}"] = _coverage(top, n_items, k)
            else:
                values = _KERNELS[name](hits[:, :k], n_rel_eval, k)
                result[f"{name}@{k}"] = float(values.mean())
    result["n_users_evaluated"] = n_eval
    result["n_users_skipped"] = int(top.shape[0] - n_eval)
    return result


# ----------------------------------------------------------------------------
# Ranking
# ----------------------------------------------------------------------------


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
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of one chunk; ties broken by lower item index.

    Float scores go through ``torch.topk`` (one masked copy, or masking in place when the block
    is ``owned``, and a partial selection); rows where that could differ from the exact rule (a
    tie at the k-th place, or fewer than ``k`` finite candidates) are redone by
    :func:`_rank_block_exact`, so the result is the same.
    """
    if block.dtype.kind != "f" or block.dtype.itemsize < 4 or k >= block.shape[1]:
        return _rank_block_exact(block, k, ex_rows, ex_cols)
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
    return _rank_items(scores, k, exclude=exclude, users=users, chunk_size=chunk_size)


def _rank_items(
    scores: npt.ArrayLike | Callable[[np.ndarray], npt.ArrayLike],
    k: int,
    *,
    exclude: sp.spmatrix | sp.sparray | None = None,
    users: npt.ArrayLike | None = None,
    chunk_size: int = 1024,
    owned_blocks: bool = False,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """:func:`rank_items`; ``owned_blocks`` says a callable's blocks may be overwritten.

    The package's recommenders return a fresh (or scratch) block per chunk, so masking can
    write into it instead of copying it first.
    """
    if not _is_int(k) or int(k) < 1:
        raise ValueError(f"k must be an int >= 1 (the number of items to return); got {k!r}.")
    k = int(k)
    if not _is_int(chunk_size) or int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be an int >= 1; got {chunk_size!r}.")
    chunk_size = int(chunk_size)

    ex: Any = None
    if exclude is not None:
        _check_sparse(exclude, "exclude")
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
        items, vals = _rank_block(block, k, ex_rows, ex_cols, owned=owned)
        top_items[start:stop] = items
        top_scores[start:stop] = vals
    return top_items, top_scores
