"""Input checks and parameter constraints, in one place.

Everything that turns user input (interactions in any accepted form, modality features,
hyper-parameters) into the package's internal representation lives here, so that every entry
point reports bad input with the same clear messages and none of them mutates the caller's
objects.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._errors import InvalidInputError
from ._ids import IdMap

__all__ = [
    "InteractionRows",
    "Interval",
    "Options",
    "binarize",
    "check_histories",
    "check_interactions",
    "check_k",
    "check_modality_features",
    "check_new_items",
    "check_scalar",
    "check_sparse",
    "interaction_matrix",
    "is_int",
    "validate_params",
]


# ---------------------------------------------------------------------------------------------
# Interactions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InteractionRows:
    """Interactions as parallel 1-D arrays of raw ids, one entry per input row.

    ``shape`` is set when the input was a user × item sparse matrix: its ids are then row and
    column indices and the matrix fixes the size of both universes.
    """

    users: np.ndarray
    items: np.ndarray
    weights: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    shape: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.users)


def _is_dataframe(obj: Any) -> bool:
    # Duck-typed so that pandas stays optional.
    return hasattr(obj, "columns") and hasattr(obj, "iloc") and hasattr(obj, "index")


def _check_finite(values: np.ndarray, what: str) -> None:
    if values.dtype.kind in "fc" and not np.all(np.isfinite(values)):
        n_bad = int(np.count_nonzero(~np.isfinite(values)))
        raise InvalidInputError(
            f"{what} contains {n_bad} NaN or infinite value(s); remove or impute them first."
        )


def _check_id_range(low: int, high: int, what: str) -> None:
    if low < 0:
        raise InvalidInputError(
            f"{what} contain negative values (e.g. {low}); integer ids must be >= 0. Map them "
            "to non-negative integers or use strings."
        )
    if high >= 2**63:
        raise InvalidInputError(
            f"{what} contain numbers too large for 64-bit integer ids (e.g. {high}); map them "
            "to smaller integers or use strings."
        )


# Floats hold every integer up to 2**53 exactly; beyond it, distinct ids would merge.
_MAX_EXACT_FLOAT = 2**53


def _check_exact_floats(values: np.ndarray, what: str) -> None:
    if values.size and np.abs(values).max() > _MAX_EXACT_FLOAT:
        raise InvalidInputError(
            f"{what} are floats beyond 2**53 (e.g. {values[np.abs(values) > _MAX_EXACT_FLOAT][0]!r}"
            "), where distinct integers become the same float; pass them as integers or strings."
        )


def _check_strings(values: np.ndarray, what: str) -> None:
    """String ids: not empty (it marks padding), no trailing NUL (NumPy drops those)."""
    strings = values.tolist()
    if any(s == "" for s in strings):
        raise InvalidInputError(f"{what} contain an empty string; every id needs a value.")
    if any(isinstance(s, str) and s.endswith("\0") for s in strings):
        raise InvalidInputError(
            f"{what} contain a string ending with a NUL character ('\\0'); NumPy would merge "
            "it with the same string without it. Strip or replace those characters."
        )


def _as_id_array(values: Any, what: str) -> np.ndarray:
    """Coerce a column of raw ids into a 1-D array whose values are hashable ids."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInputError(f"{what} must be one-dimensional, got shape {arr.shape}.")
    kind = arr.dtype.kind
    if kind == "b":
        raise InvalidInputError(f"{what} are booleans; ids must be integers or strings.")
    if kind == "f":
        if not np.all(np.isfinite(arr)):
            raise InvalidInputError(
                f"{what} contain NaN or infinite values; drop those rows first."
            )
        if not np.all(arr == np.round(arr)):
            raise InvalidInputError(
                f"{what} contain non-integer numbers (e.g. {arr[arr != np.round(arr)][0]!r}); "
                "ids must be integers or strings."
            )
    if kind in "iuf":
        if arr.size:
            _check_id_range(int(arr.min()), int(arr.max()), what)
        if kind == "f":
            _check_exact_floats(arr, what)
        return arr.astype(np.int64, copy=False)
    if kind in "US":
        _check_strings(arr, what)
        return arr
    if kind == "O":
        for value in arr:
            if value is None or (isinstance(value, float) and np.isnan(value)):
                raise InvalidInputError(
                    f"{what} contain missing values (None/NaN); drop those rows."
                )
            if isinstance(value, (bool, np.bool_)):
                raise InvalidInputError(
                    f"{what} contain booleans; ids must be integers or strings."
                )
            if isinstance(value, (float, np.floating)):
                if not np.isfinite(value):
                    raise InvalidInputError(
                        f"{what} contain NaN or infinite values; drop those rows."
                    )
                if value != round(value):
                    raise InvalidInputError(
                        f"{what} contain non-integer numbers (e.g. {value!r}); ids must be "
                        "integers or strings."
                    )
                _check_id_range(int(value), int(value), what)
                _check_exact_floats(np.asarray([value], dtype=np.float64), what)
            if isinstance(value, (complex, np.complexfloating)):
                raise InvalidInputError(
                    f"{what} contain complex numbers; ids must be integers or strings."
                )
            if not isinstance(value, Hashable) or isinstance(value, (tuple, frozenset)):
                raise InvalidInputError(
                    f"{what} contain a value of type {type(value).__name__} that cannot be an id; "
                    "ids must be integers or strings."
                )
        # Normalise object columns that hold only integers (integral floats count) or only
        # strings. Python ints of any size go through the range checks of the integer path.
        if all(isinstance(v, (numbers.Integral, float, np.floating)) for v in arr):
            ints = [int(v) for v in arr]
            if ints:
                _check_id_range(min(ints), max(ints), what)
            return np.array(ints, dtype=np.int64)
        if all(isinstance(v, str) for v in arr):
            _check_strings(arr, what)
            return arr.astype(str)
        return arr
    raise InvalidInputError(f"{what} have dtype {arr.dtype}, which cannot hold ids.")


def _check_weights(values: Any, what: str) -> np.ndarray:
    if np.asarray(values).dtype.kind == "c":
        raise InvalidInputError(f"{what} are complex numbers; weights must be real.")
    try:
        weights = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} must be numeric: {exc}") from None
    _check_finite(weights, what)
    if weights.size and weights.min() < 0:
        raise InvalidInputError(
            f"{what} contain negative values; weights must be >= 0 (rows with weight 0 are "
            "dropped as non-interactions)."
        )
    return weights


def check_interactions(
    X: Any,
    *,
    user_col: str = "user",
    item_col: str = "item",
    weight_col: str | None = "weight",
    timestamp_col: str | None = "timestamp",
    name: str = "interactions",
) -> InteractionRows:
    """Validate interactions in any accepted form and return them as parallel id arrays.

    Parameters
    ----------
    X : DataFrame, array-like of shape (n_interactions, 2) or (n_interactions, 3), or sparse
        matrix of shape (n_users, n_items)
        A DataFrame needs ``user_col`` and ``item_col``; ``weight_col`` and ``timestamp_col`` are
        used when present. An array holds user ids, item ids and optionally weights. A sparse
        matrix holds weights at (user index, item index).
    user_col, item_col, weight_col, timestamp_col : str
        Column names for DataFrame input.
    name : str
        The argument name used in error messages.

    Returns
    -------
    InteractionRows
        The caller's data is never modified; arrays are fresh copies where conversion happened.

    Examples
    --------
    >>> rows = check_interactions([[0, 1], [0, 2], [1, 2]])
    >>> rows.users, rows.items
    (array([0, 0, 1]), array([1, 2, 2]))
    """
    if np.ma.isMaskedArray(X) and np.ma.is_masked(X):
        raise InvalidInputError(
            f"{name} is a masked array with masked entries; drop or fill them first."
        )
    if X is None:
        raise InvalidInputError(
            f"{name} is None; pass a DataFrame, an (n, 2) array or a sparse matrix."
        )
    if sp.issparse(X):
        coo = sp.coo_matrix(X, copy=True)
        if coo.ndim != 2:
            raise InvalidInputError(f"{name} must be a 2-D users x items matrix.")
        weights = _check_weights(coo.data, f"{name} values")
        keep = weights > 0
        rows = InteractionRows(
            users=coo.row[keep].astype(np.int64),
            items=coo.col[keep].astype(np.int64),
            weights=weights[keep],
            shape=(int(coo.shape[0]), int(coo.shape[1])),
        )
    elif _is_dataframe(X):
        missing = [c for c in (user_col, item_col) if c not in X.columns]
        if missing:
            raise InvalidInputError(
                f"{name} has no column(s) {missing}; its columns are {list(X.columns)}. Rename "
                "them or pass user_col= / item_col= to say which columns hold the ids."
            )
        weights = None
        if weight_col is not None and weight_col in X.columns:
            weights = _check_weights(X[weight_col].to_numpy(), f"{name}[{weight_col!r}]")
        timestamps = None
        if timestamp_col is not None and timestamp_col in X.columns:
            timestamps = np.asarray(X[timestamp_col].to_numpy())
            if timestamps.dtype.kind not in "iufM":
                raise InvalidInputError(
                    f"{name}[{timestamp_col!r}] must be numeric or datetime64, "
                    f"got dtype {timestamps.dtype}."
                )
        rows = InteractionRows(
            users=_as_id_array(X[user_col].to_numpy(), f"{name}[{user_col!r}]"),
            items=_as_id_array(X[item_col].to_numpy(), f"{name}[{item_col!r}]"),
            weights=weights,
            timestamps=timestamps,
        )
    else:
        if isinstance(X, Mapping) or isinstance(X, (str, bytes)):
            raise InvalidInputError(
                f"{name} must be a DataFrame, an (n, 2) / (n, 3) array of ids or a sparse "
                f"matrix, got {type(X).__name__}."
            )
        try:
            arr = np.asarray(X)
        except ValueError as exc:  # ragged nested sequences
            raise InvalidInputError(
                f"{name} is ragged ({exc}); every row must be (user, item) or (user, item, weight)."
            ) from None
        if arr.dtype.kind in "US" and not isinstance(X, np.ndarray):
            # NumPy would turn the integer ids of rows like ("u1", 10) into the strings "10";
            # keep each value's own type and let _as_id_array normalise every column.
            arr = np.asarray(X, dtype=object)
        elif arr.dtype.kind in "iuf" and arr.ndim == 2 and not isinstance(X, np.ndarray):
            # NumPy would turn True/False next to numbers into 1/0; booleans are not ids, so
            # let _as_id_array see each value's own type.
            values = np.asarray(X, dtype=object)
            if any(isinstance(v, (bool, np.bool_)) for v in values[:, :2].ravel()):
                arr = values
        if (
            arr.dtype.kind == "O"
            and arr.ndim == 1
            and len(arr)
            and isinstance(arr[0], Iterable)
            and not isinstance(arr[0], (str, bytes))
        ):
            raise InvalidInputError(
                f"{name} is ragged; every row must be (user, item) or (user, item, weight)."
            )
        if arr.ndim >= 1 and arr.shape[0] == 0:
            raise InvalidInputError(f"{name} is empty; at least one interaction is needed.")
        if arr.ndim != 2 or arr.shape[1] not in (2, 3):
            raise InvalidInputError(
                f"{name} must have shape (n_interactions, 2) or (n_interactions, 3) "
                f"(user, item[, weight]), got shape {arr.shape}."
            )
        weights = None
        if arr.shape[1] == 3:
            weights = _check_weights(arr[:, 2], f"{name} weights (third column)")
        rows = InteractionRows(
            users=_as_id_array(arr[:, 0], f"{name} user ids"),
            items=_as_id_array(arr[:, 1], f"{name} item ids"),
            weights=weights,
        )
    if len(rows) == 0:
        raise InvalidInputError(f"{name} is empty; at least one interaction is needed.")
    if rows.weights is not None and not np.any(rows.weights > 0):
        raise InvalidInputError(f"{name} has no interaction with a positive weight.")
    return rows


# ---------------------------------------------------------------------------------------------
# Modality features and the item universe
# ---------------------------------------------------------------------------------------------


def _as_feature_array(value: Any, what: str, copy: bool = True) -> np.ndarray:
    if not copy and _is_float32_matrix(value):
        arr = value  # the caller's own array, by reference: only read, never written
    else:
        try:
            arr = np.array(value, dtype=None, copy=True)
        except ValueError as exc:
            raise InvalidInputError(f"{what} is ragged or malformed: {exc}") from None
        if arr.dtype.kind not in "iuf":
            raise InvalidInputError(f"{what} must be numeric, got dtype {arr.dtype}.")
    if arr.ndim != 2:
        raise InvalidInputError(
            f"{what} must have shape (n_items, n_features), got shape {arr.shape}."
        )
    if arr.shape[1] < 1:
        raise InvalidInputError(f"{what} has no feature columns.")
    # float16 sums overflow: upcast before any arithmetic (a copy already made is not redone).
    arr = arr.astype(np.float32, copy=False)
    _check_finite(arr, what)
    return arr


def _is_float32_matrix(value: Any) -> bool:
    return (
        isinstance(value, np.ndarray)
        and value.dtype == np.float32
        and value.dtype.isnative
        and value.ndim == 2
        and value.flags.c_contiguous
    )


def check_modality_features(
    modality_features: Any,
    *,
    n_items: int | None = None,
    name: str = "modality_features",
    copy: bool = True,
) -> tuple[dict[str, np.ndarray], IdMap | None]:
    """Validate ``{modality: features}`` and return float32 arrays aligned to one item order.

    Parameters
    ----------
    modality_features : mapping of str to array-like of shape (n_items, d) or DataFrame
        Arrays are aligned to item indices ``0..n_items-1``. DataFrames are indexed by raw item
        id; all DataFrames must share the same set of item ids, which then define the item
        universe (so items with features and no interactions are representable). All modalities
        must be given the same way.
    n_items : int, optional
        The required row count for array features (e.g. the column count of a sparse
        interaction matrix).

    Returns
    -------
    features : dict of str to ndarray of shape (n_items, d), float32
        Fresh arrays (with ``copy=False``, the caller's own float32 C-contiguous arrays are
        returned as they are); the caller's objects are not modified.
    items : IdMap or None
        The item universe defined by DataFrame features; ``None`` for array features.

    Examples
    --------
    >>> import numpy as np
    >>> feats, items = check_modality_features({"visual": np.ones((3, 4))})
    >>> feats["visual"].dtype, items is None
    (dtype('float32'), True)
    """
    if not isinstance(modality_features, Mapping):
        raise InvalidInputError(
            f"{name} must be a mapping {{modality_name: array of shape (n_items, d)}}, "
            f"got {type(modality_features).__name__}."
        )
    if len(modality_features) == 0:
        raise InvalidInputError(f"{name} is empty; give at least one modality.")
    for key in modality_features:
        if not isinstance(key, str) or not key:
            raise InvalidInputError(
                f"{name} keys must be non-empty strings (modality names), got {key!r}."
            )
    keyed = {k: _is_dataframe(v) for k, v in modality_features.items()}
    if len(set(keyed.values())) > 1:
        raise InvalidInputError(
            f"{name} mixes DataFrames (indexed by item id) and plain arrays; give every "
            "modality the same way."
        )
    if not any(keyed.values()):
        features = {
            k: _as_feature_array(v, f"{name}[{k!r}]", copy) for k, v in modality_features.items()
        }
        counts = {k: v.shape[0] for k, v in features.items()}
        if len(set(counts.values())) > 1:
            raise InvalidInputError(
                f"{name} modalities have different numbers of rows {counts}; every modality "
                "needs one row per item."
            )
        n_rows = next(iter(counts.values()))
        if n_items is not None and n_rows != n_items:
            raise InvalidInputError(
                f"{name} has {n_rows} rows but the interactions have {n_items} items; feature "
                "row i must describe item i."
            )
        return features, None

    frames = dict(modality_features)
    first_key = next(iter(frames))
    universe = None
    indexes = {
        key: _as_id_array(np.asarray(frame.index), f"{name}[{key!r}].index (item ids)")
        for key, frame in frames.items()
    }
    for key, index in indexes.items():
        if len(set(index.tolist())) != len(index):
            raise InvalidInputError(f"{name}[{key!r}] has duplicate item ids in its index.")
        if universe is None:
            universe = IdMap.from_values(index, what="item")
            if len(universe) != len(index):
                raise InvalidInputError(f"{name}[{key!r}] has duplicate item ids in its index.")
        elif len(index) != len(universe) or not np.all(universe.contains(index)):
            raise InvalidInputError(
                f"{name}[{key!r}] is indexed by a different set of item ids than "
                f"{name}[{first_key!r}]; every modality must describe the same items."
            )
    assert universe is not None
    features = {}
    for key, frame in frames.items():
        values = _as_feature_array(frame.to_numpy(), f"{name}[{key!r}]")
        order = np.empty(len(values), dtype=np.int64)
        order[universe.index(indexes[key])] = np.arange(len(values))
        features[key] = values[order]
    return features, universe


def interaction_matrix(
    rows: InteractionRows, users: IdMap, items: IdMap, *, name: str = "interactions"
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Build the binary users × items matrix and the summed-weight matrix from rows.

    Duplicates collapse (weights add up); rows with weight 0 are dropped. Raises
    :class:`UnknownIdError` for ids outside ``users`` / ``items``.
    """
    u = users.index(rows.users, name=f"{name} user ids")
    i = items.index(rows.items, name=f"{name} item ids")
    w = rows.weights if rows.weights is not None else np.ones(len(u))
    keep = w > 0
    weights = sp.csr_matrix(
        (w[keep], (u[keep], i[keep])), shape=(len(users), len(items)), dtype=np.float64
    )
    weights.sum_duplicates()
    weights.eliminate_zeros()
    return binarize(weights), weights


def check_histories(histories: Any, items: IdMap) -> sp.csr_matrix:
    """Interaction histories of new users as a binary (n_new_users, len(items)) matrix.

    Parameters
    ----------
    histories : list of array-like of raw item ids, or sparse matrix (n_new_users, n_items)
        One history per new user; in a matrix, column j is item index j.
    items : IdMap
        The model's items.
    """
    n_items = len(items)
    if isinstance(histories, Mapping):
        raise InvalidInputError(
            "histories is a mapping; give a list with one array of raw item ids per new user "
            "(a mapping would be read by its keys), or a users x items sparse matrix."
        )
    if sp.issparse(histories):
        if histories.ndim != 2:
            raise InvalidInputError("histories must be a 2-D users x items sparse matrix.")
        matrix = sp.csr_matrix(histories, copy=True)
        matrix.data = _check_weights(matrix.data, "histories values").astype(np.float32)
        if matrix.shape[1] != n_items:
            raise InvalidInputError(
                f"histories is a matrix with {matrix.shape[1]} columns, but the model has "
                f"{n_items} items; column j must be item index j."
            )
    else:
        if isinstance(histories, (str, bytes)) or not hasattr(histories, "__len__"):
            raise InvalidInputError(
                "histories must be a list with one array of raw item ids per new user, or a "
                "users x items sparse matrix."
            )
        rows, cols = [], []
        for row, history in enumerate(histories):
            if isinstance(history, (str, bytes)) or np.ndim(history) == 0:
                history = [history]
            index = items.index(np.asarray(list(history)), name=f"histories[{row}]")
            rows.append(np.full(len(index), row))
            cols.append(index)
        if not rows:
            raise InvalidInputError("histories is empty; give at least one new user's history.")
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        matrix = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(len(histories), n_items),
        )
    matrix = binarize(matrix)
    empty = np.flatnonzero(np.diff(matrix.indptr) == 0)
    if empty.size:
        raise InvalidInputError(
            f"histories {empty[:5].tolist()} are empty; a user without interactions has "
            "nothing to fold in (recommend popular items to them instead)."
        )
    return matrix


def check_new_items(
    modality_features: Any,
    item_ids: Any,
    items: IdMap,
    feature_dims: Mapping[str, int],
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Features and raw ids of items to add to a fitted model's catalogue.

    ``feature_dims`` gives the fitted modalities (in order) and their widths. Returns the
    features (float32, in ``feature_dims``'s order) and the new ids, which are unique and not
    among ``items``; by default they are the next integer indices.
    """
    features, frame_items = check_modality_features(modality_features)
    if tuple(features) != tuple(feature_dims) and set(features) != set(feature_dims):
        raise InvalidInputError(
            f"modality_features has modalities {sorted(features)}, but the model was "
            f"fitted on {sorted(feature_dims)}; give exactly those."
        )
    for name, expected in feature_dims.items():
        if features[name].shape[1] != expected:
            raise InvalidInputError(
                f"modality_features[{name!r}] has {features[name].shape[1]} columns; the "
                f"model was fitted with {expected}."
            )
    n_new = next(iter(features.values())).shape[0]
    n_items = len(items)
    if frame_items is not None:
        if item_ids is not None:
            raise InvalidInputError("Give item_ids only with array features, not with DataFrames.")
        new_ids = frame_items.ids
    elif item_ids is not None:
        new_ids = np.asarray(item_ids)
        if new_ids.shape != (n_new,):
            raise InvalidInputError(f"item_ids must have shape ({n_new},), got {new_ids.shape}.")
    else:
        if items.ids.dtype.kind not in "iu" or not np.array_equal(items.ids, np.arange(n_items)):
            raise InvalidInputError(
                "The model's item ids are not the indices 0..n_items-1; pass item_ids= (or "
                "DataFrames indexed by the new ids)."
            )
        new_ids = np.arange(n_items, n_items + n_new)
    if len(set(new_ids.tolist())) != len(new_ids):
        raise InvalidInputError("The new item ids must be unique.")
    clash = items.contains(new_ids)
    if np.any(clash):
        raise InvalidInputError(
            f"Items {new_ids[clash][:5].tolist()} are already in the catalogue; add_items "
            "only adds new items."
        )
    return {name: features[name] for name in feature_dims}, new_ids


def binarize(matrix: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """A binary float32 CSR copy of a sparse matrix: what counts as an interaction.

    Duplicate entries are summed first, entries that sum to zero are dropped, and every stored
    value becomes 1; column indices are sorted. The input is not modified.
    """
    csr = sp.csr_matrix(matrix, copy=True)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    out = sp.csr_matrix(
        (np.ones(csr.nnz, dtype=np.float32), csr.indices, csr.indptr), shape=csr.shape
    )
    out.has_sorted_indices = True  # sum_duplicates sorts them
    return out


def resolve_universes(
    rows: InteractionRows,
    modality_features: Any = None,
    *,
    require_features: bool = False,
    copy_features: bool = True,
) -> tuple[IdMap, IdMap, dict[str, np.ndarray] | None]:
    """Decide the user and item universes of a fit and align the features to the items.

    * Sparse-matrix interactions: users and items are the matrix's rows and columns.
    * Array features: items are feature rows ``0..n-1``; item ids must be those indices.
    * DataFrame features: items are the DataFrames' index (cold items included).
    * No features: items are the ids that occur in the interactions.
    """
    if modality_features is None:
        if require_features:
            raise InvalidInputError(
                "modality_features is missing; pass {modality_name: array (n_items, d)} to fit."
            )
        features = None
        items = None
    else:
        n_items = rows.shape[1] if rows.shape is not None else None
        features, items = check_modality_features(
            modality_features, n_items=n_items, copy=copy_features
        )
        if items is None:
            items = IdMap.range(next(iter(features.values())).shape[0], what="item")
            if rows.items.dtype.kind not in "iu":
                raise InvalidInputError(
                    "item ids are not integers, but modality_features are plain arrays aligned "
                    "to item indices 0..n_items-1. Pass DataFrames indexed by item id instead."
                )
            if rows.items.size and rows.items.max() >= len(items):
                raise InvalidInputError(
                    f"interactions reference item index {int(rows.items.max())}, but the "
                    f"modality_features arrays have only {len(items)} rows; feature row i must "
                    "describe item i (or pass DataFrames indexed by item id)."
                )
        else:
            known = items.contains(rows.items)
            if not np.all(known):
                unknown = np.unique(rows.items[~known])
                shown = ", ".join(repr(v) for v in unknown[:5].tolist())
                raise InvalidInputError(
                    f"interactions reference {len(unknown)} item(s) that have no features "
                    f"({shown}); add rows for them to every modality DataFrame or drop those "
                    "interactions."
                )
    if rows.shape is not None:
        users = IdMap.range(rows.shape[0], what="user")
        if items is None:
            items = IdMap.range(rows.shape[1], what="item")
    else:
        users = IdMap.from_values(rows.users, what="user")
        if items is None:
            items = IdMap.from_values(rows.items, what="item")
    return users, items, features


def is_int(value: object) -> bool:
    """An integer that is not a boolean."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def check_sparse(matrix: object, name: str) -> None:
    if not sp.issparse(matrix):
        raise InvalidInputError(
            f"{name} must be a scipy.sparse matrix or array of shape (n_users, n_items); got "
            f"{type(matrix).__name__}. Wrap dense data with scipy.sparse.csr_matrix({name})."
        )
    if len(matrix.shape) != 2:  # type: ignore[attr-defined]
        raise InvalidInputError(
            f"{name} must be 2-D with shape (n_users, n_items); got shape {matrix.shape}."  # type: ignore[attr-defined]
        )


def check_k(k: Any, *, name: str = "k", upper: int | None = None) -> int:
    """Check that ``k`` is an integer >= 1 (and <= ``upper`` when given)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise InvalidInputError(f"{name} must be an integer >= 1, got {k!r}.")
    if k < 1:
        raise InvalidInputError(f"{name} must be >= 1, got {k}.")
    if upper is not None and k > upper:
        raise InvalidInputError(f"{name} must be <= {upper}, got {k}.")
    return int(k)


# ---------------------------------------------------------------------------------------------
# Declarative hyper-parameter constraints
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """Numbers of ``kind`` (``numbers.Integral`` or ``numbers.Real``) in a range."""

    kind: type
    left: float | None
    right: float | None
    closed: str = "both"  # "both", "left", "right", "neither"

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        if isinstance(value, (float, np.floating)) and not np.isfinite(value):
            return False
        left_ok = self.left is None or (
            value >= self.left if self.closed in ("both", "left") else value > self.left
        )
        right_ok = self.right is None or (
            value <= self.right if self.closed in ("both", "right") else value < self.right
        )
        return left_ok and right_ok

    def phrase(self) -> str:
        """What a value must be, as the end of "x must ...": "be > 0", "lie in [0, 1)"."""
        if self.kind is numbers.Integral and self.right is None and self.left is not None:
            return f"be an integer >= {self.left + (self.closed in ('right', 'neither'))}"
        if self.left is None or self.right is None:
            if self.left is None and self.right is None:
                return "be a real number"
            strict = self.closed in (("right", "neither") if self.right is None else ("left",))
            op = (">" if self.right is None else "<") + ("" if strict else "=")
            return f"be {op} {self.left if self.right is None else self.right}"
        lb = "[" if self.closed in ("both", "left") else "("
        rb = "]" if self.closed in ("both", "right") else ")"
        return f"lie in {lb}{self.left}, {self.right}{rb}"

    def __str__(self) -> str:
        kind = "an int" if self.kind is numbers.Integral else "a float"
        lb = "[" if self.closed in ("both", "left") else "("
        rb = "]" if self.closed in ("both", "right") else ")"
        left = "-inf" if self.left is None else self.left
        right = "inf" if self.right is None else self.right
        return f"{kind} in the range {lb}{left}, {right}{rb}"


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values."""

    values: frozenset

    def __init__(self, values: Iterable) -> None:
        object.__setattr__(self, "values", frozenset(values))

    def is_satisfied_by(self, value: Any) -> bool:
        try:
            return value in self.values
        except TypeError:
            return False

    def __str__(self) -> str:
        return "one of {" + ", ".join(repr(v) for v in sorted(self.values, key=str)) + "}"


@dataclass(frozen=True)
class Predicate:
    """A value accepted by ``check``; ``description`` says what is allowed.

    ``check`` returns a bool, or raises ``TypeError``/``ValueError``/``RuntimeError`` (which
    count as "not accepted") for values it cannot judge; other errors are bugs and propagate.
    """

    check: Callable[[Any], bool]
    description: str

    def is_satisfied_by(self, value: Any) -> bool:
        try:
            return bool(self.check(value))
        except (TypeError, ValueError, RuntimeError):
            return False

    def __str__(self) -> str:
        return self.description


def check_scalar(value: Any, name: str, interval: Interval) -> Any:
    """Check one number against ``interval``; return it as a Python ``int`` or ``float``.

    For function arguments (estimator hyper-parameters go through :func:`validate_params`).
    Raises :class:`InvalidInputError` (a ``ValueError``) with "``name`` must ..., got
    ``value``".

    Examples
    --------
    >>> check_scalar(3, "n", Interval(numbers.Integral, 1, None))
    3
    >>> try:
    ...     check_scalar(0.0, "scale", Interval(numbers.Real, 0, None, closed="neither"))
    ... except ValueError as exc:
    ...     print(exc)
    scale must be > 0, got 0.0
    """
    integral = interval.kind is numbers.Integral
    if isinstance(value, bool) or not isinstance(value, interval.kind):
        noun = interval.phrase() if integral else "be a real number"
        raise InvalidInputError(f"{name} must {noun}, got {value!r}")
    if not integral and not np.isfinite(value):
        raise InvalidInputError(f"{name} must be finite, got {value!r}")
    if not interval.is_satisfied_by(value):
        raise InvalidInputError(f"{name} must {interval.phrase()}, got {value!r}")
    return int(value) if integral else float(value)


def validate_params(params: Mapping[str, Any], constraints: Mapping[str, list]) -> None:
    """Check each parameter against its list of allowed constraints.

    A constraint is an :class:`Interval`, :class:`Options`, :class:`Predicate`, a type, or
    ``None`` (meaning the value ``None`` is allowed). Raises :class:`InvalidInputError` (a
    ``ValueError``) naming the parameter, the bad value and everything that would be accepted.
    """
    for key, allowed in constraints.items():
        value = params[key]
        ok = False
        for c in allowed:
            if c is None:
                ok = value is None
            elif isinstance(c, type):
                ok = isinstance(value, c) and not (c is not bool and isinstance(value, bool))
            else:
                ok = c.is_satisfied_by(value)
            if ok:
                break
        if not ok:
            described = [
                "None" if c is None else (c.__name__ if isinstance(c, type) else str(c))
                for c in allowed
            ]
            raise InvalidInputError(
                f"The {key!r} parameter must be {' or '.join(described)}; got {value!r}."
            )
