"""Multi-modal recommendation datasets: container, synthetic generator and readers.

The module provides

* :class:`MultiModalDataset` -- binary user-item interaction splits plus one dense
  feature matrix per item modality;
* :func:`make_synthetic` -- a synthetic dataset with planted latent structure, for
  tests and quick experiments;
* :func:`load_diffmm_format` -- the folder layout of the DiffMM reference code
  (pickled scipy sparse matrices plus ``<modality>_feat.npy`` files);
* :func:`load_mmrec_format` -- the folder layout of the MMRec toolbox (a tab-separated
  ``<name>.inter`` file plus ``<modality>_feat.npy`` files);
* :func:`load_tiktok` -- the TikTok data shipped with the DiffMM paper's code.

Only numpy and scipy are needed; pandas is never imported.
"""

from __future__ import annotations

import numbers
import os
import pickle
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._validation import Interval, binarize, check_scalar

__all__ = [
    "MultiModalDataset",
    "load_diffmm_format",
    "load_mmrec_format",
    "load_tiktok",
    "make_synthetic",
]

_SPLITS = ("train", "validation", "test")

_DIFFMM_CANDIDATES: dict[str, tuple[str, ...]] = {
    "train": ("trnMat.pkl", "train_mat.pkl", "trn_mat.pkl", "train.pkl"),
    "validation": ("valMat.pkl", "val_mat.pkl", "validation.pkl", "val.pkl"),
    "test": ("tstMat.pkl", "tst_mat.pkl", "test_mat.pkl", "test.pkl"),
}

_FEATURE_SUFFIX = "_feat.npy"

_POSITIVE_INT = Interval(numbers.Integral, 1, None)

#: The environment variable :func:`load_tiktok` reads when no path is given.
TIKTOK_PATH_VARIABLE = "DIFFMM_TIKTOK_PATH"

# Share of each collaborative item factor's variance that is item-specific; the rest
# is shared with the other items of the same cluster (see ``make_synthetic``).
_CLUSTER_SPREAD = 0.1

# Maximum number of user x item scores held in memory at once when sampling.
_SAMPLING_BLOCK = 1 << 22


# ----------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------


def _binarize(matrix: Any, what: str) -> sp.csr_matrix:
    """Return a canonical binary float32 CSR copy of ``matrix``.

    Duplicate entries are summed first, explicit zeros are dropped and every stored
    value is then set to 1.0.  Non-finite stored values raise ``ValueError``.
    """
    if sp.issparse(matrix):
        csr = sp.csr_matrix(matrix)
    else:
        arr = np.asarray(matrix)
        if arr.ndim != 2:
            raise ValueError(f"{what} must be a 2-D matrix, got an array of shape {arr.shape}")
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{what} must hold numbers, got dtype {arr.dtype}")
        csr = sp.csr_matrix(arr)
    if csr.dtype.kind not in "biuf":
        raise ValueError(f"{what} must hold numbers, got dtype {csr.dtype}")
    if csr.dtype == np.float16:
        csr = csr.astype(np.float32)
    if csr.data.size and not np.all(np.isfinite(csr.data)):
        raise ValueError(f"{what} contains non-finite (NaN or inf) values")
    return binarize(csr)


def _as_features(array: Any, what: str) -> np.ndarray:
    """Return ``array`` as a finite 2-D float32 array (upcasting before any arithmetic)."""
    arr = np.asarray(array)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} must hold numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 2-D (n_items, dim), got shape {arr.shape}")
    # Upcast first: float16 arithmetic (even a sum) overflows on real feature files.
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains non-finite (NaN or inf) values")
    return arr


# ----------------------------------------------------------------------------------
# container
# ----------------------------------------------------------------------------------


@dataclass(eq=False)
class MultiModalDataset:
    """Binary user-item interactions with dense per-item features of several modalities.

    On construction every split is converted to a canonical binary
    ``scipy.sparse.csr_matrix`` of dtype float32 (duplicates and weights become 1.0,
    explicit zeros are dropped, indices are sorted), and every feature matrix to a
    C-contiguous float32 array.  All splits must share one shape and every feature
    matrix must have one row per item.

    Parameters
    ----------
    train : sparse matrix or array-like of shape (n_users, n_items)
        Training interactions; any non-zero entry is an interaction.
    features : dict of str to array-like of shape (n_items, d_m)
        Item features per modality; row ``i`` describes item ``i``.
    validation, test : sparse matrix or array-like of shape (n_users, n_items), optional
        Held-out interactions, or None when the split is not available.
    name : str, default=""
        A short name for the dataset.
    missing : tuple of str, default=()
        Names of splits or modalities that a loader looked for but did not find.
    info : dict, default={}
        Free-form metadata, e.g. the ground truth of a synthetic dataset.

    Attributes
    ----------
    n_users : int
        Number of rows of the interaction matrices.
    n_items : int
        Number of columns of the interaction matrices.
    modalities : tuple of str
        The modality names, in the order of ``features``.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from diffmm.datasets import MultiModalDataset
    >>> train = sp.coo_matrix(([2.0, 1.0, 1.0], ([0, 1, 1], [1, 0, 2])), shape=(2, 3))
    >>> ds = MultiModalDataset(train=train, features={"image": np.ones((3, 4))})
    >>> ds.n_users, ds.n_items, ds.modalities
    (2, 3, ('image',))
    >>> ds.train.data
    array([1., 1., 1.], dtype=float32)
    >>> ds.interaction_rows().tolist()
    [[0, 1], [1, 0], [1, 2]]
    """

    train: sp.csr_matrix
    features: dict[str, np.ndarray]
    validation: sp.csr_matrix | None = None
    test: sp.csr_matrix | None = None
    name: str = ""
    missing: tuple[str, ...] = ()
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.train is None:
            raise ValueError("train interactions are required")
        self.train = _binarize(self.train, "train")
        shape = self.train.shape
        for split in ("validation", "test"):
            matrix = getattr(self, split)
            if matrix is None:
                continue
            matrix = _binarize(matrix, split)
            if matrix.shape != shape:
                raise ValueError(
                    f"{split} has shape {matrix.shape} but train has shape {shape}; "
                    "all splits must share the same (n_users, n_items) shape"
                )
            setattr(self, split, matrix)
        if self.features is None:
            self.features = {}
        if not isinstance(self.features, Mapping):
            raise TypeError("features must be a mapping from modality name to array")
        features: dict[str, np.ndarray] = {}
        for key, value in self.features.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"modality names must be non-empty strings, got {key!r}")
            arr = _as_features(value, f"features[{key!r}]")
            if arr.shape[0] != shape[1]:
                raise ValueError(
                    f"features[{key!r}] has {arr.shape[0]} rows but there are {shape[1]} items"
                )
            features[key] = arr
        self.features = features
        self.missing = tuple(self.missing)
        self.name = str(self.name)
        if self.info is None:
            self.info = {}

    @property
    def n_users(self) -> int:
        """Number of users (rows of every split)."""
        return int(self.train.shape[0])

    @property
    def n_items(self) -> int:
        """Number of items (columns of every split, rows of every feature matrix)."""
        return int(self.train.shape[1])

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names, in the order of :attr:`features`."""
        return tuple(self.features)

    def interaction_rows(self, split: str = "train") -> np.ndarray:
        """Return the interactions of a split as (user, item) pairs.

        Parameters
        ----------
        split : {"train", "validation", "test"}, default="train"
            Which split to list.

        Returns
        -------
        ndarray of shape (nnz, 2), dtype int64
            One row ``(user, item)`` per interaction, sorted by user then item.

        Raises
        ------
        ValueError
            If ``split`` is not a split name or the split is not available.

        Examples
        --------
        >>> import numpy as np
        >>> from diffmm.datasets import MultiModalDataset
        >>> ds = MultiModalDataset(train=np.array([[0, 1], [1, 1]]), features={})
        >>> ds.interaction_rows("train").tolist()
        [[0, 1], [1, 0], [1, 1]]
        """
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
        matrix = getattr(self, split)
        if matrix is None:
            raise ValueError(f"the {split!r} split is not available in this dataset")
        users = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
        return np.column_stack([users, matrix.indices.astype(np.int64)])

    def __repr__(self) -> str:
        def count(matrix: sp.csr_matrix | None) -> str:
            return "None" if matrix is None else f"{matrix.nnz} interactions"

        feats = ", ".join(f"{k}: {v.shape[0]}x{v.shape[1]}" for k, v in self.features.items())
        parts = [
            f"name={self.name!r}",
            f"n_users={self.n_users}",
            f"n_items={self.n_items}",
            f"train={count(self.train)}",
            f"validation={count(self.validation)}",
            f"test={count(self.test)}",
            f"features={{{feats}}}",
        ]
        if self.missing:
            parts.append(f"missing={self.missing!r}")
        return "MultiModalDataset(" + ", ".join(parts) + ")"


# ----------------------------------------------------------------------------------
# synthetic data
# ----------------------------------------------------------------------------------


def make_synthetic(
    n_users: int = 600,
    n_items: int = 400,
    *,
    n_factors: int = 16,
    modality_dims: Mapping[str, int] | None = None,
    interactions_per_user: int = 20,
    modality_only_signal: float = 0.3,
    feature_noise: float = 0.5,
    popularity_skew: float = 1.0,
    n_item_clusters: int | None = None,
    temperature: float = 0.5,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.0,
    random_state: int | np.random.Generator | None = None,
) -> MultiModalDataset:
    """Generate a multi-modal implicit-feedback dataset with planted latent structure.

    Generative process (``k = n_factors``, ``k_m = round(modality_only_signal * k)``,
    ``k_c = k - k_m``; all draws come from ``np.random.default_rng(random_state)``):

    1. **Item factors** ``V`` (n_items x k).  Items are assigned uniformly at random
       to ``n_item_clusters`` clusters.  The first ``k_c`` *collaborative* factors
       are ``sqrt(1 - s) * C[cluster(i)] + sqrt(s) * E_i`` with cluster centres
       ``C ~ N(0, 1)``, item noise ``E ~ N(0, 1)`` and ``s = 0.1``: every entry is
       marginally N(0, 1), but items of one cluster share nearly the same
       collaborative factors, so co-consumption evidence about them is pooled
       over the whole cluster.  The last ``k_m`` *modality-only* factors are drawn
       i.i.d. N(0, 1) per item, independent of the clusters and of popularity, so
       interactions carry evidence about an item's modality-only factors only
       through that item's own few interactions (a weaker collaborative signal),
       whereas the features reveal them directly.
    2. **User preferences** ``P`` (n_users x k), i.i.d. N(0, 1) over all factors.
    3. **Features**: for each modality ``m`` with dimension ``d_m``, a weight
       matrix ``W_m`` (k x d_m) ~ N(0, 1); ``Z_m = V @ W_m / sqrt(k)``; ``tanh`` is
       applied to a random subset of columns (each column independently with
       probability 1/2, recorded in ``info["tanh_columns"]``); then
       ``feature_noise * N(0, 1)`` noise is added.  Every modality sees all
       factors, collaborative and modality-only.
    4. **Popularity**: item log-popularity ``b ~ N(0, 0.5**2)`` (log-normal
       popularity), independent of ``V`` and of the clusters.
    5. **Affinity** ``A = P @ V.T / sqrt(k) + popularity_skew * b``.
    6. **Interactions**: user ``u`` draws ``n_u = clip(Poisson(interactions_per_user),
       min(3, n_items), n_items)`` distinct items without replacement from
       ``softmax(A[u] / temperature)`` (Gumbel-top-k: the ``n_u`` largest entries of
       ``A[u] / temperature + Gumbel(0, 1)`` noise).
    7. **Splits**: each user's items are shuffled; the user gets
       ``n_val = floor(validation_fraction * n_u + 0.5)`` validation items and
       ``n_test = floor(test_fraction * n_u + 0.5)`` test items, reduced (validation
       first, then test) so that at least one training item remains; the rest
       are training items.

    Parameters
    ----------
    n_users, n_items : int, default=600, 400
        Matrix shape.
    n_factors : int, default=16
        Number of latent factors ``k``.
    modality_dims : mapping of str to int, optional
        Feature dimension per modality; defaults to ``{"visual": 64, "acoustic": 32}``.
    interactions_per_user : int, default=20
        Mean of the Poisson draw for the number of interactions per user.
    modality_only_signal : float in [0, 1), default=0.3
        Fraction of the factors that are modality-only (see above).
    feature_noise : float >= 0, default=0.5
        Standard deviation of the additive Gaussian feature noise.
    popularity_skew : float >= 0, default=1.0
        Weight of the log-popularity prior in the affinity.
    n_item_clusters : int, optional
        Number of item clusters; defaults to ``max(1, round(sqrt(n_items)))``.
    temperature : float > 0, default=0.5
        Softmax temperature; lower values make choices follow the affinity more
        closely.
    validation_fraction, test_fraction : float in [0, 1), default=0.2, 0.0
        Per-user fractions of held-out interactions; their sum must be < 1.  A
        fraction of 0 gives no such split (``None``).
    random_state : int, numpy Generator or None, default=None
        Seed passed to ``np.random.default_rng``; same seed, same dataset.

    Returns
    -------
    MultiModalDataset
        Named ``"synthetic"``.  ``info`` holds the ground truth:
        ``"user_factors"`` (P), ``"item_factors"`` (V), ``"modality_weights"``
        (dict of W_m), ``"tanh_columns"`` (dict of boolean masks),
        ``"item_log_popularity"`` (b), ``"item_clusters"``, ``"affinity_scale"``
        (``1 / sqrt(k)``), ``"collaborative_factors"`` and
        ``"modality_only_factors"`` (index arrays into the factor axis), and
        ``"params"`` (the arguments).

    Raises
    ------
    ValueError
        For non-positive sizes, out-of-range fractions or empty modality dims.

    Examples
    --------
    >>> from diffmm.datasets import make_synthetic
    >>> ds = make_synthetic(n_users=50, n_items=40, random_state=0)
    >>> ds.train.shape, ds.modalities
    ((50, 40), ('visual', 'acoustic'))
    >>> ds.features["visual"].shape, ds.features["visual"].dtype
    ((40, 64), dtype('float32'))
    >>> bool((ds.train.getnnz(axis=1) >= 1).all())
    True
    """
    n_users = check_scalar(n_users, "n_users", _POSITIVE_INT)
    n_items = check_scalar(n_items, "n_items", _POSITIVE_INT)
    n_factors = check_scalar(n_factors, "n_factors", _POSITIVE_INT)
    interactions_per_user = check_scalar(
        interactions_per_user, "interactions_per_user", _POSITIVE_INT
    )
    if modality_dims is None:
        modality_dims = {"visual": 64, "acoustic": 32}
    if not isinstance(modality_dims, Mapping) or len(modality_dims) == 0:
        raise ValueError("modality_dims must be a non-empty mapping of name -> dimension")
    dims: dict[str, int] = {}
    for key, dim in modality_dims.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"modality names must be non-empty strings, got {key!r}")
        dims[key] = check_scalar(dim, f"modality_dims[{key!r}]", _POSITIVE_INT)
    fraction = Interval(numbers.Real, 0, 1, closed="left")
    non_negative = Interval(numbers.Real, 0, None)
    modality_only_signal = check_scalar(modality_only_signal, "modality_only_signal", fraction)
    feature_noise = check_scalar(feature_noise, "feature_noise", non_negative)
    popularity_skew = check_scalar(popularity_skew, "popularity_skew", non_negative)
    temperature = check_scalar(
        temperature, "temperature", Interval(numbers.Real, 0, None, closed="neither")
    )
    validation_fraction = check_scalar(validation_fraction, "validation_fraction", fraction)
    test_fraction = check_scalar(test_fraction, "test_fraction", fraction)
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            "validation_fraction + test_fraction must be < 1, got "
            f"{validation_fraction} + {test_fraction}"
        )
    if n_item_clusters is None:
        n_item_clusters = max(1, round(np.sqrt(n_items)))
    n_item_clusters = check_scalar(n_item_clusters, "n_item_clusters", _POSITIVE_INT)

    rng = np.random.default_rng(random_state)
    k_mod = round(modality_only_signal * n_factors)
    k_col = n_factors - k_mod

    # 1. item factors
    clusters = rng.integers(0, n_item_clusters, size=n_items)
    centres = rng.standard_normal((n_item_clusters, k_col))
    v_col = np.sqrt(1.0 - _CLUSTER_SPREAD) * centres[clusters] + np.sqrt(
        _CLUSTER_SPREAD
    ) * rng.standard_normal((n_items, k_col))
    v_mod = rng.standard_normal((n_items, k_mod))
    item_factors = np.hstack([v_col, v_mod])
    # 2. user preferences
    user_factors = rng.standard_normal((n_users, n_factors))
    # 3. features
    scale = 1.0 / np.sqrt(n_factors)
    weights: dict[str, np.ndarray] = {}
    tanh_cols: dict[str, np.ndarray] = {}
    features: dict[str, np.ndarray] = {}
    for key, dim in dims.items():
        w = rng.standard_normal((n_factors, dim))
        mask = rng.random(dim) < 0.5
        z = item_factors @ w * scale
        z[:, mask] = np.tanh(z[:, mask])
        z += feature_noise * rng.standard_normal((n_items, dim))
        weights[key] = w
        tanh_cols[key] = mask
        features[key] = z.astype(np.float32)
    # 4. popularity
    log_pop = 0.5 * rng.standard_normal(n_items)
    # 6. number of interactions per user
    n_per_user = np.clip(
        rng.poisson(interactions_per_user, size=n_users), min(3, n_items), n_items
    ).astype(np.int64)

    # 5 + 6. Gumbel-top-k sampling without replacement, in blocks of users
    bias = popularity_skew * log_pop
    block = max(1, _SAMPLING_BLOCK // n_items)
    chosen: list[np.ndarray] = []
    for start in range(0, n_users, block):
        stop = min(start + block, n_users)
        logits = (user_factors[start:stop] @ item_factors.T * scale + bias) / temperature
        logits += rng.gumbel(size=logits.shape)
        counts = n_per_user[start:stop]
        kmax = int(counts.max())
        if kmax < n_items:
            top = np.argpartition(-logits, kmax - 1, axis=1)[:, :kmax]
        else:
            top = np.broadcast_to(np.arange(n_items), logits.shape)
        top_scores = np.take_along_axis(logits, top, axis=1)
        top = np.take_along_axis(top, np.argsort(-top_scores, axis=1, kind="stable"), axis=1)
        keep = np.arange(kmax)[None, :] < counts[:, None]
        chosen.append(top[keep])
    items = np.concatenate(chosen).astype(np.int64)
    users = np.repeat(np.arange(n_users, dtype=np.int64), n_per_user)

    # 7. random per-user split
    order = np.lexsort((rng.random(items.size), users))
    users, items = users[order], items[order]
    starts = np.concatenate([[0], np.cumsum(n_per_user)[:-1]])
    rank = np.arange(items.size) - np.repeat(starts, n_per_user)
    n_val = np.floor(validation_fraction * n_per_user + 0.5).astype(np.int64)
    n_test = np.floor(test_fraction * n_per_user + 0.5).astype(np.int64)
    n_val = np.minimum(n_val, n_per_user - 1)
    n_test = np.minimum(n_test, n_per_user - 1 - n_val)
    n_train = n_per_user - n_val - n_test
    r_train = np.repeat(n_train, n_per_user)
    r_val = np.repeat(n_train + n_val, n_per_user)
    in_train = rank < r_train
    in_val = (rank >= r_train) & (rank < r_val)
    in_test = rank >= r_val

    def matrix(mask: np.ndarray) -> sp.csr_matrix:
        ones = np.ones(int(mask.sum()), dtype=np.float32)
        return sp.csr_matrix((ones, (users[mask], items[mask])), shape=(n_users, n_items))

    info = {
        "user_factors": user_factors,
        "item_factors": item_factors,
        "modality_weights": weights,
        "tanh_columns": tanh_cols,
        "item_log_popularity": log_pop,
        "item_clusters": clusters,
        "affinity_scale": scale,
        "collaborative_factors": np.arange(k_col),
        "modality_only_factors": np.arange(k_col, n_factors),
        "params": {
            "n_users": n_users,
            "n_items": n_items,
            "n_factors": n_factors,
            "modality_dims": dict(dims),
            "interactions_per_user": interactions_per_user,
            "modality_only_signal": modality_only_signal,
            "feature_noise": feature_noise,
            "popularity_skew": popularity_skew,
            "n_item_clusters": n_item_clusters,
            "temperature": temperature,
            "validation_fraction": validation_fraction,
            "test_fraction": test_fraction,
            "random_state": random_state
            if not isinstance(random_state, np.random.Generator)
            else "Generator",
        },
    }
    return MultiModalDataset(
        train=matrix(in_train),
        features=features,
        validation=matrix(in_val) if validation_fraction > 0 else None,
        test=matrix(in_test) if test_fraction > 0 else None,
        name="synthetic",
        info=info,
    )


# ----------------------------------------------------------------------------------
# readers
# ----------------------------------------------------------------------------------


def _require_folder(path: str | Path) -> Path:
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"dataset folder not found: {folder}")
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset path is not a folder: {folder}")
    return folder


def _load_pickled_matrix(file: Path) -> sp.csr_matrix:
    try:
        with open(file, "rb") as fh, warnings.catch_warnings():
            # Pickles written by older scipy versions refer to deprecated modules.
            warnings.simplefilter("ignore", DeprecationWarning)
            obj = pickle.load(fh)  # documented: trusted files only
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise ValueError(f"could not unpickle an interaction matrix from {file}: {exc}") from exc
    if not (sp.issparse(obj) or isinstance(obj, np.ndarray)):
        raise ValueError(
            f"{file} does not hold a scipy sparse matrix or 2-D array (got {type(obj).__name__})"
        )
    values = obj.data if sp.issparse(obj) else obj
    if values.dtype.kind in "iuf" and values.size and np.nanmin(values) < 0:
        raise ValueError(
            f"{file} holds negative values (e.g. {np.nanmin(values)!r}); an interaction matrix "
            "holds counts or ones, so it is probably not one"
        )
    return _binarize(obj, str(file))


def _load_feature_file(file: Path, n_items: int) -> np.ndarray:
    arr = np.load(file, allow_pickle=False)
    feats = _as_features(arr, str(file))  # upcasts to float32 before any arithmetic
    if feats.shape[0] != n_items:
        raise ValueError(
            f"{file} has {feats.shape[0]} rows but the interaction matrices have "
            f"{n_items} items; feature rows must be aligned to item columns"
        )
    return feats


def _feature_files(folder: Path) -> dict[str, Path]:
    files = sorted(p for p in folder.glob("*" + _FEATURE_SUFFIX) if p.is_file())
    return {p.name[: -len(_FEATURE_SUFFIX)]: p for p in files}


def _warn_missing(kind: str, names: Iterable[str], folder: Path, stacklevel: int) -> None:
    names = list(names)
    if names:
        warnings.warn(
            f"{kind} not found in {folder}: {', '.join(names)}; recorded in "
            "MultiModalDataset.missing",
            UserWarning,
            stacklevel=stacklevel,
        )


def _load_diffmm(
    path: str | Path,
    *,
    train_file: str | None,
    validation_file: str | None,
    test_file: str | None,
    modalities: str | Iterable[str] | None,
    name: str | None,
    quiet_missing: tuple[str, ...] = (),
    stacklevel: int = 4,
) -> MultiModalDataset:
    folder = _require_folder(path)
    explicit = {"train": train_file, "validation": validation_file, "test": test_file}
    files: dict[str, Path | None] = {}
    for split in _SPLITS:
        if explicit[split] is not None:
            file = folder / explicit[split]
            if not file.is_file():
                raise FileNotFoundError(f"{split} file {file} (named explicitly) not found")
            files[split] = file
            continue
        found = [folder / c for c in _DIFFMM_CANDIDATES[split] if (folder / c).is_file()]
        files[split] = found[0] if found else None
    if files["train"] is None:
        raise FileNotFoundError(
            f"no training matrix in {folder}: looked for "
            f"{', '.join(_DIFFMM_CANDIDATES['train'])} (pass train_file= to name it)"
        )

    matrices = {s: _load_pickled_matrix(f) for s, f in files.items() if f is not None}
    shape = matrices["train"].shape
    for split, matrix in matrices.items():
        if matrix.shape != shape:
            raise ValueError(
                f"{files[split]} has shape {matrix.shape} but {files['train']} has shape "
                f"{shape}; all splits must share the same shape"
            )
    missing = [s for s in ("validation", "test") if s not in matrices]

    available = _feature_files(folder)
    if modalities is None:
        wanted = list(available)
        if not wanted:
            warnings.warn(
                f"no *{_FEATURE_SUFFIX} feature files in {folder}; the dataset has no modalities",
                UserWarning,
                stacklevel=stacklevel - 1,
            )
    else:
        wanted = [modalities] if isinstance(modalities, str) else list(modalities)
    features: dict[str, np.ndarray] = {}
    for modality in wanted:
        if modality in available:
            features[modality] = _load_feature_file(available[modality], shape[1])
        elif modality not in missing:
            missing.append(modality)

    _warn_missing(
        "splits",
        [s for s in ("validation", "test") if s in missing and s not in quiet_missing],
        folder,
        stacklevel,
    )
    _warn_missing(
        "modalities",
        [m for m in missing if m in wanted and m not in quiet_missing],
        folder,
        stacklevel,
    )
    return MultiModalDataset(
        train=matrices["train"],
        features=features,
        validation=matrices.get("validation"),
        test=matrices.get("test"),
        name=folder.resolve().name if name is None else name,
        missing=tuple(missing),
        info={
            "format": "diffmm",
            "path": str(folder),
            "files": {
                **{s: str(f) for s, f in files.items() if f is not None},
                **{m: str(available[m]) for m in features},
            },
        },
    )


def load_diffmm_format(
    path: str | Path,
    *,
    train_file: str | None = None,
    validation_file: str | None = None,
    test_file: str | None = None,
    modalities: str | Iterable[str] | None = None,
) -> MultiModalDataset:
    """Load a dataset folder in the DiffMM reference code's format.

    The folder holds pickled scipy sparse interaction matrices (coo, csr or csc;
    any stored non-zero counts as an interaction) and one ``<modality>_feat.npy``
    file per modality, row ``i`` describing item ``i``.  Files are found as
    follows, the first existing candidate winning:

    * train: ``trnMat.pkl``, ``train_mat.pkl``, ``trn_mat.pkl``, ``train.pkl``;
    * validation: ``valMat.pkl``, ``val_mat.pkl``, ``validation.pkl``, ``val.pkl``;
    * test: ``tstMat.pkl``, ``tst_mat.pkl``, ``test_mat.pkl``, ``test.pkl``;
    * features: every ``*_feat.npy``; the modality name is the file name without
      ``_feat.npy`` (``image_feat.npy`` -> ``"image"``).

    .. warning::
       The interaction matrices are read with :func:`pickle.load`, which can
       execute arbitrary code embedded in the file.  Only load files you trust.

    Parameters
    ----------
    path : str or Path
        The dataset folder.
    train_file, validation_file, test_file : str, optional
        File names (relative to ``path``) overriding the candidate lists; a named
        file must exist.
    modalities : str or iterable of str, optional
        Modalities to load, in this order.  By default every ``*_feat.npy`` file is
        loaded, in alphabetical order of the modality name.

    Returns
    -------
    MultiModalDataset
        Named after the folder.  Splits are binarised (float32 ones).  Features are
        float32: float16 files are upcast *before* any arithmetic, because float16
        sums overflow.  ``missing`` lists a validation or test split that was not
        found and any requested modality without a feature file; each such case also
        emits a ``UserWarning``.  ``info["files"]`` records the files read.

    Raises
    ------
    FileNotFoundError
        If the folder, the training matrix or an explicitly named file is missing.
    ValueError
        If a pickle does not hold a matrix, the splits differ in shape, or a feature
        file has the wrong number of rows or non-finite values (the message names
        the file).

    Examples
    --------
    >>> import pickle, tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from diffmm.datasets import load_diffmm_format
    >>> folder = Path(tempfile.mkdtemp())
    >>> train = sp.coo_matrix(([1.0, 1.0], ([0, 1], [1, 2])), shape=(2, 3))
    >>> with open(folder / "trnMat.pkl", "wb") as fh:
    ...     pickle.dump(train, fh)
    >>> with open(folder / "valMat.pkl", "wb") as fh:
    ...     pickle.dump(sp.coo_matrix(([1.0], ([0], [0])), shape=(2, 3)), fh)
    >>> with open(folder / "tstMat.pkl", "wb") as fh:
    ...     pickle.dump(sp.coo_matrix(([1.0], ([1], [0])), shape=(2, 3)), fh)
    >>> np.save(folder / "image_feat.npy", np.ones((3, 4), dtype=np.float16))
    >>> ds = load_diffmm_format(folder)
    >>> ds.train.shape, ds.modalities, ds.features["image"].dtype, ds.missing
    ((2, 3), ('image',), dtype('float32'), ())
    """
    return _load_diffmm(
        path,
        train_file=train_file,
        validation_file=validation_file,
        test_file=test_file,
        modalities=modalities,
        name=None,
    )


def _read_inter(file: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The userID, itemID and x_label columns of an ``.inter`` file.

    Ids are read as text and kept exactly: as integers when every one is a non-negative
    integer that fits 64 bits, as strings otherwise (never through floats).
    """
    with open(file, encoding="utf-8") as fh:
        header_line = fh.readline()
    header = [h.strip() for h in header_line.rstrip("\r\n").split("\t")]
    # MMRec headers may carry RecBole-style type tags, e.g. "userID:token".
    names = [h.split(":", 1)[0] for h in header]
    required = ("userID", "itemID", "x_label")
    absent = [c for c in required if c not in names]
    if absent:
        raise ValueError(
            f"{file} header lacks column(s) {', '.join(absent)}; found columns {header} "
            "(expected a tab-separated header with userID, itemID and x_label)"
        )
    cols = tuple(names.index(c) for c in required)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            data = np.loadtxt(
                file,
                delimiter="\t",
                skiprows=1,
                usecols=cols,
                dtype=str,
                ndmin=2,
                comments=None,
                encoding="utf-8",
            )
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"could not parse {file}: {exc}") from exc
    if data.shape[0] == 0:
        raise ValueError(f"{file} holds no interactions")
    data = np.char.strip(data)
    users, items = (_parse_ids(data[:, c], f"{file}: {n}") for c, n in enumerate(required[:2]))
    labels = data[:, 2]
    bad = np.setdiff1d(np.unique(labels), ["0", "1", "2"])
    if bad.size:
        raise ValueError(
            f"{file}: x_label must be 0 (train), 1 (valid) or 2 (test), found {bad[:5].tolist()}"
        )
    return users, items, labels.astype(np.int64)


def _parse_ids(column: np.ndarray, what: str) -> np.ndarray:
    """Integer ids (non-negative, below 2**63) as int64; anything else kept as strings."""
    if np.any(column == ""):
        raise ValueError(f"{what} has an empty value")
    if np.all(np.char.isdigit(column)) and np.all(np.char.str_len(column) <= 18):
        return column.astype(np.int64)  # at most 18 digits: below 2**63, exactly
    digits = np.char.isdigit(column)
    if np.all(digits) and all(int(v) < 2**63 for v in column.tolist()):
        return np.array([int(v) for v in column.tolist()], dtype=np.int64)
    return column


def load_mmrec_format(path: str | Path, *, name: str | None = None) -> MultiModalDataset:
    """Load a dataset folder in the MMRec toolbox's format.

    The folder holds a tab-separated ``<name>.inter`` file whose header names at
    least the columns ``userID``, ``itemID`` and ``x_label`` (0 = train,
    1 = validation, 2 = test; other columns such as ``rating`` or ``timestamp`` are
    ignored), and ``image_feat.npy`` / ``text_feat.npy`` (and any other
    ``*_feat.npy``) feature files, row ``i`` describing item ``i``.  The file is
    parsed with numpy only.

    Parameters
    ----------
    path : str or Path
        The dataset folder.
    name : str, optional
        Dataset name: the file ``<name>.inter`` is read.  By default the folder must
        hold exactly one ``*.inter`` file, which is used.

    Returns
    -------
    MultiModalDataset
        Row ``u`` is the ``u``-th distinct userID in sorted order (``info["user_ids"]``
        holds them); with feature files, column ``i`` is item ``i`` (the feature row),
        otherwise the ``i``-th distinct itemID (``info["item_ids"]``). Ids are read as
        integers, or as strings when they are not all non-negative integers.  ``missing``
        lists a validation or test split without any row and an absent ``image`` or
        ``text`` modality; each such case also emits a ``UserWarning``.

    Raises
    ------
    FileNotFoundError
        If the folder or the ``.inter`` file is missing.
    ValueError
        If several ``.inter`` files exist and ``name`` is None, the header lacks a
        required column, values are malformed, there are no training rows, or a
        feature file has the wrong number of rows or non-finite values.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from diffmm.datasets import load_mmrec_format
    >>> folder = Path(tempfile.mkdtemp())
    >>> rows = ["userID itemID rating x_label", "0 0 5 0", "0 1 4 1", "1 1 3 0", "1 2 4 2"]
    >>> text = "".join(row.replace(" ", "\\t") + "\\n" for row in rows)
    >>> _ = (folder / "toy.inter").write_text(text)
    >>> np.save(folder / "image_feat.npy", np.ones((3, 4), dtype=np.float32))
    >>> np.save(folder / "text_feat.npy", np.ones((3, 8), dtype=np.float32))
    >>> ds = load_mmrec_format(folder)
    >>> ds.name, ds.train.nnz, ds.validation.nnz, ds.test.nnz, ds.modalities
    ('toy', 2, 1, 1, ('image', 'text'))
    """
    folder = _require_folder(path)
    if name is not None:
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise ValueError(
                f"name must be the name of a .inter file in {folder}, not a path; got {name!r}"
            )
        stem = name[: -len(".inter")] if name.endswith(".inter") else name
        file = folder / f"{stem}.inter"
        if not file.is_file():
            raise FileNotFoundError(f"interaction file {file} not found")
    else:
        inter = sorted(p for p in folder.glob("*.inter") if p.is_file())
        if not inter:
            raise FileNotFoundError(f"no *.inter file in {folder}")
        if len(inter) > 1:
            raise ValueError(
                f"several .inter files in {folder}: {', '.join(p.name for p in inter)}; "
                "pass name= to choose one"
            )
        file = inter[0]
    users, items, labels = _read_inter(file)
    if not np.any(labels == 0):
        raise ValueError(f"{file} has no training rows (x_label == 0)")

    available = _feature_files(folder)
    features = {
        m: _as_features(np.load(f, allow_pickle=False), str(f)) for m, f in available.items()
    }
    user_ids, user_index = np.unique(users, return_inverse=True)
    info_ids = {"user_ids": user_ids}
    if features:  # item i is feature row i
        rows = {m: f.shape[0] for m, f in features.items()}
        n_items = next(iter(rows.values()))
        if len(set(rows.values())) > 1:
            raise ValueError(f"the feature files have different row counts {rows}")
        if items.dtype.kind != "i" or items.max() >= n_items:
            outside = str(items[0] if items.dtype.kind != "i" else items.max())
            first = next(iter(available.values()))
            raise ValueError(
                f"{file}: itemID {outside} has no feature row ({first} has {n_items} rows); "
                "with feature files, item ids must be the indices of their rows"
            )
        item_index = items
    else:  # no side data: items are their distinct ids
        item_ids, item_index = np.unique(items, return_inverse=True)
        n_items = len(item_ids)
        info_ids["item_ids"] = item_ids
    n_users = len(user_ids)

    def matrix(label: int) -> sp.csr_matrix | None:
        mask = labels == label
        if not mask.any():
            return None
        ones = np.ones(int(mask.sum()), dtype=np.float32)
        return sp.csr_matrix((ones, (user_index[mask], item_index[mask])), shape=(n_users, n_items))

    splits = {"train": matrix(0), "validation": matrix(1), "test": matrix(2)}
    missing_splits = [s for s in ("validation", "test") if splits[s] is None]
    missing_mods = [m for m in ("image", "text") if m not in features]
    _warn_missing("splits", missing_splits, folder, 3)
    _warn_missing("modalities", missing_mods, folder, 3)
    return MultiModalDataset(
        train=splits["train"],
        features=features,
        validation=splits["validation"],
        test=splits["test"],
        name=file.stem,
        missing=tuple(missing_splits + missing_mods),
        info={
            "format": "mmrec",
            "path": str(folder),
            "files": {"inter": str(file), **{m: str(f) for m, f in available.items()}},
            **info_ids,
        },
    )


def load_tiktok(path: str | Path | None = None) -> MultiModalDataset:
    """Load the TikTok micro-video dataset distributed with the DiffMM code.

    A thin wrapper around :func:`load_diffmm_format` that reads ``trnMat.pkl``,
    ``valMat.pkl``, ``image_feat.npy`` and ``audio_feat.npy``.  The test split of
    this copy is kept aside for independent evaluation, so ``missing`` always
    contains ``"test"``; since that is expected, no warning is emitted for it (a
    missing validation split or modality still warns).  The pickles are read with
    :func:`pickle.load`, which can execute code: only load files you trust.

    Parameters
    ----------
    path : str or Path, optional
        The dataset folder.  By default the folder named by the environment variable
        ``DIFFMM_TIKTOK_PATH``.

    Returns
    -------
    MultiModalDataset
        Named ``"tiktok"``, with features ``{"image": ..., "audio": ...}`` (float32,
        128 columns each).

    Raises
    ------
    FileNotFoundError
        If the folder (or its training matrix) cannot be found.
    ValueError
        If no ``path`` is given and ``DIFFMM_TIKTOK_PATH`` is not set.

    Examples
    --------
    >>> from diffmm.datasets import load_tiktok
    >>> ds = load_tiktok("data/tiktok")  # doctest: +SKIP
    >>> ds.train.shape, ds.modalities  # doctest: +SKIP
    ((9308, 6710), ('image', 'audio'))
    """
    if path is None:
        path = os.environ.get(TIKTOK_PATH_VARIABLE)
        if not path:
            raise ValueError(
                f"Where is the TikTok folder? Pass load_tiktok(path) or set the environment "
                f"variable {TIKTOK_PATH_VARIABLE}."
            )
    return _load_diffmm(
        path,
        train_file=None,
        validation_file=None,
        test_file=None,
        modalities=("image", "audio"),
        name="tiktok",
        quiet_missing=("test",),
    )
