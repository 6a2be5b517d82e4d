"""The epoch loop shared by the package's trained recommenders.

Per epoch: the model's diffusion phases when it has them (``_diffusion_phases``), then the
recommender step over all training interactions in batches with sampled negatives, then
evaluation, the weight snapshot of the best epoch, early stopping and the epoch's history
record. A non-finite loss or Ctrl-C leaves the best weights so far in place. What the model
computes per batch comes from its objective (``_objectives``); nothing here knows about raw
ids, scikit-learn or files.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch
from torch.profiler import record_function

from ._compute import adam, release_free_memory
from ._errors import NonFiniteLossError

if TYPE_CHECKING:  # the loop is given these; it never builds them
    from ._diffusion_phases import DiffusionPhases
    from ._objectives import Objective

__all__ = [
    "NonFiniteLossError",
    "Snapshot",
    "Trainer",
    "TrainingConfig",
    "TrainingResult",
    "learning_rate_at",
    "sample_negatives",
]

logger = logging.getLogger("diffmm")

#: ``evaluate(user_factors, item_factors)``: a higher-is-better validation score.
Evaluate = Callable[[np.ndarray, np.ndarray], float]
#: ``on_batch(phase, done, total, running_losses)``: progress within an epoch.
BatchReport = Callable[[str, int, int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of the loop itself (the model's own settings live in its objective)."""

    epochs: int = 50
    batch_size: int = 1024  # interactions per recommender batch
    learning_rate: float = 1e-3
    eval_every: int = 1
    patience: int | None = None
    # Options (model page): 0 = every interaction once per epoch, in random order; > 0 draws
    # (user, item) pairs with users weighted by degree^(1 − user_balance).
    user_balance: float = 0.0
    negative_candidates: int = 1  # > 1: the best-scoring of this many uniform negatives
    learning_rate_schedule: str = "constant"  # or "cosine" (see learning_rate_at)


def learning_rate_at(config: TrainingConfig, epoch: int) -> float:
    """The recommender's learning rate in ``epoch`` (counted from 1).

    ``"constant"``: ``learning_rate`` throughout (the published model). ``"cosine"``:
    ``learning_rate · (1 + cos(π (epoch − 1) / epochs)) / 2``, from ``learning_rate`` in the
    first epoch down towards 0 in the last; a stopped run keeps the schedule of the full
    budget.
    """
    if config.learning_rate_schedule == "constant":
        return config.learning_rate
    progress = (epoch - 1) / config.epochs
    return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))


def sample_negatives(
    matrix: sp.csr_matrix,
    users: np.ndarray,
    rng: np.random.Generator,
    *,
    excluded: np.ndarray | None = None,
) -> np.ndarray:
    """One item per entry of ``users``, uniform among the items that user has not interacted with.

    Exact and vectorised: draws for all rows at once and redraws only the rows that hit a
    positive, until none does (model page: "Training the recommender"). ``excluded`` (a
    boolean mask over items) names items that are never drawn, for any user.
    """
    n_items = matrix.shape[1]
    matrix = matrix.tocsr()
    matrix.sort_indices()
    degree = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), degree)
    available = n_items - degree
    if excluded is not None:
        excluded_positives = np.bincount(
            rows, weights=excluded[matrix.indices], minlength=len(degree)
        ).astype(np.int64)
        available = available - (int(excluded.sum()) - excluded_positives)
    if np.any(available[users] <= 0):
        raise ValueError("A user has interacted with every item; no negative can be sampled.")
    positive_keys = rows * n_items + matrix.indices  # sorted: CSR is row-major, columns sorted
    users = np.asarray(users, dtype=np.int64)
    negatives = rng.integers(0, n_items, size=len(users))
    pending = np.arange(len(users))
    while pending.size:
        keys = users[pending] * n_items + negatives[pending]
        pos = np.minimum(np.searchsorted(positive_keys, keys), max(len(positive_keys) - 1, 0))
        hit = positive_keys[pos] == keys if len(positive_keys) else np.zeros(len(keys), bool)
        if excluded is not None:
            hit |= excluded[negatives[pending]]
        pending = pending[hit]
        negatives[pending] = rng.integers(0, n_items, size=pending.size)
    return negatives


def sample_pairs(
    matrix: sp.csr_matrix, n: int, balance: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (user, positive item) pairs drawn with replacement, users weighted by degree.

    A user ``u`` with ``d_u`` training items is drawn with probability proportional to
    ``d_u^(1 − balance)``, then one of their items uniformly: ``balance = 0`` draws
    interactions uniformly, ``balance = 1`` draws users uniformly (model page: "Options").
    """
    matrix = matrix.tocsr()
    degree = np.diff(matrix.indptr)
    active = np.flatnonzero(degree > 0)
    weights = degree[active].astype(np.float64) ** (1.0 - balance)
    users = rng.choice(active, size=n, p=weights / weights.sum())
    offsets = np.floor(rng.random(n) * degree[users]).astype(np.int64)
    items = matrix.indices[matrix.indptr[users] + offsets].astype(np.int64)
    return users.astype(np.int64), items


@dataclass
class Snapshot:
    """Weights and generated graphs at the end of one epoch."""

    epoch: int
    network: dict[str, torch.Tensor]
    denoisers: list[dict[str, torch.Tensor]]
    graphs: list[torch.Tensor] | None
    score: float | None = None


@dataclass
class TrainingResult:
    """The loop's state: also what a checkpoint must hold to resume exactly."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best: Snapshot | None = None
    last_good: Snapshot | None = None
    stale: int = 0
    epoch: int = 0
    stopped_early: bool = False
    interrupted: bool = False


class Trainer:
    """Runs a model's epochs on one device.

    Parameters
    ----------
    objective : Objective
        The model's network, batch loss and encoder (``_objectives``).
    matrix : csr_matrix of shape (n_users, n_items)
        The binary training matrix ``R``.
    config : TrainingConfig
    device : torch.device
    rng : numpy.random.Generator
        Drives shuffling and negative sampling (and, through ``diffusion``, its shuffling).
    diffusion : DiffusionPhases, optional
        Run before the recommender step in every epoch; its denoisers and generated graphs
        are part of each snapshot.
    evaluate : callable, optional
        ``evaluate(user_factors, item_factors)``, a higher-is-better validation score: the
        best-scoring epoch is kept and patience counts evaluations without improvement.
    never_negative : ndarray of bool of shape (n_items,), optional
        Items never sampled as negatives.
    """

    def __init__(
        self,
        objective: Objective,
        matrix: sp.csr_matrix,
        config: TrainingConfig,
        *,
        device: torch.device,
        rng: np.random.Generator,
        diffusion: DiffusionPhases | None = None,
        evaluate: Evaluate | None = None,
        never_negative: np.ndarray | None = None,
    ) -> None:
        self.objective = objective
        self.network = objective.network
        self.diffusion = diffusion
        self.matrix = matrix.tocsr()
        self.config = config
        self.device = device
        self.rng = rng
        self.evaluate = evaluate
        self.never_negative = never_negative
        self.on_batch: BatchReport | None = None  # see set_batch_report
        self.optimizer = adam(self.network.parameters(), config.learning_rate)
        coo = self.matrix.tocoo()
        self.train_users = coo.row.astype(np.int64)
        self.train_items = coo.col.astype(np.int64)

    def set_batch_report(self, on_batch: BatchReport | None) -> None:
        """After every batch of every phase, call ``on_batch(phase, done, total, losses)``.

        ``losses`` are the phase's running means (empty for generation); for progress
        displays. Without it (``None``) no work is done for reporting.
        """
        self.on_batch = on_batch
        if self.diffusion is not None:
            self.diffusion.on_batch = on_batch

    def _end_phase(self) -> None:
        """End a phase: its queued GPU work is waited for and its freed host memory returned.

        Phase timings must not leak queued GPU work into the next phase.
        """
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        release_free_memory()

    # -- the recommender step (model page: "Training the recommender") -------------------------

    def _epoch_triples(self) -> np.ndarray:
        """The epoch's (user, item, negative candidates...) columns, in batch order."""
        cfg = self.config
        k = cfg.negative_candidates
        if cfg.user_balance == 0:  # every interaction once
            users, items = self.train_users, self.train_items
            negatives = self._negatives(users if k == 1 else np.repeat(users, k))
            order = self.rng.permutation(len(users))
            users, items, negatives = users[order], items[order], negatives.reshape(-1, k)[order]
        else:
            n = len(self.train_users)
            users, items = sample_pairs(self.matrix, n, cfg.user_balance, self.rng)
            negatives = self._negatives(np.repeat(users, k)).reshape(-1, k)
        return np.concatenate([users[None], items[None], negatives.T])

    def _negatives(self, users: np.ndarray) -> np.ndarray:
        return sample_negatives(self.matrix, users, self.rng, excluded=self.never_negative)

    def recommender_epoch(self) -> dict[str, float]:
        """One pass over the training interactions (or as many drawn pairs) with negatives."""
        cfg = self.config
        self.network.train()
        totals = torch.zeros(3, device=self.device)
        n_batches = 0
        # The epoch's triples, moved to the device once: each batch is a slice (on a GPU, no
        # host-to-device copy per batch).
        triples = torch.as_tensor(self._epoch_triples(), device=self.device)
        self.objective.begin_epoch()
        for start in range(0, triples.shape[1], cfg.batch_size):
            batch = triples[:, start : start + cfg.batch_size]
            users, items = batch[0], batch[1]
            negs = batch[2] if cfg.negative_candidates == 1 else batch[2:].T
            loss, parts = self.objective.batch_loss(users, items, negs)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            totals += parts
            n_batches += 1
            if self.on_batch is not None:
                running = (totals / n_batches).tolist()
                names = ("loss_bpr", "loss_l2", "loss_contrastive")
                losses = dict(zip(names, running, strict=True))
                self.on_batch(
                    "recommender", n_batches, -(-triples.shape[1] // cfg.batch_size), losses
                )
        mean = (totals / max(n_batches, 1)).tolist()
        return {"loss_bpr": mean[0], "loss_l2": mean[1], "loss_contrastive": mean[2]}

    @torch.no_grad()
    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """Output embeddings of users and items at the current weights, as float32 arrays."""
        output = self.objective.encode().float().cpu().numpy()
        n_users = self.matrix.shape[0]
        return output[:n_users], output[n_users:]

    # -- the loop --------------------------------------------------------------------------

    def snapshot(self, epoch: int) -> Snapshot:
        """Copies of the current weights, with the current generated graphs."""
        diffusion = self.diffusion
        return Snapshot(
            epoch=epoch,
            network={k: v.detach().clone() for k, v in self.network.state_dict().items()},
            denoisers=[] if diffusion is None else diffusion.module_states(),
            graphs=None if diffusion is None else diffusion.scoring_graphs,
        )

    def restore(self, snapshot: Snapshot) -> None:
        """Put the weights (and graphs) of ``snapshot`` back in place."""
        self.network.load_state_dict(snapshot.network)
        if self.diffusion is not None:
            self.diffusion.restore(snapshot.denoisers, snapshot.graphs)

    def run(
        self,
        *,
        progress: Callable[[int, dict[str, Any]], None] | None = None,
        on_epoch_end: Callable[[TrainingResult], None] | None = None,
        state: TrainingResult | None = None,
    ) -> TrainingResult:
        """Train until ``config.epochs``, evaluating every ``eval_every`` epochs when asked.

        The result's ``best`` holds the best-scoring snapshot (the last one without
        ``evaluate``), whose weights are restored at the end. ``state`` continues a run (see
        :meth:`load_state_dict`); ``on_epoch_end`` sees the state after each epoch (for
        callbacks and checkpoints; it may set ``stopped_early``) and then ``progress`` the
        epoch's record. A non-finite loss raises
        :class:`NonFiniteLossError` after restoring that snapshot; ``KeyboardInterrupt``
        restores it too and returns with ``interrupted`` set (it propagates when no epoch has
        completed yet).
        """
        cfg = self.config
        result = state if state is not None else TrainingResult()
        try:
            while result.epoch < cfg.epochs and not result.stopped_early:
                self._epoch(result)
                if on_epoch_end is not None:  # may add to the record or stop the run
                    on_epoch_end(result)
                if progress is not None:
                    progress(result.epoch, result.history[-1])
                logger.info(
                    "epoch %d: %s",
                    result.epoch,
                    _format_record(result.history[-1]),
                    extra={"diffmm_record": result.history[-1]},
                )
        except KeyboardInterrupt:
            if result.last_good is None and result.best is None:
                raise
            result.interrupted = True
        if result.best is None:
            result.best = result.last_good
        self.restore(result.best)
        return result

    @contextlib.contextmanager
    def _phase(self, name: str, record: dict[str, Any]) -> Iterator[None]:
        """One phase of an epoch, timed into ``record`` and named for ``torch.profiler``."""
        start = time.perf_counter()
        with record_function(f"diffmm.{name}"):
            yield
            self._end_phase()
        record[f"seconds_{name}"] = time.perf_counter() - start

    def _epoch(self, result: TrainingResult) -> None:
        cfg = self.config
        epoch = result.epoch + 1
        record: dict[str, Any] = {"epoch": epoch}
        if self.diffusion is not None:
            with self._phase("denoiser", record):
                record.update(self.diffusion.train_denoisers())
            self._check_finite(record, epoch, result)
            with self._phase("generation", record):
                self.diffusion.generate_graphs()
        if cfg.learning_rate_schedule != "constant":
            rate = learning_rate_at(cfg, epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = rate
            record["learning_rate"] = rate
        with self._phase("recommender", record):
            record.update(self.recommender_epoch())
        self._check_finite(record, epoch, result)
        record.update(self.objective.epoch_record())
        evaluated = self.evaluate is not None and (
            epoch % cfg.eval_every == 0 or epoch == cfg.epochs
        )
        score = None
        if evaluated:
            start = time.perf_counter()
            score = float(self.evaluate(*self.embeddings()))
            record["seconds_evaluation"] = time.perf_counter() - start
            record["validation_score"] = score
        improved = score is not None and (result.best is None or score > result.best.score)
        # Weight copies: the best epoch's (the fallback for interrupts, non-finite losses and
        # the end of training) and, only while no epoch has been evaluated, the latest one.
        # Afterwards the live weights are the latest epoch's (checkpoints read them there), so
        # no second copy of the denoisers and the network is held.
        snapshot = None
        if improved or result.best is None:
            snapshot = self.snapshot(epoch)
        if improved:
            snapshot.score = score
            result.best = snapshot
            result.stale = 0
        elif evaluated:
            result.stale += 1
        # Commit the epoch only once it is complete, so an interrupt never leaves it half-done.
        result.last_good = snapshot
        result.history.append(record)
        result.epoch = epoch
        if evaluated and cfg.patience is not None and result.stale >= cfg.patience:
            result.stopped_early = True
        # The snapshot just replaced (and the evaluation's blocks) went back to the heap as
        # free blocks; left there, they would sit under the next denoiser phase's peak.
        release_free_memory()

    def _check_finite(self, record: dict[str, Any], epoch: int, result: TrainingResult) -> None:
        bad = [k for k, v in record.items() if k.startswith("loss_") and not math.isfinite(v)]
        if not bad:
            return
        result.history.append(record)
        keep = result.best or result.last_good
        if keep is not None:
            self.restore(keep)
        where = (
            f"the exception's .model keeps the weights of epoch {keep.epoch}"
            if keep
            else "no epoch completed"
        )
        raise NonFiniteLossError(
            f"The {bad[0][5:]} loss became {record[bad[0]]} in epoch {epoch}; training stopped "
            f"and {where}. Lower the learning rate or the loss weights, and check the features "
            "for extreme values.",
            snapshot=keep,
            history=result.history,
        )

    # -- state for checkpoints (written to files by ``_checkpoint``) ---------------------------

    def state_dict(self, result: TrainingResult) -> dict[str, Any]:
        """Everything needed to continue exactly where ``result`` stands (no tensors shared)."""
        diffusion = self.diffusion
        return {
            "result": {
                "history": result.history,
                "best": result.best,
                "last_good": self._latest(result),
                "stale": result.stale,
                "epoch": result.epoch,
                "stopped_early": result.stopped_early,
            },
            "optimizer": self.optimizer.state_dict(),
            "denoiser_optimizers": (
                [] if diffusion is None else [opt.state_dict() for opt in diffusion.optimizers]
            ),
            "rng": self.rng.bit_generator.state,
            "generator": None if diffusion is None else diffusion.generator.get_state(),
        }

    def _latest(self, result: TrainingResult) -> Snapshot | None:
        """The latest completed epoch's weights: kept, or (right after an epoch) the live ones."""
        if result.last_good is not None or result.epoch == 0:
            return result.last_good
        return self.snapshot(result.epoch)

    def load_state_dict(self, state: dict[str, Any]) -> TrainingResult:
        """Restore weights, optimiser moments and random streams; return the loop state."""
        saved = state["result"]
        result = TrainingResult(
            history=list(saved["history"]),
            best=saved["best"],
            last_good=saved["last_good"],
            stale=int(saved["stale"]),
            epoch=int(saved["epoch"]),
            stopped_early=bool(saved["stopped_early"]),
        )
        if result.last_good is not None:
            self.restore(result.last_good)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.diffusion is not None:
            optimizers = zip(self.diffusion.optimizers, state["denoiser_optimizers"], strict=True)
            for opt, opt_state in optimizers:
                opt.load_state_dict(opt_state)
            self.diffusion.generator.set_state(state["generator"])
        self.rng.bit_generator.state = state["rng"]
        return result


def _format_record(record: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k.startswith(("loss", "valid")))
