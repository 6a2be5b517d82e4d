"""What the recommenders trained by the epoch loop (``_training.Trainer``) share.

They learn one output embedding per user and per item and score by dot product. Device
resolution, random streams, validation with early stopping, the training run (progress bar,
non-finite losses, Ctrl-C) and the fitted factors (scoring, persistence) live here once;
``DiffMMRecommender`` and ``LightGCNRecommender`` add their networks and hyper-parameters.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils.validation import check_is_fitted

from ._base import BaseRecommender
from ._errors import InvalidInputError
from ._evaluation import evaluate_scorer, factor_validation
from ._persistence import FileState
from ._ranking import factor_scores, reusing_block, similar
from ._training import (
    Evaluate,
    NonFiniteLossError,
    Snapshot,
    Trainer,
    TrainingConfig,
    TrainingResult,
)
from ._validation import Interval, Options, Predicate
from .callbacks import Epoch
from .callbacks import call as call_callbacks

__all__ = ["NON_NEGATIVE", "POSITIVE", "POSITIVE_INT", "FactorRecommender", "modules_for_loading"]

POSITIVE_INT = Interval(numbers.Integral, 1, None)
NON_NEGATIVE = Interval(numbers.Real, 0, None)
POSITIVE = Interval(numbers.Real, 0, None, closed="neither")


def modules_for_loading() -> contextlib.AbstractContextManager:
    """Build modules whose weights a file is about to overwrite, leaving torch's RNG as it was.

    Their initial draws come from the global generator inside a fork of it, and are discarded.
    """
    return torch.random.fork_rng(devices=[])


def _callbacks_ok(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        callable(c) or callable(getattr(c, "on_epoch_end", None)) for c in value
    )


def _device_ok(value: Any) -> bool:
    if value == "auto" or isinstance(value, torch.device):
        return True
    torch.device(value)  # raises for nonsense
    return isinstance(value, str)


class FactorRecommender(BaseRecommender):
    """Base of recommenders whose scores are ``user_factors_ @ item_factors_.T`` (not public).

    Subclasses build a network and a :class:`Trainer` in ``fit`` and hand it to
    :meth:`_run_trainer`, which trains, selects the best epoch on the validation data and
    stores the fitted factors (through :meth:`_finish`, or the ``finish`` they pass). They
    extend :meth:`_fitted_state` and :meth:`_set_fitted_state` with their own modules.
    """

    _parameter_constraints: dict[str, list] = {
        "embedding_dim": [POSITIVE_INT],
        "l2_weight": [NON_NEGATIVE],
        "epochs": [POSITIVE_INT],
        "batch_size": [POSITIVE_INT],
        "learning_rate": [POSITIVE],
        "eval_every": [POSITIVE_INT],
        "early_stopping_metric": [
            Options({"recall", "precision", "ndcg", "hit_rate", "map", "mrr"})
        ],
        "early_stopping_k": [POSITIVE_INT],
        "patience": [POSITIVE_INT, None],
        "device": [Predicate(_device_ok, "'auto', a device string or a torch.device")],
        "random_state": [Interval(numbers.Integral, 0, None), np.random.Generator, None],
        "verbose": [bool, Interval(numbers.Integral, 0, None)],
        "user_balance": [Interval(numbers.Real, 0, 1)],
        "negative_candidates": [POSITIVE_INT],
        "learning_rate_schedule": [Options({"constant", "cosine"})],
        "callbacks": [Predicate(_callbacks_ok, "None or a list of callbacks"), None],
    }
    _progress_name: str = "training"

    # -- fitting ---------------------------------------------------------------------------

    def _resolve_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InvalidInputError(
                f"device={self.device!r} was requested but CUDA is not available."
            )
        return device

    def _random_streams(
        self, device: torch.device
    ) -> tuple[np.random.Generator, torch.Generator, torch.Generator]:
        """From ``random_state``: the trainer's NumPy stream, then the init and train generators.

        Initial weights come from a CPU generator, so they do not depend on the device.
        """
        rng = np.random.default_rng(self.random_state)
        init_generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        train_generator = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        return rng, init_generator, train_generator

    def _check_memory(self, n_parameters: int) -> None:
        """Refuse settings whose parameters alone could never fit in this machine's memory."""
        needed = 16 * n_parameters  # float32 weights, gradients and Adam's two moments
        total = _physical_memory()
        if total is not None and needed > total:
            raise MemoryError(
                f"These settings make a model of {n_parameters:,} parameters, which needs "
                f"about {needed / 1e9:,.1f} GB to train (weights, gradients and Adam's "
                f"moments) on a machine with {total / 1e9:,.1f} GB. Lower embedding_dim (or "
                "denoiser_hidden_dims)."
            )

    def _training_config(self, *, has_validation: bool) -> TrainingConfig:
        return TrainingConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            eval_every=self.eval_every,
            patience=self.patience if has_validation else None,
            user_balance=self.user_balance,
            negative_candidates=self.negative_candidates,
            learning_rate_schedule=self.learning_rate_schedule,
        )

    def _validation_matrix(self, validation_data: Any) -> sp.csr_matrix | None:
        if validation_data is None:
            return None
        held_out = self._held_out_matrix(validation_data, "validation_data")
        known = held_out[:, : self.n_items_]
        if (
            known.nnz
            and known.nnz == held_out.nnz
            and known.multiply(self.interactions_).nnz == known.nnz
        ):
            warnings.warn(
                "validation_data holds only training interactions. Training items are left out "
                "of the rankings, so the validation score is 0 in every epoch and early stopping "
                "cannot choose an epoch; hold out interactions that are not in the training data "
                "(e.g. with diffmm.model_selection.train_test_split).",
                UserWarning,
                stacklevel=6,  # the caller of fit (through _transaction and _fit)
            )
        if held_out.nnz == 0:
            raise InvalidInputError(
                "validation_data holds no interaction of the fitted users/items."
            )
        return held_out

    def _validation_scorer(
        self, matrix: sp.csr_matrix, held_out: sp.csr_matrix | None
    ) -> Evaluate | None:
        """``early_stopping_metric@early_stopping_k`` of given factors on ``held_out``."""
        if held_out is None:
            return None
        return factor_validation(
            matrix, held_out, self.early_stopping_metric, self.early_stopping_k
        )

    def _run_trainer(
        self,
        trainer: Trainer,
        *,
        on_epoch_end: Callable[[TrainingResult], None] | None = None,
        state: TrainingResult | None = None,
        finish: Callable[[Snapshot], None] | None = None,
    ) -> TrainingResult:
        """Train (continuing ``state`` if given), keep the best epoch and set the fitted state.

        Sets ``history_``, ``stopped_early_``, ``interrupted_`` and, through ``finish(best)``
        (by default :meth:`_finish`), the factors; warns after Ctrl-C and re-raises
        :class:`NonFiniteLossError` after keeping the best weights so far.
        """
        if finish is None:
            finish = partial(self._finish, trainer)

        def epoch_end(result: TrainingResult) -> None:
            if self.callbacks:
                epoch = Epoch(
                    result.epoch,
                    result.history[-1],
                    trainer.embeddings,
                    partial(self._evaluate_factors, trainer),
                )
                if call_callbacks(self.callbacks, epoch):
                    result.stopped_early = True
            if on_epoch_end is not None:
                on_epoch_end(result)

        with _Progress(self.epochs, enabled=bool(self.verbose), desc=self._progress_name) as bar:
            if state is not None:
                bar.skip(state.epoch)
            trainer.set_batch_report(bar.batch if bar.enabled else None)
            try:
                result = trainer.run(progress=bar.update, on_epoch_end=epoch_end, state=state)
            except NonFiniteLossError as exc:
                self.history_ = exc.history
                if exc.snapshot is not None:
                    finish(exc.snapshot)
                raise
        self.history_ = result.history
        self.stopped_early_ = result.stopped_early
        self.interrupted_ = result.interrupted
        finish(result.best)
        if result.interrupted:
            warnings.warn(
                f"Training was interrupted after epoch {result.epoch}; the model keeps the "
                f"weights of epoch {self.best_epoch_}.",
                UserWarning,
                stacklevel=6,  # the caller of fit (through _transaction and _fit)
            )
        return result

    def _evaluate_factors(
        self, trainer: Trainer, held_out: Any, metrics: tuple[str, ...], ks: tuple[int, ...]
    ) -> dict[str, float]:
        """Metrics of the trainer's current weights on held-out data (for callbacks)."""
        users, items = trainer.embeddings()
        scores = reusing_block(partial(factor_scores, users, items))
        held = self._held_out_matrix(held_out, "held_out")
        return evaluate_scorer(scores, self.interactions_, held, metrics, ks)

    def _finish(self, trainer: Trainer, best: Snapshot) -> None:
        """Keep the chosen epoch's output embeddings and network (on the CPU).

        ``trainer`` holds ``best``'s weights (the loop restores them).
        """
        self.user_factors_, self.item_factors_ = trainer.embeddings()
        self.best_epoch_ = best.epoch
        self.network_ = trainer.network.cpu()

    # -- persistence -------------------------------------------------------------------------

    def _fitted_state(self) -> dict[str, Any]:
        return {
            **super()._fitted_state(),
            "user_factors_": self.user_factors_,
            "item_factors_": self.item_factors_,
            "history_": self.history_,
            "best_epoch_": self.best_epoch_,
            "stopped_early_": self.stopped_early_,
            "interrupted_": getattr(self, "interrupted_", False),
            "device_": str(self.device_),
        }

    def _set_fitted_state(self, state: FileState) -> None:
        super()._set_fitted_state(state)
        users = state.array("user_factors_", ndim=2, kinds="f", finite=True)
        dim = users.shape[1]
        items = state.array("item_factors_", ndim=2, kinds="f", finite=True)
        if users.shape[0] != self.n_users_ or items.shape != (self.n_items_, dim):
            raise state.error(
                f"the factors have shapes {users.shape} and {items.shape} for "
                f"{self.n_users_} users and {self.n_items_} items"
            )
        if dim != self.embedding_dim:
            raise state.error(
                f"the factors have {dim} columns, embedding_dim is {self.embedding_dim}"
            )
        self.user_factors_ = users.astype(np.float32, copy=False)
        self.item_factors_ = items.astype(np.float32, copy=False)
        history = state.value("history_", list)
        if not all(isinstance(record, dict) for record in history):
            raise state.error("history_ is not a list of records")
        self.history_ = list(history)
        self.best_epoch_ = state.value("best_epoch_", int)
        if not 1 <= self.best_epoch_ <= max(len(self.history_), self.best_epoch_ > 0):
            raise state.error(f"best_epoch_ {self.best_epoch_} is not one of the epochs run")
        self.stopped_early_ = state.value("stopped_early_", bool)
        self.interrupted_ = state.value("interrupted_", bool)
        device = state.value("device_", str)
        try:
            self.device_ = torch.device(device)
        except RuntimeError:
            raise state.error(f"device_ {device!r} is not a device") from None

    # -- scoring ---------------------------------------------------------------------------

    def _score_block(self, user_indices: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        check_is_fitted(self, "user_factors_")
        return factor_scores(self.user_factors_, self.item_factors_, user_indices, out)

    def export_serving(self, path: str | os.PathLike) -> Path:
        """Write a light serving file: only what recommending needs, readable without torch.

        The user and item factors, the id maps, each user's seen items, the items' training
        degrees and (for DiffMM) the fusion weights, in the safe file format of :meth:`save`.
        :func:`diffmm.serving.load` reads it into a model that recommends, finds similar
        items and folds in new users (by propagation) with NumPy and SciPy alone, with the
        same results as this model.

        Parameters
        ----------
        path : str or path-like
            Target file (conventionally ``*.serving``); its folder must exist.

        Returns
        -------
        Path

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from diffmm import LightGCNRecommender, serving
        >>> from diffmm.datasets import make_synthetic
        >>> data = make_synthetic(n_users=60, n_items=40, random_state=0)
        >>> model = LightGCNRecommender(epochs=2, random_state=0).fit(data.train)
        >>> light = serving.load(model.export_serving(pathlib.Path(tempfile.mkdtemp()) / "m"))
        >>> bool((light.recommend([0])[0] == model.recommend([0])[0]).all())
        True
        """
        check_is_fitted(self)
        from .serving import export

        return export(self, path)

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
        """The ``n`` items most similar to each of ``items``, by cosine of their embeddings.

        Similarity is the cosine of the fitted item embeddings (``item_factors_``), in
        [-1, 1]; an item is never its own neighbour.

        Parameters
        ----------
        items : array-like of shape (n_queries,) or a single id
            Raw item ids of the model.
        n : int, default=10
        candidates : array-like, optional
            Restrict the answers to these raw item ids (as ``items=`` of :meth:`recommend`).
        exclude : array-like, optional
            Never answer these raw item ids (as ``exclude_items=`` of :meth:`recommend`).
        batch_size : int, default=1024
            Items scored at a time.
        as_frame : bool, default=False
            Return a long DataFrame with columns ``item``, ``similar_item``, ``rank`` and
            ``score`` instead (needs pandas).

        Returns
        -------
        item_ids : ndarray of shape (n_queries, n)
            Raw ids, most similar first (padded as :meth:`recommend` pads).
        scores : ndarray of shape (n_queries, n)
            Cosine similarities.

        Examples
        --------
        >>> from diffmm import LightGCNRecommender
        >>> from diffmm.datasets import make_synthetic
        >>> data = make_synthetic(n_users=60, n_items=40, random_state=0)
        >>> model = LightGCNRecommender(epochs=2, random_state=0).fit(data.train)
        >>> ids, scores = model.similar_items([3, 7], n=5)
        >>> ids.shape, bool(3 not in ids[0])
        ((2, 5), True)
        """
        check_is_fitted(self)
        return similar(
            self._items,
            self.item_factors_,
            items,
            n,
            candidates=candidates,
            exclude=exclude,
            batch_size=batch_size,
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
        """The ``n`` users most similar to each of ``users``, by cosine of their embeddings.

        As :meth:`similar_items`, over ``user_factors_``; a user is never their own
        neighbour. With ``as_frame=True`` the columns are ``user``, ``similar_user``,
        ``rank`` and ``score``.

        Examples
        --------
        >>> from diffmm import LightGCNRecommender
        >>> from diffmm.datasets import make_synthetic
        >>> data = make_synthetic(n_users=60, n_items=40, random_state=0)
        >>> model = LightGCNRecommender(epochs=2, random_state=0).fit(data.train)
        >>> model.similar_users([0], n=3)[0].shape
        (1, 3)
        """
        check_is_fitted(self)
        return similar(
            self._users,
            self.user_factors_,
            users,
            n,
            candidates=candidates,
            exclude=exclude,
            batch_size=batch_size,
            as_frame=as_frame,
        )

    def _score_pairs(self, user_indices: np.ndarray, item_indices: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "user_factors_")
        return np.einsum(
            "ij,ij->i", self.user_factors_[user_indices], self.item_factors_[item_indices]
        )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "user_factors_") and hasattr(self, "best_epoch_")


class _Progress:
    """Progress bars: epochs, and the current phase's batches with its running losses."""

    def __init__(self, total: int, *, enabled: bool, desc: str) -> None:
        self.total = total
        self.enabled = enabled
        self.desc = desc
        self.bar = None
        self.phase_bar = None
        self.phase: str | None = None
        self.last_score: float | None = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, unit="epoch", position=0)
            self.phase_bar = tqdm(total=1, desc="", unit="batch", position=1, leave=False)
        return self

    def skip(self, epochs: int) -> None:
        if self.bar is not None:
            self.bar.update(epochs)

    def batch(self, phase: str, done: int, total: int, losses: dict[str, float]) -> None:
        """One batch of ``phase`` done (of ``total``), with the phase's running losses."""
        bar = self.phase_bar
        if bar is None:
            return
        if phase != self.phase:
            self.phase = phase
            bar.reset(total=total)
            bar.set_description(phase)
        shown = {k.removeprefix("loss_"): f"{v:.4g}" for k, v in losses.items()}
        if self.last_score is not None:
            shown["validation"] = f"{self.last_score:.4f}"
        bar.set_postfix(shown, refresh=False)
        bar.update(done - bar.n)

    def update(self, epoch: int, record: dict[str, Any]) -> None:
        if self.bar is None:
            return
        if "validation_score" in record:
            self.last_score = record["validation_score"]
        self.phase = None
        self.bar.set_postfix(
            {
                k.removeprefix("loss_"): f"{v:.4g}"
                for k, v in record.items()
                if k.startswith(("loss_", "validation")) and isinstance(v, float)
            }
        )
        self.bar.update(1)

    def __exit__(self, *exc: object) -> None:
        for bar in (self.phase_bar, self.bar):
            if bar is not None:
                bar.close()


def _physical_memory() -> int | None:
    """Bytes of physical memory, where the platform tells (None otherwise)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
