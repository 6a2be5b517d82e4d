"""Torch modules of DiffMM: time embedding, denoiser, modality projections, graph encoder.

Also the LightGCN baseline's network, trained by the same loop.

Modules take explicit constructor arguments (from the frozen :class:`NetworkConfig`) and draw
their initial weights from an explicit ``torch.Generator``; they never read global state.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from ._graph import item_knn_graph
from ._normalize import normalize_rows
from ._sparse import sparse_csr, spmm, transpose_csr

__all__ = [
    "Denoiser",
    "DiffMMNetwork",
    "LightGCNNetwork",
    "ModalityProjection",
    "NetworkConfig",
    "TimeEmbedding",
    "propagate",
]


def _xavier_uniform_(tensor: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    fan_out, fan_in = tensor.shape[0], tensor.shape[1]
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


def _torch_linear_init_(layer: nn.Linear, generator: torch.Generator | None) -> None:
    # torch's default nn.Linear init (kaiming_uniform with a=sqrt(5)), through a generator.
    bound = 1.0 / math.sqrt(layer.in_features)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        if layer.bias is not None:
            layer.bias.uniform_(-bound, bound, generator=generator)


def _denoiser_init_(layer: nn.Linear, generator: torch.Generator | None) -> None:
    # SPEC §2: weights N(0, sqrt(2/(fan_in+fan_out))), biases N(0, 0.001).
    std = math.sqrt(2.0 / (layer.in_features + layer.out_features))
    with torch.no_grad():
        layer.weight.normal_(0.0, std, generator=generator)
        layer.bias.normal_(0.0, 0.001, generator=generator)


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of the diffusion step followed by a linear layer (model page §2).

    Parameters
    ----------
    dim : int
        Embedding size; the first half holds cosines, the second sines, with frequencies
        ``exp(−ln(10000)·k/(dim//2))``.
    """

    def __init__(self, dim: int, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.dim = dim
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.linear = nn.Linear(dim, dim)
        _denoiser_init_(self.linear, generator)

    def forward(self, t: torch.Tensor, matmul_dtype: torch.dtype | None = None) -> torch.Tensor:
        """The embedding of steps ``t``; the linear layer's product in ``matmul_dtype``."""
        angles = t.to(self.freqs.dtype)[:, None] * self.freqs[None]
        emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
        if self.dim % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return _linear(self.linear, emb, matmul_dtype)


class Denoiser(nn.Module):
    """The MLP ``f_m(x_t, t)`` that predicts a user's interaction row ``x_0`` (model page §2).

    Parameters
    ----------
    n_items : int
        Length of an interaction row.
    hidden_dims : tuple of int
        Hidden layer sizes (tanh between all layers, none after the last).
    time_dim : int
        Size of the time embedding.
    dropout : float
        Input dropout applied in training mode only.
    normalize_input : bool
        L2-normalise ``x_t`` before dropout.
    """

    def __init__(
        self,
        n_items: int,
        hidden_dims: tuple[int, ...] = (1000,),
        *,
        time_dim: int = 10,
        dropout: float = 0.5,
        normalize_input: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.dropout = dropout
        self.normalize_input = normalize_input
        self.time_embedding = TimeEmbedding(time_dim, generator=generator)
        sizes = [n_items + time_dim, *hidden_dims, n_items]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        for layer in self.layers:
            _denoiser_init_(layer, generator)
        self._cast: dict[int, torch.Tensor] | None = None

    @contextmanager
    def cast_once(self, dtype: torch.dtype | None) -> Iterator[None]:
        """Within the block, products in ``dtype`` use the dense layers' weights cast once.

        Every call otherwise casts each layer's weight and bias to ``matmul_dtype`` anew (a
        pass over all the weights), which training needs, since its weights change at every
        step; graph generation calls the denoiser for every batch and step with the same
        weights. The values are the same either way. No gradient flows to the copies:
        for inference (``torch.no_grad``) only, with weights that do not change in the block.
        """
        first = self.layers[0].weight
        if dtype is None or dtype == first.dtype or torch.is_grad_enabled():
            yield
            return
        self._cast = {
            id(p): p.detach().to(dtype) for layer in self.layers for p in (layer.weight, layer.bias)
        }
        try:
            yield
        finally:
            self._cast = None

    def _weights(self, layer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's weight and bias, or their copies made by :meth:`cast_once`."""
        cast = getattr(self, "_cast", None)  # absent in denoisers pickled before it
        if cast is None:
            return layer.weight, layer.bias
        return cast[id(layer.weight)], cast[id(layer.bias)]

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        dropout_draw: torch.Tensor | None = None,
        matmul_dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """``x̂_0`` for rows ``x_t`` at steps ``t``.

        ``x_t`` may be a sparse CSR batch (an interaction row before any noise, at inference):
        the first layer then multiplies only its stored entries. In training, the input
        dropout keeps the entries whose uniform draw is below ``1 - dropout``; the draws come
        from ``generator`` unless given as ``dropout_draw`` (of ``x_t``'s shape, drawn the same
        way ahead of time; its memory is reused for the mask). ``matmul_dtype`` (e.g.
        ``torch.bfloat16``) is the dtype of the dense layers' products, whose inputs and
        weights are cast to it; ``None`` keeps the weights' dtype. The output then has that
        dtype.
        """
        if x_t.layout == torch.sparse_csr and (self.normalize_input or self.training):
            x_t = x_t.to_dense()
        if self.normalize_input:
            x_t = F.normalize(x_t, dim=-1)
        scale = 1.0
        if self.training and self.dropout > 0:
            keep = 1.0 - self.dropout
            draw = dropout_draw
            if draw is None:
                draw = torch.rand(x_t.shape, generator=generator, device=x_t.device)
            elif draw.shape != x_t.shape:
                raise ValueError(
                    f"dropout_draw has shape {tuple(draw.shape)}, not {tuple(x_t.shape)}."
                )
            mask = draw.lt_(keep)  # 1.0 where kept, in the draw's memory
            x_t = mask.mul_(x_t) if mask.dtype == x_t.dtype else x_t * mask
            scale = 1.0 / keep  # applied after the first product, on the narrower output
        # The first layer acts on [x_t, time embedding]; its two column blocks multiply their
        # own inputs, so that no (batch, n_items + τ) concatenation is built and no gradient
        # is computed for the data block's input (it needs none).
        first = self.layers[0]
        dtype = matmul_dtype or first.weight.dtype
        emb = self.time_embedding(t, dtype)
        weight, bias = self._weights(first)
        if x_t.layout == torch.sparse_csr:
            n_items = first.in_features - self.time_embedding.dim
            time_part = F.linear(emb.to(dtype), weight[:, n_items:].to(dtype), bias.to(dtype))
            # Few stored entries: exact float32 (there is no bf16 sparse kernel).
            data_part = x_t @ first.weight[:, :n_items].t().to(x_t.dtype)
            h = data_part + time_part.to(data_part.dtype)  # sparse only in eval: no dropout
        else:
            h = _SplitLinear.apply(x_t, emb, weight, bias, scale, dtype)
        for layer in self.layers[1:]:
            h = _linear(layer, torch.tanh(h), matmul_dtype, self._weights(layer))
        return h


def _linear(
    layer: nn.Linear,
    x: torch.Tensor,
    dtype: torch.dtype | None,
    weights: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``layer(x)`` with input and weights cast to ``dtype`` (None: no cast).

    ``weights``: the layer's (weight, bias) to use instead, e.g. copies already in ``dtype``.
    """
    weight, bias = weights or (layer.weight, layer.bias)
    if dtype is None:
        return F.linear(x, weight, bias)
    return F.linear(x.to(dtype), weight.to(dtype), bias.to(dtype))


class _SplitLinear(torch.autograd.Function):
    """``scale·(x @ W[:, :n]ᵀ) + e @ W[:, n:]ᵀ + b`` for dense ``x`` of width ``n``.

    What ``F.linear`` does on ``[scale·x, e]`` with its products in ``dtype``, with the
    weight's gradient written straight into its two column blocks: through two slices of the
    weight, autograd would zero-fill a full-size gradient per slice, copy each block's
    gradient into it and add the two, and in a lower precision cast each slice apart.
    """

    @staticmethod
    def forward(ctx, x, emb, weight, bias, scale, dtype):
        ctx.dtypes = [t.dtype for t in (x, emb, weight, bias)]
        n = x.shape[-1]
        w, x, emb = weight.to(dtype), x.to(dtype), emb.to(dtype)
        out = torch.addmm(bias.to(dtype), emb, w[:, n:].T)
        out.addmm_(x, w[:, :n].T, alpha=scale)
        ctx.save_for_backward(x, emb, w)
        ctx.scale = scale
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, emb, w = ctx.saved_tensors
        n, scale = x.shape[-1], ctx.scale
        x_dtype, emb_dtype, weight_dtype, bias_dtype = ctx.dtypes
        needs = ctx.needs_input_grad
        grad_x = grad_emb = grad_weight = grad_bias = None
        grad = grad.to(w.dtype)
        if needs[0]:
            grad_x = torch.mm(grad, w[:, :n]).mul_(scale).to(x_dtype)
        if needs[1]:
            grad_emb = (grad @ w[:, n:]).to(emb_dtype)
        if needs[2]:
            grad_weight = torch.empty(w.shape, dtype=weight_dtype, device=w.device)
            for block, inputs, alpha in (
                (grad_weight[:, :n], x, scale),
                (grad_weight[:, n:], emb, 1.0),
            ):
                if w.dtype == weight_dtype:  # straight into the block (beta=0: not read)
                    torch.addmm(block, grad.T, inputs, beta=0, alpha=alpha, out=block)
                else:  # the product in the lower precision, as F.linear's backward
                    block.copy_(torch.mm(grad.T, inputs).mul_(alpha))
        if needs[3]:
            grad_bias = grad.sum(0).to(bias_dtype)
        return grad_x, grad_emb, grad_weight, grad_bias, None, None


class ModalityProjection(nn.Module):
    """``φ_m``: item features of one modality into the embedding space (model page, "Data").

    ``kind="linear"`` is a linear layer with bias (reference ``trans=1``); ``kind="matrix"``
    is a bias-free Xavier-initialised matrix followed by LeakyReLU(0.2) (``trans=0``).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        kind: str = "matrix",
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        if kind == "linear":
            self.linear = nn.Linear(in_dim, out_dim)
            _torch_linear_init_(self.linear, generator)
        elif kind == "matrix":
            self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
            _xavier_uniform_(self.weight, generator)
        else:
            raise ValueError(f"Unknown projection kind {kind!r}; use 'linear' or 'matrix'.")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            return self.linear(features)
        return F.leaky_relu(features @ self.weight, negative_slope=0.2)


def propagate(adjacency: torch.Tensor, x: torch.Tensor, n_layers: int) -> torch.Tensor:
    """``Σ_{l=0..L} A^l·x`` (model page §5) for a symmetric ``A`` (its backward reuses ``A``)."""
    total = x
    for _ in range(n_layers):
        x = spmm(adjacency, x, symmetric=True)
        total = total + x
    return total


@dataclass(frozen=True)
class NetworkConfig:
    """Everything the recommender network needs to be built (model page §5 symbols in brackets)."""

    n_users: int
    n_items: int
    feature_dims: tuple[int, ...]
    embedding_dim: int = 64  # D
    projection: str = "matrix"
    n_layers: int = 1  # L
    generated_graph_weight: float = 0.2  # λ_adj
    residual_weight: float = 0.5  # λ_ris
    # Options (model page): a frozen item–item graph of each item's ``item_knn`` nearest
    # neighbours by features (0: none), added to the items' output with ``item_graph_weight``.
    item_knn: int = 0
    item_graph_weight: float = 1.0


class DiffMMNetwork(nn.Module):
    """ID embeddings, modality projections and fusion weights, with the graph encoder.

    Modality ``m`` is the ``m``-th entry of ``features`` / ``config.feature_dims``; names are
    kept by the caller. Features are stored as buffers so that ``.to(device)`` moves them, but
    not in ``state_dict()``: they are inputs, not weights, so snapshots, checkpoints and
    ``load_state_dict`` neither copy them nor write into them (they may be the caller's
    read-only arrays). ``id_items`` (bool, one per item) names the items that have an ID
    embedding; the others are represented by their features alone (default: all have one).
    With ``config.item_knn > 0`` the item–item graph is built here from the features.
    """

    def __init__(
        self,
        config: NetworkConfig,
        features: list[torch.Tensor],
        *,
        generator: torch.Generator | None = None,
        id_items: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if len(features) != len(config.feature_dims) or not features:
            raise ValueError("features must hold one tensor per modality (at least one).")
        self.config = config
        d = config.embedding_dim
        self.user_embedding = nn.Parameter(torch.empty(config.n_users, d))
        self.item_embedding = nn.Parameter(torch.empty(config.n_items, d))
        _xavier_uniform_(self.user_embedding, generator)
        _xavier_uniform_(self.item_embedding, generator)
        self.projections = nn.ModuleList(
            ModalityProjection(dim, d, config.projection, generator=generator)
            for dim in config.feature_dims
        )
        n_modalities = len(config.feature_dims)
        self.fusion_weights = nn.Parameter(torch.full((n_modalities,), 1.0 / n_modalities))
        for m, feats in enumerate(features):
            self.register_buffer(f"features_{m}", feats.to(torch.float32), persistent=False)
        # Derived from the data, not learnt: rebuilt, not stored.
        id_mask = None if id_items is None else id_items.to(torch.float32)[:, None]
        self.register_buffer("id_mask", id_mask, persistent=False)
        item_graph = item_graph_t = None
        if config.item_knn > 0:
            item_graph = item_knn_graph(features, k=config.item_knn)
            item_graph_t = transpose_csr(item_graph)
        self.register_buffer("item_graph", item_graph, persistent=False)
        self.register_buffer("item_graph_t", item_graph_t, persistent=False)

    @property
    def n_modalities(self) -> int:
        return len(self.projections)

    def modality_features(self, m: int) -> torch.Tensor:
        return getattr(self, f"features_{m}")

    def set_modality_features(self, m: int, features: torch.Tensor) -> None:
        """Replace modality ``m``'s feature buffer (same shape: the projections depend on it)."""
        if features.shape != self.modality_features(m).shape:
            raise ValueError(
                f"features for modality {m} must have shape "
                f"{tuple(self.modality_features(m).shape)}, got {tuple(features.shape)}."
            )
        setattr(self, f"features_{m}", features)

    def modality_item_embeddings(self) -> list[torch.Tensor]:
        """``φ_m(F_m)`` for every modality, each of shape (n_items, D)."""
        return [proj(self.modality_features(m)) for m, proj in enumerate(self.projections)]

    def forward(
        self,
        adjacency: torch.Tensor,
        graphs: list[torch.Tensor] | None,
        *,
        with_views: bool = False,
        graphs_t: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encode all nodes; optionally also the per-modality contrastive views (model page §5).

        Parameters
        ----------
        adjacency : sparse Tensor of shape (U+I, U+I)
            ``A``, the normalised interaction graph.
        graphs : list of sparse Tensor of shape (U+I, U+I), or None
            ``G_m`` per modality; ``None`` drops the ``λ_adj·G_m·E`` term and uses ``A`` for the
            contrastive views (the "no graph generation" ablation).
        with_views : bool
            Also return ``Z_m = Σ_l A^l·(G_m·P_m)`` for each modality.
        graphs_t : list of sparse Tensor, optional
            The transposes of ``graphs`` (``G_m`` is not symmetric after edge dropout), built
            once per epoch so that backward passes need no transpose; without them each
            backward through ``G_m`` transposes it.

        Returns
        -------
        output : Tensor of shape (U+I, D)
            ``H + λ_ris·normalize(H_0)``; users first.
        views : list of Tensor of shape (U+I, D)
            Empty unless ``with_views``.
        """
        items = self._item_ids()
        output, views = self._encode(
            self.user_embedding,
            items,
            self.modality_item_embeddings(),
            adjacency,
            graphs,
            with_views=with_views,
            graphs_t=graphs_t,
        )
        if self.item_graph is not None:  # items also get their feature neighbours' IDs
            n_users = self.config.n_users
            neighbours = spmm(self.item_graph, items, self.item_graph_t)
            item_out = output[n_users:] + self.config.item_graph_weight * neighbours
            output = torch.cat([output[:n_users], item_out])
        return output, views

    def _item_ids(self) -> torch.Tensor:
        """The item ID embeddings, zero for items without one."""
        if self.id_mask is None:
            return self.item_embedding
        return self.item_embedding * self.id_mask

    @torch.no_grad()
    def encode_new_items(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The encoder's output for items with features and no edge, e.g. items added later.

        Such an item has only its self-loop in ``A``, no row in the generated graphs and no ID
        embedding (taken as zero), so it is encoded alone, over the identity graph.

        Parameters
        ----------
        features : list of Tensor of shape (n_new_items, d_m)
            One per modality, in the network's order.

        Returns
        -------
        Tensor of shape (n_new_items, D)
        """
        n, dim = int(features[0].shape[0]), self.config.embedding_dim
        nodes = torch.arange(n + 1)
        identity = sparse_csr(nodes, nodes[:n], torch.ones(n), n)
        item_embs = [
            proj(f.to(torch.float32)) for proj, f in zip(self.projections, features, strict=True)
        ]
        output, _ = self._encode(torch.zeros(0, dim), torch.zeros(n, dim), item_embs, identity)
        if self.item_graph is not None:  # their nearest fitted items by features
            trained = [self.modality_features(m) for m in range(self.n_modalities)]
            graph = item_knn_graph(features, trained, k=self.config.item_knn)
            output = output + self.config.item_graph_weight * (graph @ self._item_ids())
        return output

    def _encode(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        modality_item_embeddings: list[torch.Tensor],
        adjacency: torch.Tensor,
        graphs: list[torch.Tensor] | None = None,
        *,
        with_views: bool = False,
        graphs_t: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """:meth:`forward` for given ID tables and projected modality features."""
        cfg = self.config
        n_users = users.shape[0]
        all_nodes = torch.cat([users, items])
        weights = torch.softmax(self.fusion_weights, dim=0)
        fused = None
        views = []
        for m, item_emb in enumerate(modality_item_embeddings):
            inputs = torch.cat([users, normalize_rows(item_emb)])  # P_m
            h = spmm(adjacency, inputs, symmetric=True)
            h = h + spmm(adjacency, torch.cat([h[:n_users], items]), symmetric=True)
            if graphs is None:  # no generated graphs: the views use A
                graph_mm = partial(spmm, adjacency, symmetric=True)
            else:
                graph_t = None if graphs_t is None else graphs_t[m]
                graph_mm = partial(spmm, graphs[m], matrix_t=graph_t)
                h = h + cfg.generated_graph_weight * graph_mm(all_nodes)
            fused = weights[m] * h if fused is None else fused + weights[m] * h
            if with_views:
                views.append(propagate(adjacency, graph_mm(inputs), cfg.n_layers))
        output = propagate(adjacency, fused, cfg.n_layers)
        return output + cfg.residual_weight * normalize_rows(fused), views


class LightGCNNetwork(nn.Module):
    """LightGCN (He et al., SIGIR 2020): ID embeddings smoothed over the interaction graph.

    No feature transformation and no non-linearity: the output is the mean of the layer
    embeddings, ``(1/(L+1)) Σ_{l=0..L} A^l·E`` with ``E`` the user and item tables stacked.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the embedding tables.
    embedding_dim : int, default=64
        ``D``.
    n_layers : int, default=3
        Propagation layers ``L``.
    generator : torch.Generator, optional
        Source of the Xavier-uniform initial weights.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        *,
        embedding_dim: int = 64,
        n_layers: int = 3,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self.n_layers = n_layers
        self.user_embedding = nn.Parameter(torch.empty(n_users, embedding_dim))
        self.item_embedding = nn.Parameter(torch.empty(n_items, embedding_dim))
        _xavier_uniform_(self.user_embedding, generator)
        _xavier_uniform_(self.item_embedding, generator)

    def forward(self, adjacency: torch.Tensor) -> torch.Tensor:
        """Encode all nodes, users first.

        Parameters
        ----------
        adjacency : sparse Tensor of shape (U+I, U+I)
            LightGCN's ``D^-1/2 B D^-1/2`` (no self-loops).

        Returns
        -------
        Tensor of shape (U+I, D)
        """
        nodes = torch.cat([self.user_embedding, self.item_embedding])
        return propagate(adjacency, nodes, self.n_layers) / (self.n_layers + 1)
