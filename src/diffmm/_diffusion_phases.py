"""DiffMM's two diffusion phases of an epoch: the denoiser step and graph generation.

The epoch loop (``_training``) calls :meth:`DiffusionPhases.train_denoisers` and then
:meth:`DiffusionPhases.generate_graphs` once per epoch, before its recommender step; the
graphs generated last are kept here (:attr:`DiffusionPhases.graphs`) for the recommender's
network to read. Models without diffusion (LightGCN, or DiffMM with ``generate_graphs=False``)
give the loop no such object.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from . import losses
from ._compute import adam, batches
from ._graph import drop_edges, top_k_graph
from ._inference import denoise_rows
from ._model import Denoiser, DiffMMNetwork
from ._prefetch import Prefetch
from ._sparse import add_csr_, csr_rows, spmm
from .diffusion import DiffusionSchedule, loss_weight, q_sample

__all__ = ["DiffusionConfig", "DiffusionPhases"]

_MATMUL_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class DiffusionConfig:
    """Settings of the denoiser step and of graph generation (model page symbols in comments)."""

    batch_size: int = 1024  # users per batch
    learning_rate: float = 1e-3
    alignment_weight: float = 0.1  # λ_msi
    graph_top_k: int = 1  # k_rebuild
    edge_keep_rate: float = 0.5
    sampling_steps: int = 0
    sampling_noise: bool = False
    precision: str = "fp32"  # "bf16": the denoisers' dense matrix products in bfloat16
    # Options (model page): leave each user's own items out of the top-k; score (evaluation
    # and the fitted factors) with the graphs before edge dropout.
    exclude_seen: bool = False
    score_undropped: bool = False

    @property
    def matmul_dtype(self) -> torch.dtype:
        return _MATMUL_DTYPES[self.precision]


class DiffusionPhases:
    """The denoisers of every modality, their optimisers, and the graphs they generate.

    Parameters
    ----------
    network : DiffMMNetwork
        Read (detached) for the alignment loss's targets; never trained here.
    denoisers : list of Denoiser
        One per modality, in the network's modality order.
    schedule : DiffusionSchedule
    matrix : csr_matrix of shape (n_users, n_items)
        The binary training matrix ``R``.
    config : DiffusionConfig
    device : torch.device
    rng : numpy.random.Generator
        Shuffles the users (the epoch loop's stream, drawn from in the loop's order).
    generator : torch.Generator
        Diffusion steps, noise, input dropout and edge dropout (on ``device``).
    """

    def __init__(
        self,
        network: DiffMMNetwork,
        denoisers: list[Denoiser],
        schedule: DiffusionSchedule,
        matrix: sp.csr_matrix,
        config: DiffusionConfig,
        *,
        device: torch.device,
        rng: np.random.Generator,
        generator: torch.Generator,
    ) -> None:
        self.network = network
        self.denoisers = denoisers
        self.schedule = schedule
        self.matrix = matrix.tocsr()
        self.config = config
        self.device = device
        self.rng = rng
        self.generator = generator
        self.optimizers = [adam(d.parameters(), config.learning_rate) for d in denoisers]
        self.n_users, self.n_items = self.matrix.shape
        self.graphs: list[torch.Tensor] | None = None  # the latest generated graphs
        # ``on_batch(phase, done, total, running_losses)``, set by the loop for progress.
        self.on_batch: Callable[[str, int, int, dict[str, float]], None] | None = None
        # What the encoder scores with: ``graphs``, or the same graphs before edge dropout.
        self.scoring_graphs: list[torch.Tensor] | None = None

    def _sparse_rows(self, users: np.ndarray) -> torch.Tensor:
        return csr_rows(self.matrix[users], self.device)

    def _randn(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.device)

    # -- the denoiser step (model page: "Training the denoisers") ------------------------------

    def train_denoisers(self) -> dict[str, float]:
        """One pass over all users, training every modality's denoiser."""
        cfg = self.config
        for d in self.denoisers:
            d.train()
        with torch.no_grad():
            item_emb = self.network.item_embedding.detach()
            modality_emb = [e.detach() for e in self.network.modality_item_embeddings()]
        totals = torch.zeros(2, device=self.device)
        n_batches = 0
        user_batches = list(batches(self.rng.permutation(self.n_users), cfg.batch_size))
        if self.device.type == "cpu":
            # Drawn one ahead in a worker thread, into two sets of buffers made here: the
            # worker fills one set while this thread uses the other (see _draws). Tensors the
            # worker allocated itself would come from its own malloc arena, whose freed blocks
            # this thread's allocations cannot reuse.
            shape = (min(cfg.batch_size, self.n_users), self.n_items)
            buffers = [(torch.empty(shape), torch.empty(shape)) for _ in range(2)]
            draws = Prefetch(self._draws(user_batches, buffers))
        else:  # CUDA draws are queued kernels already
            draws = self._draws(user_batches)
        with contextlib.closing(draws):
            for batch in user_batches:
                x0 = self._sparse_rows(batch)  # one slice of R, never made dense
                target = spmm(x0, item_emb)  # x0·E_i of the alignment loss, for every modality
                parts = totals.new_zeros(2)
                modalities = zip(self.denoisers, self.optimizers, strict=True)
                for m, (denoiser, opt) in enumerate(modalities):
                    t, noise, dropout_draw = next(draws)
                    x_t = q_sample(self.schedule, x0, t, noise, out=noise)
                    x0_pred = denoiser(
                        x_t, t, dropout_draw=dropout_draw, matmul_dtype=cfg.matmul_dtype
                    )
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
                if self.on_batch is not None:
                    running = (totals / n_batches).tolist()
                    losses_so_far = {"loss_diffusion": running[0], "loss_alignment": running[1]}
                    self.on_batch("denoiser", n_batches, len(user_batches), losses_so_far)
        mean = (totals / max(n_batches, 1)).tolist()
        return {"loss_diffusion": mean[0], "loss_alignment": mean[1]}

    def _draws(
        self,
        user_batches: list[np.ndarray],
        buffers: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """Per batch and modality: diffusion steps, noise and input-dropout draws (or None).

        In the order the denoiser step consumes them, so the numbers are the same whichever
        thread draws them. With ``buffers`` (sets of full-batch noise and dropout tensors),
        item ``k`` is drawn into set ``k mod len(buffers)``: the caller must be done with an
        item before asking for the one ``len(buffers) - 1`` after it (so with two sets and
        :class:`Prefetch`, which makes the next item only once the previous one has been
        asked for, it is).
        """

        def space(item: int, part: int, n: int) -> torch.Tensor:
            """``n`` rows to draw item ``item``'s noise (part 0) or dropout draw (part 1) into."""
            if buffers is None:
                return torch.empty((n, self.n_items), device=self.device)
            return buffers[item % len(buffers)][part][:n]

        k = 0
        for batch in user_batches:
            for denoiser in self.denoisers:
                t = torch.randint(
                    0,
                    self.schedule.steps,
                    (len(batch),),
                    generator=self.generator,
                    device=self.device,
                )
                # torch.randn and torch.rand are these fills of fresh tensors.
                noise = space(k, 0, len(batch)).normal_(generator=self.generator)
                draw = None
                if denoiser.training and denoiser.dropout > 0:
                    draw = space(k, 1, len(batch)).uniform_(generator=self.generator)
                k += 1
                yield t, noise, draw

    # -- graph generation (model page: "Generating the graphs") --------------------------------

    @torch.no_grad()
    def generate_graphs(self) -> list[torch.Tensor]:
        """A new user–item graph per modality from each user's denoised row; kept in ``graphs``."""
        cfg = self.config
        graphs, undropped = [], []
        users_all = np.arange(self.n_users)
        users = torch.as_tensor(users_all, device=self.device)
        # Top-k written into buffers made up front: no small tensor outlives a batch amid its
        # large ones (which would split the heap's free blocks and make it grow).
        scores = torch.empty((cfg.batch_size, cfg.graph_top_k), device=self.device)
        # Each batch's slice of R, made once for every modality and never made dense.
        row_batches = [(b, self._sparse_rows(b)) for b in batches(users_all, cfg.batch_size)]
        steps, done = len(self.denoisers) * len(row_batches), 0
        for denoiser in self.denoisers:
            tops = torch.empty(
                (self.n_users, cfg.graph_top_k), dtype=torch.int64, device=self.device
            )
            # Fixed weights through the phase: cast to the matmul dtype once, not per call.
            with denoiser.cast_once(cfg.matmul_dtype):
                for batch, rows in row_batches:
                    x = denoise_rows(
                        denoiser,
                        self.schedule,
                        rows,
                        sampling_steps=cfg.sampling_steps,
                        sampling_noise=cfg.sampling_noise,
                        randn=self._randn,
                        matmul_dtype=cfg.matmul_dtype,
                    )
                    if cfg.exclude_seen:  # propose items the user does not have yet
                        x = add_csr_(x, rows, alpha=-math.inf)
                    top = (scores[: len(batch)], tops[batch[0] : batch[-1] + 1])  # batch: a range
                    torch.topk(x, cfg.graph_top_k, dim=-1, out=top)
                    done += 1
                    if self.on_batch is not None:
                        self.on_batch("generation", done, steps, {})
            graph = top_k_graph(users, tops, self.n_users, self.n_items)
            graphs.append(drop_edges(graph, cfg.edge_keep_rate, self.generator))
            undropped.append(graph)
        self.graphs = graphs
        self.scoring_graphs = undropped if cfg.score_undropped else graphs
        return graphs

    # -- state -----------------------------------------------------------------------------------

    def module_states(self) -> list[dict[str, torch.Tensor]]:
        """Copies of every denoiser's weights."""
        return [{k: v.detach().clone() for k, v in d.state_dict().items()} for d in self.denoisers]

    def restore(self, states: list[dict[str, torch.Tensor]], graphs: list | None) -> None:
        """Put back the denoisers' weights and the scoring graphs of a snapshot.

        The training graphs are generated anew before the next recommender step.
        """
        for d, state in zip(self.denoisers, states, strict=True):
            d.load_state_dict(state)
        self.graphs = self.scoring_graphs = graphs
