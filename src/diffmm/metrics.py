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

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ._errors import InvalidInputError
from ._ranking import rank_items
from ._validation import check_sparse, is_int

__all__ = [
    "METRICS",
    "catalogue_coverage_at_k",
    "evaluate",
    "get_metric",
    "hit_rate_at_k",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "paired_bootstrap",
    "precision_at_k",
    "rank_items",
    "recall_at_k",
]

PerUserResult = tuple[float, npt.NDArray[np.float64]]
_Kernel = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


# ----------------------------------------------------------------------------
# Input validation helpers
# ----------------------------------------------------------------------------


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
    if not is_int(k):
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


def _relevance(held_out: object, n_users: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Sorted unique linear keys ``user * n_items + item`` of relevant pairs.

    Returns ``(keys, n_relevant_per_user, n_items)``.  ``held_out`` is only
    read, never modified.
    """
    check_sparse(held_out, "held_out")
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
    if not is_int(n_items) or int(n_items) < 1:
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


def _unknown_metric(name: object) -> InvalidInputError:
    return InvalidInputError(f"unknown metric {name!r}; allowed names are: {', '.join(METRICS)}.")


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
    k_list = [ks] if is_int(ks) else list(ks)  # type: ignore[arg-type]
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
# Comparing two models
# ----------------------------------------------------------------------------


def paired_bootstrap(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = None,
) -> dict[str, float]:
    """Mean per-user difference ``a − b`` of a metric, with a bootstrap confidence interval.

    For two models evaluated on the same users: the difference is taken user by user, so what
    the users have in common (some are easy, some hard) cancels, and the interval of the mean
    difference is much narrower than the two models' own intervals. Users are resampled with
    replacement (a percentile bootstrap). With several runs per model (seeds), give arrays of
    shape (n_runs, n_users) with run ``r`` of ``a`` paired with run ``r`` of ``b``: each
    user's differences are averaged over the runs before users are resampled.

    Parameters
    ----------
    a, b : array-like of shape (n_users,) or (n_runs, n_users)
        Per-user values of one metric (e.g. from ``recall_at_k(..., return_per_user=True)``),
        NaN for users without held-out items (left out).
    n_resamples : int, default=10000
    confidence : float, default=0.95
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    dict
        ``mean`` (the mean difference), ``low`` and ``high`` (the interval), ``n_users``.

    Examples
    --------
    >>> import numpy as np
    >>> better = np.tile([1.0, 0.0, 1.0, 1.0], 50)
    >>> worse = np.tile([1.0, 0.0, 0.0, 1.0], 50)
    >>> result = paired_bootstrap(better, worse, random_state=0)
    >>> round(result["mean"], 2), result["low"] > 0
    (0.25, True)
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (1, 2) or a.shape[-1] == 0:
        raise InvalidInputError(
            f"a and b must have the same shape (n_users,) or (n_runs, n_users); got {a.shape} "
            f"and {b.shape}."
        )
    if not is_int(n_resamples) or n_resamples < 1:
        raise InvalidInputError(f"n_resamples must be an int >= 1; got {n_resamples!r}.")
    if not 0 < confidence < 1:
        raise InvalidInputError(f"confidence must lie in (0, 1); got {confidence!r}.")
    diff = (a - b).reshape(-1, a.shape[-1])
    known = ~np.isnan(diff).any(axis=0)
    diff = diff[:, known].mean(axis=0)
    n = diff.size
    if n == 0:
        raise InvalidInputError("No user has a value in both a and b (all NaN).")
    rng = np.random.default_rng(random_state)
    means = np.empty(n_resamples)
    chunk = max(1, 2**22 // n)  # resamples per step: at most ~4M indices in memory
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        means[start:stop] = diff[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return {"mean": float(diff.mean()), "low": float(low), "high": float(high), "n_users": n}
