"""What each trained model gives the epoch loop: its network's encoder and batch losses.

The loop (``_training``) draws the batches of (user, positive, negative) triples and runs
the optimiser; an objective turns one batch into the three loss terms it reports (BPR, L2,
contrastive) and encodes every node for evaluation and for the fitted factors.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from . import losses
from ._diffusion_phases import DiffusionPhases
from ._model import DiffMMNetwork, LightGCNNetwork
from ._normalize import normalize_rows
from ._sparse import transpose_csr

__all__ = ["DiffMMObjective", "LightGCNObjective", "Objective", "hardest_negatives"]


class Objective(Protocol):
    """The loop's view of a model (see the contributor page on the architecture)."""

    network: nn.Module

    def begin_epoch(self) -> None:
        """Prepare what every batch of the coming recommender step shares."""

    def batch_loss(
        self, users: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch's loss to minimise, and its BPR, weighted L2 and contrastive parts."""

    def encode(self) -> torch.Tensor:
        """Every node's output embedding, users first, in evaluation mode."""

    def epoch_record(self) -> dict[str, object]:
        """Extra entries for the epoch's history record."""


class DiffMMObjective:
    """BPR, L2 on the ID tables and cross-modal InfoNCE over DiffMM's encoder.

    Parameters
    ----------
    network : DiffMMNetwork
    adjacency : sparse Tensor of shape (U+I, U+I)
        The normalised interaction graph ``A``.
    diffusion : DiffusionPhases or None
        Where the epoch's generated graphs come from; ``None``: no generated graphs (the
        views are built on ``A``).
    l2_weight, contrastive, contrastive_weight, temperature
        ``λ_reg``, the contrastive scheme (``"modal_modal"``, ``"main_modal"`` or ``None``),
        ``λ_cl`` and ``τ``.
    """

    def __init__(
        self,
        network: DiffMMNetwork,
        adjacency: torch.Tensor,
        diffusion: DiffusionPhases | None,
        *,
        l2_weight: float,
        contrastive: str | None,
        contrastive_weight: float,
        temperature: float,
    ) -> None:
        self.network = network
        self.adjacency = adjacency
        self.diffusion = diffusion
        self.l2_weight = l2_weight
        self.contrastive = contrastive
        self.contrastive_weight = contrastive_weight
        self.temperature = temperature
        self._graphs_t: list[torch.Tensor] | None = None

    @property
    def _graphs(self) -> list[torch.Tensor] | None:
        return None if self.diffusion is None else self.diffusion.graphs

    @property
    def _scoring_graphs(self) -> list[torch.Tensor] | None:
        return None if self.diffusion is None else self.diffusion.scoring_graphs

    def begin_epoch(self) -> None:
        # G_m is not symmetric after edge dropout: transpose it once for all backward passes.
        graphs = self._graphs
        self._graphs_t = None if graphs is None else [transpose_csr(g) for g in graphs]

    def batch_loss(
        self, users: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        network = self.network
        n_users = network.config.n_users
        use_cl = self.contrastive is not None and self.contrastive_weight > 0
        output, views = network(
            self.adjacency, self._graphs, with_views=use_cl, graphs_t=self._graphs_t
        )
        user_out, item_out = output[:n_users], output[n_users:]
        negatives = hardest_negatives(user_out, item_out, users, negatives)
        bpr = losses.bpr_loss(user_out[users], item_out[items], item_out[negatives])
        l2 = self.l2_weight * losses.l2_penalty(network.user_embedding, network.item_embedding)
        if use_cl:
            # The contrastive terms split the output (see _contrastive); BPR keeps its slices:
            # sharing the split would change the order in which autograd sums the output's
            # gradients, and so the last bits of the model.
            cl = self._contrastive(output, views, users, items)
        else:
            cl = bpr.new_zeros(())
        return _total(bpr, l2, self.contrastive_weight, cl)

    def _contrastive(
        self,
        output: torch.Tensor,
        views: list[torch.Tensor],
        users: torch.Tensor,
        items: torch.Tensor,
    ) -> torch.Tensor:
        """InfoNCE over the batch's users and items, for each pair of (output or view, view).

        The first of a pair contributes its batch rows, the second all its rows, L2-normalised:
        a view that is the second of several pairs is normalised once, its users and items
        together. Each tensor is split (not sliced) into its user and item rows: a split's
        backward is one concatenation of the halves' gradients, where each slice's zero-fills
        and adds a full-size tensor.
        """
        sizes = [self.network.config.n_users, self.network.config.n_items]
        if self.contrastive == "main_modal":  # a = None: the output
            pairs = [(None, b) for b in range(len(views))]
        else:  # modal_modal
            pairs = [(a, b) for a in range(len(views)) for b in range(a + 1, len(views))]
        seconds = {b: normalize_rows(views[b]).split(sizes) for b in sorted({b for _, b in pairs})}
        firsts: dict[int | None, tuple[torch.Tensor, ...]] = {}
        total = output.new_zeros(())
        for a, b in pairs:
            if a not in firsts:  # split where first used, as before: the same autograd order
                firsts[a] = (output if a is None else views[a]).split(sizes)
            (x_users, x_items), (y_users, y_items) = firsts[a], seconds[b]
            total = total + losses._info_nce_normalized(x_users, y_users, users, self.temperature)
            total = total + losses._info_nce_normalized(x_items, y_items, items, self.temperature)
        return total

    def encode(self) -> torch.Tensor:
        self.network.eval()
        output, _ = self.network(self.adjacency, self._scoring_graphs)
        return output

    def epoch_record(self) -> dict[str, object]:
        return {"fusion_weights": torch.softmax(self.network.fusion_weights.detach(), 0).tolist()}


class LightGCNObjective:
    """BPR with LightGCN's L2 on the batch's ego embeddings, ``λ·(‖e_u‖²+‖e_i‖²+‖e_j‖²)/(2B)``."""

    def __init__(self, network: LightGCNNetwork, adjacency: torch.Tensor, *, l2_weight: float):
        self.network = network
        self.adjacency = adjacency
        self.l2_weight = l2_weight

    def begin_epoch(self) -> None:
        pass

    def batch_loss(
        self, users: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        network = self.network
        output = network(self.adjacency)
        user_out, item_out = output[: network.n_users], output[network.n_users :]
        negatives = hardest_negatives(user_out, item_out, users, negatives)
        bpr = losses.bpr_loss(user_out[users], item_out[items], item_out[negatives])
        table = network.item_embedding
        rows = (network.user_embedding[users], table[items], table[negatives])
        l2 = self.l2_weight * losses.l2_penalty(*rows) / (2 * len(users))
        return _total(bpr, l2, 0.0, bpr.new_zeros(()))

    def encode(self) -> torch.Tensor:
        self.network.eval()
        return self.network(self.adjacency)

    def epoch_record(self) -> dict[str, object]:
        return {}


def _total(
    bpr: torch.Tensor, l2: torch.Tensor, contrastive_weight: float, cl: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss to minimise, and its parts (detached) for the epoch's mean losses."""
    parts = torch.stack([bpr.detach(), l2.detach(), cl.detach()])
    return bpr + l2 + contrastive_weight * cl, parts


def hardest_negatives(
    user_out: torch.Tensor, item_out: torch.Tensor, users: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    """Each row's highest-scoring candidate negative under the current embeddings.

    ``negatives`` of shape (batch,) is returned as it is; of shape (batch, K), the candidate
    ``j`` with the largest ``e_u·e_j`` is picked per row (no gradient flows through the pick).
    """
    if negatives.ndim == 1:
        return negatives
    with torch.no_grad():
        scores = torch.einsum("bd,bkd->bk", user_out[users], item_out[negatives])
        pick = scores.argmax(dim=1, keepdim=True)
    return negatives.gather(1, pick).squeeze(1)
