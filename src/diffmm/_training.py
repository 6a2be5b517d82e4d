"""The DiffMM epoch loop: denoiser step, graph generation, recommender step (SPEC §3, §4, §6).

Also batching, negative sampling, optimisers, evaluation with early stopping, the training
history and progress reporting. Nothing here knows about raw ids or scikit-learn.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch.profiler import record_function

from . import losses
from ._graph import csr_rows, drop_edges, sparse_csr, top_k_graph
from ._inference import denoise_rows
from ._model import Denoiser, DiffMMNetwork
from ._prefetch import Prefetch
from ._sparse import spmm, transpose_csr
from .diffusion import DiffusionSchedule, loss_weight, q_sample

__all__ = ["NonFiniteLossError", "Trainer", "TrainingConfig", "sample_negatives"]

logger = logging.getLogger("diffmm")


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite during training.

    ``snapshot`` holds the weights and graphs that were restored (``None`` when no epoch had
    completed) and ``history`` the per-epoch records up to the failure.
    """

    def __init__(self, message: str, snapshot: Snapshot | None = None, history=None) -> None:
        super().__init__(message)
        self.snapshot = snapshot
        self.history = history or []


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings, with the SPEC symbols in comments."""

    epochs: int = 50
    batch_size: int = 1024
    learning_rate: float = 1e-3
    denoiser_learning_rate: float = 1e-3
    l2_weight: float = 1e-5  # λ_reg
    l2_scope: str = "tables"  # "tables": SPEC §6; "batch": LightGCN's (batch ego rows / 2B)
    contrastive: str | None = "modal_modal"
    contrastive_weight: float = 1e-2  # λ_cl
    temperature: float = 0.5  # τ
    alignment_weight: float = 0.1  # λ_msi
    generate_graphs: bool = True
    graph_top_k: int = 1  # k_rebuild
    edge_keep_rate: float = 0.5
    sampling_steps: int = 0
    sampling_noise: bool = False
    eval_every: int = 1
    patience: int | None = None
    precision: str = "fp32"  # "bf16": the denoisers' dense work under bfloat16 autocast


def sample_negatives(
    matrix: sp.csr_matrix, users: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One item per entry of ``users``, uniform among the items that user has not interacted with.

    Exact and vectorised: draws for all rows at once and redraws only the rows that hit a
    positive, until none does (SPEC §6).
    """
    n_items = matrix.shape[1]
    matrix = matrix.tocsr()
    matrix.sort_indices()
    degree = np.diff(matrix.indptr)
    if np.any(degree[users] >= n_items):
        raise ValueError("A user has interacted with every item; no negative can be sampled.")
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), degree)
    positive_keys = rows * n_items + matrix.indices  # sorted: CSR is row-major, columns sorted
    users = np.asarray(users, dtype=np.int64)
    negatives = rng.integers(0, n_items, size=len(users))
    pending = np.arange(len(users))
    while pending.size:
        keys = users[pending] * n_items + negatives[pending]
        pos = np.minimum(np.searchsorted(positive_keys, keys), max(len(positive_keys) - 1, 0))
        hit = positive_keys[pos] == keys if len(positive_keys) else np.zeros(len(keys), bool)
        pending = pending[hit]
        negatives[pending] = rng.integers(0, n_items, size=pending.size)
    return negatives


def _adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch has one for the device (the same update).

    The unfused multi-tensor Adam makes ~10 passes over every parameter per step; for the
    denoisers' 13M weights each that was ~60% of the denoiser phase's non-matmul time on a CPU.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or no fused kernel there
        return torch.optim.Adam(params, lr=lr)


def _batches(order: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


@dataclass
class Snapshot:
    """Weights and generated graphs at the end of one epoch."""

    epoch: int
    network: dict[str, torch.Tensor]
    denoisers: list[dict[str, torch.Tensor]]
    graphs: list[torch.Tensor] | None
    score: float | None = None


def _clone_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@dataclass
class TrainingResult:
    """The loop's state: also what a checkpoint must hold to resume exactly."""

    history: list[dict[str, float]] = field(default_factory=list)
    best: Snapshot | None = None
    last_good: Snapshot | None = None
    stale: int = 0
    epoch: int = 0
    stopped_early: bool = False
    interrupted: bool = False


class Trainer:
    """Runs DiffMM's epochs on one device.

    Parameters
    ----------
    network : DiffMMNetwork
    denoisers : list of Denoiser
        One per modality, in the network's modality order.
    schedule : DiffusionSchedule
    matrix : csr_matrix of shape (n_users, n_items)
        The binary training matrix ``R``.
    adjacency : sparse Tensor
        ``A`` built from ``matrix``, on ``device``.
    config : TrainingConfig
    device : torch.device
    rng : numpy.random.Generator
        Drives shuffling and negative sampling.
    generator : torch.Generator
        Drives diffusion noise, dropout and edge dropout (on ``device``).
    """

    def __init__(
        self,
        network: DiffMMNetwork,
        denoisers: list[Denoiser],
        schedule: DiffusionSchedule,
        matrix: sp.csr_matrix,
        adjacency: torch.Tensor,
        config: TrainingConfig,
        *,
        device: torch.device,
        rng: np.random.Generator,
        generator: torch.Generator,
    ) -> None:
        self.network = network
        self.denoisers = denoisers
        self.schedule = schedule
        self.matrix = matrix.tocsr()
        self.adjacency = adjacency
        self.config = config
        self.device = device
        self.rng = rng
        self.generator = generator
        self.optimizer = _adam(network.parameters(), config.learning_rate)
        self.denoiser_optimizers = [
            _adam(d.parameters(), config.denoiser_learning_rate) for d in denoisers
        ]
        coo = self.matrix.tocoo()
        self.train_users = coo.row.astype(np.int64)
        self.train_items = coo.col.astype(np.int64)
        self.n_users, self.n_items = self.matrix.shape
        self._graphs: list[torch.Tensor] | None = None  # the latest epoch's generated graphs

    # -- helpers ---------------------------------------------------------------------------

    def _sparse_rows(self, users: np.ndarray) -> torch.Tensor:
        return csr_rows(self.matrix[users], self.device)

    def _randint(self, high: int, size: int) -> torch.Tensor:
        return torch.randint(0, high, (size,), generator=self.generator, device=self.device)

    def _randn(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.device)

    def _dense_precision(self):
        """Autocast context for the denoisers' matmuls (a no-op at the default fp32)."""
        return torch.autocast(
            self.device.type,
            dtype=torch.bfloat16,
            enabled=self.config.precision == "bf16",
        )

    def _end_phase(self) -> None:
        """End a phase: its queued GPU work is waited for and its freed host memory returned.

        Phase timings must not leak queued GPU work into the next phase. glibc keeps freed
        blocks of the phase's dense temporaries (tens of MB each, of sizes the next phase does
        not reuse) in its heap; handing them back keeps the peak at one phase's working set.
        """
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        _release_free_memory()

    # -- SPEC §3 ---------------------------------------------------------------------------

    def denoiser_epoch(self) -> dict[str, float]:
        """One pass over all users, training every modality's denoiser."""
        cfg = self.config
        for d in self.denoisers:
            d.train()
        with torch.no_grad():
            item_emb = self.network.item_embedding.detach()
            modality_emb = [e.detach() for e in self.network.modality_item_embeddings()]
        totals = torch.zeros(2, device=self.device)
        n_batches = 0
        batches = list(_batches(self.rng.permutation(self.n_users), cfg.batch_size))
        if self.device.type == "cpu":
            # Drawn one ahead in a worker thread, into two sets of buffers made here: the
            # worker fills one set while this thread uses the other (see _denoiser_draws).
            # Tensors the worker allocated itself would come from its own malloc arena,
            # whose freed blocks this thread's allocations cannot reuse.
            shape = (min(cfg.batch_size, self.n_users), self.n_items)
            buffers = [(torch.empty(shape), torch.empty(shape)) for _ in range(2)]
            draws = Prefetch(self._denoiser_draws(batches, buffers))
        else:  # CUDA draws are queued kernels already
            draws = self._denoiser_draws(batches)
        with contextlib.closing(draws):
            for batch in batches:
                x0 = self._sparse_rows(batch)  # one slice of R, never made dense
                target = spmm(x0, item_emb)  # x0·E_i of the alignment loss, for every modality
                parts = totals.new_zeros(2)
                modalities = zip(self.denoisers, self.denoiser_optimizers, strict=True)
                for m, (denoiser, opt) in enumerate(modalities):
                    t, noise, dropout_draw = next(draws)
                    x_t = q_sample(self.schedule, x0, t, noise, out=noise)
                    with self._dense_precision():
                        x0_pred = denoiser(x_t, t, dropout_draw=dropout_draw)
                    weights = loss_weight(self.schedule, t, dtype=torch.float32)
                    # Losses in fp32 whatever the matmul precision.
                    diff, align = losses.denoiser_losses(
                        x0_pred, x0, weights, modality_emb[m], target
                    )
                    # The backward pass needs none of these: free them first.
                    del noise, x_t, x0_pred, dropout_draw
                    # The modalities' denoisers share no parameter: backward and step per
                    # modality give the same update as for the summed loss while only one
                    # modality's activations and gradients are alive.
                    (diff + cfg.alignment_weight * align).backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    parts = parts + torch.stack([diff.detach(), align.detach()])
                totals += parts
                n_batches += 1
        mean = (totals / max(n_batches, 1)).tolist()
        return {"loss_diffusion": mean[0], "loss_alignment": mean[1]}

    def _denoiser_draws(
        self,
        batches: list[np.ndarray],
        buffers: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """Per batch and modality: diffusion steps, noise and input-dropout draws (or None).

        In the order the denoiser phase consumes them, which is the order they were drawn in
        line before they were drawn ahead: the same numbers whichever thread draws them.
        With ``buffers`` (sets of full-batch noise and dropout tensors), item ``k`` is drawn
        into set ``k mod len(buffers)``: the caller must be done with an item before asking
        for the one ``len(buffers) - 1`` after it (so with two sets and :class:`Prefetch`,
        which makes the next item only once the previous one has been asked for, it is).
        """

        def space(item: int, part: int, n: int) -> torch.Tensor:
            """``n`` rows to draw item ``item``'s noise (part 0) or dropout draw (part 1) into."""
            if buffers is None:
                return torch.empty((n, self.n_items), device=self.device)
            return buffers[item % len(buffers)][part][:n]

        k = 0
        for batch in batches:
            for denoiser in self.denoisers:
                t = self._randint(self.schedule.steps, len(batch))
                # torch.randn and torch.rand are these fills of fresh tensors.
                noise = space(k, 0, len(batch)).normal_(generator=self.generator)
                draw = None
                if denoiser.training and denoiser.dropout > 0:
                    draw = space(k, 1, len(batch)).uniform_(generator=self.generator)
                k += 1
                yield t, noise, draw

    # -- SPEC §4 ---------------------------------------------------------------------------

    @torch.no_grad()
    def generate_graphs(self) -> list[torch.Tensor]:
        """A new user–item graph per modality from each user's denoised row."""
        cfg = self.config
        graphs = []
        users_all = np.arange(self.n_users)
        users = torch.as_tensor(users_all, device=self.device)
        # Top-k written into buffers made up front: no small tensor outlives a batch amid its
        # large ones (which would split the heap's free blocks and make it grow).
        scores = torch.empty((cfg.batch_size, cfg.graph_top_k), device=self.device)
        # Each batch's slice of R, made once for every modality and never made dense.
        batches = [(b, self._sparse_rows(b)) for b in _batches(users_all, cfg.batch_size)]
        for denoiser in self.denoisers:
            tops = torch.empty(
                (self.n_users, cfg.graph_top_k), dtype=torch.int64, device=self.device
            )
            for batch, rows in batches:
                with self._dense_precision():
                    x = denoise_rows(
                        denoiser,
                        self.schedule,
                        rows,
                        sampling_steps=cfg.sampling_steps,
                        sampling_noise=cfg.sampling_noise,
                        randn=self._randn,
                    )
                top = (scores[: len(batch)], tops[batch[0] : batch[-1] + 1])  # batch: a range
                torch.topk(x, cfg.graph_top_k, dim=-1, out=top)
            graph = top_k_graph(users, tops, self.n_users, self.n_items)
            graphs.append(drop_edges(graph, cfg.edge_keep_rate, self.generator))
        return graphs

    # -- SPEC §6 ---------------------------------------------------------------------------

    def _contrastive(
        self,
        output: tuple[torch.Tensor, torch.Tensor],
        views: list[tuple[torch.Tensor, torch.Tensor]],
        users: torch.Tensor,
        items: torch.Tensor,
    ) -> torch.Tensor:
        """InfoNCE over the batch's users and items; each view given as (user rows, item rows)."""
        cfg = self.config
        if cfg.contrastive == "main_modal":
            pairs = [(output, z) for z in views]
        else:  # modal_modal
            pairs = [
                (views[a], views[b]) for a in range(len(views)) for b in range(a + 1, len(views))
            ]
        total = output[0].new_zeros(())
        for (x_users, x_items), (y_users, y_items) in pairs:
            total = total + losses.info_nce(x_users, y_users, users, cfg.temperature)
            total = total + losses.info_nce(x_items, y_items, items, cfg.temperature)
        return total

    def recommender_epoch(self, graphs: list[torch.Tensor] | None) -> dict[str, float]:
        """One pass over all training interactions with BPR, L2 and InfoNCE."""
        cfg = self.config
        self.network.train()
        use_cl = cfg.contrastive is not None and cfg.contrastive_weight > 0
        negatives = sample_negatives(self.matrix, self.train_users, self.rng)
        totals = torch.zeros(3, device=self.device)
        n_batches = 0
        order = self.rng.permutation(len(self.train_users))
        # G_m is not symmetric after edge dropout: transpose it once for all backward passes.
        extra = {} if graphs is None else {"graphs_t": [transpose_csr(g) for g in graphs]}
        # The epoch's (user, item, negative) triples in batch order, moved to the device once:
        # each batch is a slice (on a GPU, no host-to-device copy per batch).
        triples = np.stack([self.train_users[order], self.train_items[order], negatives[order]])
        triples = torch.as_tensor(triples, device=self.device)
        for start in range(0, len(order), cfg.batch_size):
            users, items, negs = triples[:, start : start + cfg.batch_size]
            output, views = self.network(self.adjacency, graphs, with_views=use_cl, **extra)
            user_out, item_out = output[: self.n_users], output[self.n_users :]
            bpr = losses.bpr_loss(user_out[users], item_out[items], item_out[negs])
            if cfg.l2_scope == "batch":
                item_table = self.network.item_embedding
                rows = (self.network.user_embedding[users], item_table[items], item_table[negs])
                l2 = cfg.l2_weight * losses.l2_penalty(*rows) / (2 * len(users))
            else:
                l2 = cfg.l2_weight * losses.l2_penalty(
                    self.network.user_embedding, self.network.item_embedding
                )
            if use_cl:
                # Split, not sliced: a split's backward is one concatenation of the halves'
                # gradients, where each slice's zero-fills and adds a full-size tensor. (BPR
                # keeps its slices: sharing the split would change the order in which autograd
                # sums the output's gradients, and so the last bits of the model.)
                sizes = [self.n_users, self.n_items]
                out_halves, *view_halves = (t.split(sizes) for t in (output, *views))
                cl = self._contrastive(out_halves, view_halves, users, items)
            else:
                cl = bpr.new_zeros(())
            loss = bpr + l2 + cfg.contrastive_weight * cl
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            totals += torch.stack([bpr.detach(), l2.detach(), cl.detach()])
            n_batches += 1
        mean = (totals / max(n_batches, 1)).tolist()
        return {"loss_bpr": mean[0], "loss_l2": mean[1], "loss_contrastive": mean[2]}

    @torch.no_grad()
    def embeddings(self, graphs: list[torch.Tensor] | None) -> tuple[np.ndarray, np.ndarray]:
        """Final user and item representations (SPEC §7), as float32 NumPy arrays."""
        self.network.eval()
        output, _ = self.network(self.adjacency, graphs)
        output = output.float().cpu().numpy()
        return output[: self.n_users], output[self.n_users :]

    # -- the loop --------------------------------------------------------------------------

    def snapshot(self, epoch: int, graphs: list[torch.Tensor] | None) -> Snapshot:
        return Snapshot(
            epoch=epoch,
            network=_clone_state(self.network),
            denoisers=[_clone_state(d) for d in self.denoisers],
            graphs=graphs,
        )

    def restore(self, snapshot: Snapshot) -> None:
        self.network.load_state_dict(snapshot.network)
        for d, state in zip(self.denoisers, snapshot.denoisers, strict=True):
            d.load_state_dict(state)

    def run(
        self,
        evaluate: Callable[[np.ndarray, np.ndarray], float] | None = None,
        *,
        progress: Callable[[int, dict[str, float]], None] | None = None,
        on_epoch_end: Callable[[TrainingResult], None] | None = None,
        state: TrainingResult | None = None,
    ) -> TrainingResult:
        """Train until ``config.epochs``, evaluating every ``eval_every`` epochs when asked.

        ``evaluate(user_factors, item_factors)`` returns a higher-is-better score. The result's
        ``best`` holds the best-scoring snapshot (the last one without ``evaluate``), whose
        weights are restored at the end. ``state`` continues a run (see
        :meth:`load_training_state`); ``on_epoch_end`` sees the state after each epoch (for
        checkpoints). A non-finite loss raises :class:`NonFiniteLossError` after restoring
        that snapshot; ``KeyboardInterrupt`` restores it too and returns with ``interrupted``
        set (it propagates when no epoch has completed yet).
        """
        cfg = self.config
        result = state if state is not None else TrainingResult()
        try:
            while result.epoch < cfg.epochs and not result.stopped_early:
                self._epoch(result, evaluate)
                if progress is not None:
                    progress(result.epoch, result.history[-1])
                logger.info(
                    "epoch %d: %s",
                    result.epoch,
                    _format_record(result.history[-1]),
                    extra={"diffmm_record": result.history[-1]},
                )
                if on_epoch_end is not None:
                    on_epoch_end(result)
        except KeyboardInterrupt:
            if result.last_good is None and result.best is None:
                raise
            result.interrupted = True
        if result.best is None:
            result.best = result.last_good
        self.restore(result.best)
        return result

    def _epoch(
        self, result: TrainingResult, evaluate: Callable[[np.ndarray, np.ndarray], float] | None
    ) -> None:
        cfg = self.config
        epoch = result.epoch + 1
        record: dict[str, float] = {"epoch": epoch}
        graphs = None
        if cfg.generate_graphs:
            start = time.perf_counter()
            with record_function("diffmm.denoiser"):  # phase names for torch.profiler
                record.update(self.denoiser_epoch())
                self._end_phase()
            record["seconds_denoiser"] = time.perf_counter() - start
            self._check_finite(record, epoch, result)
            start = time.perf_counter()
            with record_function("diffmm.generation"):
                graphs = self.generate_graphs()
                self._end_phase()
            record["seconds_generation"] = time.perf_counter() - start
        start = time.perf_counter()
        with record_function("diffmm.recommender"):
            record.update(self.recommender_epoch(graphs))
            self._end_phase()
        record["seconds_recommender"] = time.perf_counter() - start
        self._check_finite(record, epoch, result)
        fusion = getattr(self.network, "fusion_weights", None)
        if fusion is not None:  # networks without modalities (LightGCN) have none
            record["fusion_weights"] = torch.softmax(fusion.detach(), 0).tolist()
        evaluated = evaluate is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs)
        score = None
        if evaluated:
            start = time.perf_counter()
            score = float(evaluate(*self.embeddings(graphs)))
            record["seconds_evaluation"] = time.perf_counter() - start
            record["validation_score"] = score
        improved = score is not None and (result.best is None or score > result.best.score)
        # Weight copies: the best epoch's (the fallback for interrupts, non-finite losses and
        # the end of training) and, only while no epoch has been evaluated, the latest one.
        # Afterwards the live weights are the latest epoch's (checkpoints read them there), so
        # no second copy of the denoisers and the network is held.
        snapshot = None
        if improved or result.best is None:
            snapshot = self.snapshot(epoch, graphs)
        if improved:
            snapshot.score = score
            result.best = snapshot
            result.stale = 0
        elif evaluated:
            result.stale += 1
        # Commit the epoch only once it is complete, so an interrupt never leaves it half-done.
        result.last_good = snapshot
        self._graphs = graphs
        result.history.append(record)
        result.epoch = epoch
        if evaluated and cfg.patience is not None and result.stale >= cfg.patience:
            result.stopped_early = True
        # The snapshot just replaced (and the evaluation's blocks) went back to the heap as
        # free blocks; left there, they would sit under the next denoiser phase's peak.
        _release_free_memory()

    # -- checkpoints -------------------------------------------------------------------------

    def training_state(self, result: TrainingResult) -> dict:
        """Everything needed to continue exactly where ``result`` stands (no tensors shared)."""
        return {
            "result": {
                "history": result.history,
                "best": _snapshot_to_dict(result.best),
                "last_good": _snapshot_to_dict(self._latest(result)),
                "stale": result.stale,
                "epoch": result.epoch,
                "stopped_early": result.stopped_early,
            },
            "optimizer": self.optimizer.state_dict(),
            "denoiser_optimizers": [opt.state_dict() for opt in self.denoiser_optimizers],
            "rng": self.rng.bit_generator.state,
            "generator": self.generator.get_state(),
        }

    def _latest(self, result: TrainingResult) -> Snapshot | None:
        """The latest completed epoch's weights: kept, or (right after an epoch) the live ones."""
        if result.last_good is not None or result.epoch == 0:
            return result.last_good
        return self.snapshot(result.epoch, self._graphs)

    def load_training_state(self, state: dict) -> TrainingResult:
        """Restore weights, optimiser moments and random streams; return the loop state."""
        saved = state["result"]
        result = TrainingResult(
            history=list(saved["history"]),
            best=_snapshot_from_dict(saved["best"], self.device),
            last_good=_snapshot_from_dict(saved["last_good"], self.device),
            stale=int(saved["stale"]),
            epoch=int(saved["epoch"]),
            stopped_early=bool(saved["stopped_early"]),
        )
        if result.last_good is not None:
            self.restore(result.last_good)
            self._graphs = result.last_good.graphs
        self.optimizer.load_state_dict(state["optimizer"])
        for opt, opt_state in zip(
            self.denoiser_optimizers, state["denoiser_optimizers"], strict=True
        ):
            opt.load_state_dict(opt_state)
        self.rng.bit_generator.state = state["rng"]
        self.generator.set_state(state["generator"])
        return result

    def _check_finite(self, record: dict[str, float], epoch: int, result: TrainingResult) -> None:
        bad = [k for k, v in record.items() if k.startswith("loss_") and not math.isfinite(v)]
        if not bad:
            return
        result.history.append(record)
        keep = result.best or result.last_good
        if keep is not None:
            self.restore(keep)
        where = f"the weights of epoch {keep.epoch} were kept" if keep else "no epoch completed"
        raise NonFiniteLossError(
            f"The {bad[0][5:]} loss became {record[bad[0]]} in epoch {epoch}; training stopped "
            f"and {where}. Lower the learning rate or the loss weights, and check the features "
            "for extreme values.",
            snapshot=keep,
            history=result.history,
        )


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # glibc; absent on macOS, Windows and musl
    except (AttributeError, OSError, TypeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def _release_free_memory() -> None:
    """Return the C heap's free pages to the operating system, where the C library can."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _format_record(record: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k.startswith(("loss", "valid")))


def _graph_parts(graph: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "crow": graph.crow_indices(),
        "col": graph.col_indices(),
        "values": graph.values(),
        "size": torch.tensor(graph.shape[0]),
    }


def _snapshot_to_dict(snapshot: Snapshot | None) -> dict | None:
    if snapshot is None:
        return None
    return {
        "epoch": snapshot.epoch,
        "score": snapshot.score,
        "network": snapshot.network,
        "denoisers": snapshot.denoisers,
        "graphs": None if snapshot.graphs is None else [_graph_parts(g) for g in snapshot.graphs],
    }


def _snapshot_from_dict(data: dict | None, device: torch.device) -> Snapshot | None:
    if data is None:
        return None
    graphs = None
    if data["graphs"] is not None:
        graphs = [
            sparse_csr(
                g["crow"].to(device), g["col"].to(device), g["values"].to(device), int(g["size"])
            )
            for g in data["graphs"]
        ]
    return Snapshot(
        epoch=int(data["epoch"]),
        network={k: v.to(device) for k, v in data["network"].items()},
        denoisers=[{k: v.to(device) for k, v in d.items()} for d in data["denoisers"]],
        graphs=graphs,
        score=data["score"],
    )
