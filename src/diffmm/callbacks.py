"""Per-epoch hooks for the trained recommenders: record metrics, stop training.

Pass them as ``callbacks=[...]`` to :class:`~diffmm.DiffMMRecommender` or
:class:`~diffmm.LightGCNRecommender`. After every epoch each callback is called with an
:class:`Epoch`; returning ``True`` stops training (the best epoch's weights are kept, as with
early stopping). A callback is an object with an ``on_epoch_end(epoch)`` method (subclass
:class:`Callback`) or a plain function ``callback(epoch)``. Callbacks are hyper-parameters, so
``clone`` copies them and a fitted model pickles with them: define them at module level (not
as lambdas) so that they pickle.

Examples
--------
>>> from diffmm import LightGCNRecommender
>>> from diffmm.callbacks import StopAfter, TrackMetrics
>>> from diffmm.datasets import make_synthetic
>>> data = make_synthetic(n_users=60, n_items=40, random_state=0)
>>> track = TrackMetrics(data.validation, metrics=("ndcg",), ks=(10,))
>>> model = LightGCNRecommender(epochs=5, random_state=0, callbacks=[track, StopAfter(epochs=3)])
>>> model = model.fit(data.train)
>>> len(model.history_), sorted(track.history[-1])
(3, ['epoch', 'ndcg@10'])
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Callback", "Epoch", "StopAfter", "TrackMetrics"]


@dataclass
class Epoch:
    """What a callback sees after an epoch.

    Attributes
    ----------
    number : int
        The epoch just completed (1 for the first).
    record : dict
        Its history record (losses, seconds per phase, ``validation_score`` ...); a callback
        may add entries, which then appear in ``history_``.
    """

    number: int
    record: dict[str, Any]
    _factors: Callable[[], tuple[np.ndarray, np.ndarray]]
    _evaluate: Callable[[Any, tuple[str, ...], tuple[int, ...]], dict[str, float]]

    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        """The users' and items' output embeddings at this epoch (computed on request)."""
        return self._factors()

    def evaluate(
        self, held_out: Any, metrics: tuple[str, ...] = ("recall", "ndcg"), ks=(20,)
    ) -> dict[str, float]:
        """Ranking metrics of this epoch's model on ``held_out`` (as ``model.evaluate``)."""
        return self._evaluate(held_out, tuple(metrics), tuple(ks))


class Callback:
    """Base class of callbacks; override :meth:`on_epoch_end`."""

    def on_epoch_end(self, epoch: Epoch) -> bool | None:
        """Called after every epoch; return ``True`` to stop training."""
        return None

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class TrackMetrics(Callback):
    """Evaluate every epoch on held-out data; keep the results in :attr:`history`.

    Each epoch's metrics are also added to its record in the model's ``history_`` (as
    ``"ndcg@20"`` etc.). Use it to watch metrics other than the early-stopping one, or on
    another split.

    Parameters
    ----------
    held_out : DataFrame, array-like or sparse matrix
        Held-out interactions of the model's users, in any form ``evaluate`` accepts.
    metrics : tuple of str, default=("recall", "ndcg")
    ks : tuple of int, default=(20,)

    Attributes
    ----------
    history : list of dict
        Per epoch: ``epoch`` and every ``metric@k``.
    """

    def __init__(self, held_out: Any, metrics=("recall", "ndcg"), ks=(20,)) -> None:
        self.held_out = held_out
        self.metrics = tuple(metrics)
        self.ks = tuple(ks)
        self.history: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: Epoch) -> bool | None:
        """Evaluate this epoch's model; add the metrics to its record and to :attr:`history`."""
        values = epoch.evaluate(self.held_out, self.metrics, self.ks)
        values = {k: v for k, v in values.items() if "@" in k}
        epoch.record.update(values)
        self.history.append({"epoch": epoch.number, **values})
        return None


class StopAfter(Callback):
    """Stop training after ``epochs`` epochs or ``seconds`` of training, whichever first.

    Parameters
    ----------
    epochs : int, optional
    seconds : float, optional
        Seconds of training, counted from the start of the first epoch.
    """

    def __init__(self, *, epochs: int | None = None, seconds: float | None = None) -> None:
        self.epochs = epochs
        self.seconds = seconds
        self._started: float | None = None

    def on_epoch_end(self, epoch: Epoch) -> bool | None:
        """``True`` once the epochs or the seconds are used up."""
        now = time.monotonic()
        if self._started is None or epoch.number == 1:
            spent = sum(v for k, v in epoch.record.items() if k.startswith("seconds_"))
            self._started = now - spent
        if self.epochs is not None and epoch.number >= self.epochs:
            return True
        return self.seconds is not None and now - self._started >= self.seconds


def call(callbacks: Any, epoch: Epoch) -> bool:
    """Run every callback on ``epoch``; whether one of them asked to stop."""
    stop = False
    for callback in callbacks or ():
        hook = getattr(callback, "on_epoch_end", callback)
        stop = bool(hook(epoch)) or stop
    return stop
