"""A light model for applications that only recommend: NumPy and SciPy, no torch.

``model.export_serving(path)`` (on a fitted :class:`~diffmm.DiffMMRecommender` or
:class:`~diffmm.LightGCNRecommender`) writes what recommending needs: the user and item
factors, the id maps, each user's seen items, the items' training degrees (for folding in new
users) and the fusion weights, in the same safe format as model files (JSON and
safetensors in one zip; loading executes no code). :func:`load` returns a
:class:`ServingModel`. Importing this module does not import torch.

Its recommendations are the estimator's: the same factors, the same ranking rule (ties to the
lower item index). Scores are computed with NumPy's matrix product instead of torch's, so
they can differ in the last bits, which can swap two items whose scores tie to that
precision.

Examples
--------
>>> import tempfile, pathlib
>>> from diffmm import LightGCNRecommender
>>> from diffmm.datasets import make_synthetic
>>> from diffmm import serving
>>> data = make_synthetic(n_users=60, n_items=40, random_state=0)
>>> model = LightGCNRecommender(epochs=2, random_state=0).fit(data.train)
>>> path = model.export_serving(pathlib.Path(tempfile.mkdtemp()) / "model.serving")
>>> light = serving.load(path)
>>> light.recommend([0, 1], n=5)[0].shape
(2, 5)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from ._errors import InvalidInputError, ModelFileError
from ._foldin import propagation_user_factors
from ._ids import IdMap
from ._persistence import FileState, read_archive, write_archive
from ._ranking import factor_scores, long_frame, reusing_block, similar, top_n
from ._validation import check_histories

__all__ = ["ServingModel", "load"]

KIND = "serving"


class ServingModel:
    """The fitted factors of a model and what ranking with them needs; read-only.

    Made by :func:`load`, not directly. The methods match the estimators' (same arguments,
    same results): :meth:`recommend`, :meth:`similar_items`, :meth:`similar_users` and the
    propagation fold-in :meth:`recommend_new_users`.

    Attributes
    ----------
    user_ids_, item_ids_ : ndarray
        Raw ids, by index.
    user_factors_ : ndarray of shape (n_users, dim)
    item_factors_ : ndarray of shape (n_items, dim)
    interactions_ : csr_matrix of shape (n_users, n_items)
        Each user's training items (excluded from their recommendations).
    item_degrees_ : ndarray of shape (n_items,)
        Training users per item.
    fusion_weights_ : dict or None
        The modalities' fusion weights of a DiffMM model.
    source_class : str
        The class of the exported model.
    """

    def __init__(self, state: dict[str, Any]) -> None:
        self._users, self._items = state["users"], state["items"]
        self.user_ids_, self.item_ids_ = self._users.ids, self._items.ids
        self.user_factors_ = state["user_factors"]
        self.item_factors_ = state["item_factors"]
        self.interactions_ = state["interactions"]
        self.item_degrees_ = state["item_degrees"]
        self.fusion_weights_ = state["fusion_weights"]
        self.source_class = state["source_class"]

    @property
    def n_users_(self) -> int:
        """Number of users."""
        return len(self._users)

    @property
    def n_items_(self) -> int:
        """Number of items."""
        return len(self._items)

    def __repr__(self) -> str:
        return (
            f"ServingModel({self.source_class}: {self.n_users_} users, {self.n_items_} items, "
            f"dim {self.user_factors_.shape[1]})"
        )

    def recommend(
        self,
        users: Any,
        n: int = 10,
        *,
        exclude_seen: bool = True,
        items: Any = None,
        exclude_items: Any = None,
        batch_size: int = 1024,
        as_frame: bool = False,
    ) -> Any:
        """Top-``n`` items for each user, best first; as the estimators' ``recommend``.

        Returns ``(item_ids, scores)`` of shape (n_users, n), or a long DataFrame with
        ``as_frame=True``.
        """
        users = np.atleast_1d(np.asarray(users))
        if users.ndim != 1 or users.size == 0:
            raise InvalidInputError("users must be a non-empty 1-D array of user ids.")
        user_idx = self._users.index(users, name="users")
        ids, values = self._top(
            self.user_factors_[user_idx],
            n,
            self.interactions_[user_idx] if exclude_seen else None,
            items,
            exclude_items,
            batch_size,
        )
        if as_frame:
            return long_frame(self.user_ids_[user_idx], ids, values, ("user", "item"))
        return ids, values

    def recommend_new_users(
        self,
        histories: Any,
        n: int = 10,
        *,
        method: Literal["propagation"] = "propagation",
        exclude_seen: bool = True,
        items: Any = None,
        exclude_items: Any = None,
        batch_size: int = 1024,
        as_frame: bool = False,
    ) -> Any:
        """Top-``n`` items for users the model was not trained on (propagation fold-in).

        Each history's user embedding is one hop of normalised propagation over the item
        factors, ``Σ_{i∈H} e_i / sqrt((|H|+1)(d_i+1))``, as the estimators'
        ``recommend_new_users(method="propagation")`` computes it.
        """
        if method != "propagation":
            raise InvalidInputError(
                f"A serving model folds in new users by 'propagation' only, got {method!r}; "
                "the denoiser fold-in needs the full model."
            )
        history = check_histories(histories, self._items)
        users = propagation_user_factors(history, self.item_factors_, self.item_degrees_)
        ids, values = self._top(
            users, n, history if exclude_seen else None, items, exclude_items, batch_size
        )
        if as_frame:
            return long_frame(np.arange(history.shape[0]), ids, values, ("user", "item"))
        return ids, values

    def similar_items(
        self,
        items: Any,
        n: int = 10,
        *,
        candidates: Any = None,
        exclude: Any = None,
        batch_size: int = 1024,
        as_frame: bool = False,
    ) -> Any:
        """The ``n`` items most similar to each of ``items`` (cosine of the item factors)."""
        return similar(
            self._items,
            self.item_factors_,
            items,
            n,
            candidates=candidates,
            exclude=exclude,
            batch_size=batch_size,
            use_torch=False,
            as_frame=as_frame,
        )

    def similar_users(
        self,
        users: Any,
        n: int = 10,
        *,
        candidates: Any = None,
        exclude: Any = None,
        batch_size: int = 1024,
        as_frame: bool = False,
    ) -> Any:
        """The ``n`` users most similar to each of ``users`` (cosine of the user factors)."""
        return similar(
            self._users,
            self.user_factors_,
            users,
            n,
            candidates=candidates,
            exclude=exclude,
            batch_size=batch_size,
            use_torch=False,
            as_frame=as_frame,
        )

    def _top(self, users, n, exclude, items, exclude_items, batch_size):
        """Top-``n`` raw item ids and scores of the user factor rows ``users``."""

        def scores(rows: np.ndarray, out: np.ndarray | None) -> np.ndarray:
            return factor_scores(users, self.item_factors_, rows, out, use_torch=False)

        return top_n(
            reusing_block(scores),
            len(users),
            n,
            self._items,
            exclude=exclude,
            wanted=items,
            unwanted=exclude_items,
            batch_size=batch_size,
            use_torch=False,
        )


def export(model: Any, path: str | os.PathLike) -> Path:
    """Write a fitted factor model's serving file (``model.export_serving`` calls this)."""
    seen = sp.csr_matrix(model.interactions_)
    fusion = getattr(model, "fusion_weights_", None)
    tree = {
        "source_class": type(model).__name__,
        "user_ids": model.user_ids_,
        "item_ids": model.item_ids_,
        "user_factors": np.ascontiguousarray(model.user_factors_, dtype=np.float32),
        "item_factors": np.ascontiguousarray(model.item_factors_, dtype=np.float32),
        "seen": {"indptr": seen.indptr, "indices": seen.indices, "shape": list(seen.shape)},
        # As recommend_new_users computes them, so that the fold-in is the same.
        "item_degrees": np.asarray(model.interactions_.sum(axis=0)).ravel(),
        "fusion_weights": None if fusion is None else dict(fusion),
    }
    return write_archive(path, tree, kind=KIND)


def load(path: str | os.PathLike) -> ServingModel:
    """Read a serving file written by ``export_serving`` (no code is executed, no torch).

    Raises :class:`diffmm.ModelFileError` for a file that is not a consistent serving file.
    """
    tree, _ = read_archive(path, kind=KIND, tensors="numpy")
    state = FileState(tree, str(path))
    users = _ids(state, "user_ids", "user")
    items = _ids(state, "item_ids", "item")
    n_users, n_items = len(users), len(items)
    user_factors = state.array("user_factors", ndim=2, kinds="f", finite=True)
    dim = user_factors.shape[1]
    item_factors = state.array("item_factors", ndim=2, kinds="f", shape=(n_items, dim), finite=True)
    if user_factors.shape[0] != n_users:
        raise state.error("the user factors do not match the user ids")
    seen = state.sub("seen")
    if seen.ints("shape", 2) != [n_users, n_items]:
        raise state.error("the seen items do not match the id maps")
    indptr = seen.array("indptr", ndim=1, kinds="iu", shape=(n_users + 1,))
    indices = seen.array("indices", ndim=1, kinds="iu", non_negative=True)
    ok = indptr[0] == 0 and indptr[-1] == len(indices) and not np.any(np.diff(indptr) < 0)
    if not ok or (indices.size and indices.max() >= n_items):
        raise state.error("the seen items are not a CSR matrix")
    interactions = sp.csr_matrix(
        (np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(n_users, n_items)
    )
    degrees = state.array(
        "item_degrees", ndim=1, kinds="f", shape=(n_items,), finite=True, non_negative=True
    )
    fusion = state.value("fusion_weights", dict, allow_none=True)
    if fusion is not None and not all(
        isinstance(k, str) and isinstance(v, float) for k, v in fusion.items()
    ):
        raise state.error("the fusion weights are not a mapping of modality to weight")
    return ServingModel(
        {
            "users": users,
            "items": items,
            "user_factors": user_factors.astype(np.float32, copy=False),
            "item_factors": item_factors.astype(np.float32, copy=False),
            "interactions": interactions,
            "item_degrees": degrees,
            "fusion_weights": fusion,
            "source_class": state.value("source_class", str),
        }
    )


def _ids(state: FileState, key: str, what: str) -> IdMap:
    ids = state.array(key, ndim=1, kinds="iuUO")
    try:
        return IdMap(ids, what=what)
    except InvalidInputError as exc:
        raise ModelFileError(f"The serving file's {what} ids are not usable: {exc}") from None
