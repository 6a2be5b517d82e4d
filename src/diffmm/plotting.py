"""Plots of a DiffMM training run: losses, validation score, fusion weights, generated graphs.

Needs matplotlib, the ``plot`` extra (``pip install "diffmm[plot]"``). It is imported only when
a plotting function is called, so ``import diffmm.plotting`` works without it. Every function
draws into ``ax`` when given one and otherwise creates a new figure with ``pyplot``; each returns
the matplotlib ``Figure``.

Examples
--------
>>> from diffmm import DiffMMRecommender
>>> from diffmm.datasets import make_synthetic
>>> from diffmm.plotting import plot_generated_graphs, plot_history
>>> data = make_synthetic(n_users=60, n_items=40, random_state=0)
>>> model = DiffMMRecommender(epochs=3, denoiser_hidden_dims=(32,), random_state=0)
>>> model = model.fit(data.train, data.features, validation_data=data.validation)
>>> fig = plot_history(model)
>>> fig = plot_generated_graphs(model, data.validation)
>>> fig.savefig("graphs.png")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "generated_graph_stats",
    "plot_fusion_weights",
    "plot_generated_graphs",
    "plot_history",
]

# Loss components of a history record, in the order of the SPEC (§3 then §6), with labels.
_LOSS_LABELS = {
    "loss_diffusion": "diffusion",
    "loss_alignment": "alignment (MSI)",
    "loss_bpr": "BPR",
    "loss_l2": "L2",
    "loss_contrastive": "contrastive",
}


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "diffmm.plotting needs matplotlib, which is not installed. Install it with "
            '`pip install "diffmm[plot]"` (or `pip install matplotlib`).'
        ) from exc
    return plt


def _integer_epochs(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _history(model_or_history: Any) -> tuple[list[Mapping[str, Any]], Any]:
    """The history records and, when a model was given, the model."""
    if isinstance(model_or_history, Sequence) and not isinstance(model_or_history, str):
        history, model = list(model_or_history), None
    elif hasattr(model_or_history, "get_params"):
        model = model_or_history
        history = getattr(model, "history_", None)
        if history is None:
            raise ValueError(f"This {type(model).__name__} has no training history; fit it first.")
        history = list(history)
    else:
        raise TypeError(
            "Expected a fitted DiffMMRecommender or its history_ (a list of dicts), got "
            f"{type(model_or_history).__name__}."
        )
    if not history:
        raise ValueError("The training history is empty: there is no epoch to plot.")
    if not all(isinstance(record, Mapping) for record in history):
        raise TypeError("A history is a list of dicts, one per epoch (see history_).")
    return history, model


def _epochs(history: list[Mapping[str, Any]]) -> np.ndarray:
    return np.array([record.get("epoch", n + 1) for n, record in enumerate(history)], dtype=float)


def _legend(ax: Axes, handles: list, labels: list, *, outside: bool) -> None:
    if outside:  # a figure of our own: keep the legend off the lines
        ax.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(handles, labels, fontsize="small", loc="best")


def _mark_best_epoch(model: Any, axes: list[Axes]) -> None:
    best = getattr(model, "best_epoch_", None)
    if best is None:
        return
    for n, axis in enumerate(axes):
        axis.axvline(
            best,
            color="0.35",
            linestyle="-.",
            linewidth=1,
            label=f"kept epoch ({best})" if n == 0 else None,
        )


def plot_history(model_or_history: Any, *, ax: Axes | None = None) -> Figure:
    """Plot each loss component and the validation score per epoch, one panel each.

    The components have different scales (the diffusion loss is hundreds of times the BPR
    loss), so each gets its own panel and its own linear y axis, where its trend is visible;
    the validation score, when the model was fitted with ``validation_data``, gets the last
    panel. A component that is never positive (one a setting disables, e.g. ``contrastive=None``,
    is recorded as 0) is named in the title instead of drawn. A dotted line marks the epoch
    whose weights the model kept (``best_epoch_``), when a model is given.

    With ``ax``, a compact view goes into that one Axes instead: every component on one log
    axis, the validation score on a twin axis.

    Parameters
    ----------
    model_or_history : DiffMMRecommender or list of dict
        A fitted model, or its ``history_``: one dict per epoch with ``loss_*`` entries and
        optionally ``epoch`` and ``validation_score``.
    ax : matplotlib Axes, optional
        Draw the compact view into these axes instead of a figure of panels.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the plot.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If the model is not fitted or the history is empty.

    Examples
    --------
    >>> from diffmm import DiffMMRecommender
    >>> from diffmm.datasets import make_synthetic
    >>> from diffmm.plotting import plot_history
    >>> data = make_synthetic(n_users=60, n_items=40, random_state=0)
    >>> model = DiffMMRecommender(epochs=3, denoiser_hidden_dims=(32,), random_state=0)
    >>> model = model.fit(data.train, data.features, validation_data=data.validation)
    >>> fig = plot_history(model)
    >>> [axis.get_title() for axis in fig.axes]
    ['diffusion', 'alignment (MSI)', 'BPR', 'L2', 'contrastive', 'validation recall@20']

    A history list works too, e.g. one loaded from a saved model:

    >>> fig = plot_history(model.history_)
    """
    history, model = _history(model_or_history)
    plt = _pyplot()
    epochs = _epochs(history)
    loss_keys = list(_LOSS_LABELS)
    for record in history:
        loss_keys += [k for k in record if k.startswith("loss_") and k not in loss_keys]
    loss_keys = [k for k in loss_keys if any(k in record for record in history)]
    pairs = zip(epochs, history, strict=True)
    scored = [(e, r["validation_score"]) for e, r in pairs if "validation_score" in r]
    series, hidden = [], []
    for key in loss_keys:
        values = np.array([record.get(key, np.nan) for record in history], dtype=float)
        shown = np.isfinite(values) & (values > 0)
        label = _LOSS_LABELS.get(key, key.removeprefix("loss_"))
        if shown.any():
            series.append((label, np.where(shown, values, np.nan)))
        else:
            hidden.append(label)
    score_name = "validation score"
    if model is not None and hasattr(model, "early_stopping_metric"):
        score_name = f"validation {model.early_stopping_metric}@{model.early_stopping_k}"
    if ax is not None:
        return _compact_history(ax, epochs, series, hidden, scored, score_name, model)

    n_panels = len(series) + bool(scored)
    n_cols = min(3, n_panels)
    n_rows = -(-n_panels // n_cols)
    fig, grid = plt.subplots(
        n_rows, n_cols, sharex=True, squeeze=False, figsize=(3.4 * n_cols, 2.5 * n_rows)
    )
    panels = list(grid.ravel())
    for panel, (label, values) in zip(panels, series, strict=False):
        panel.plot(epochs, values, marker="o", markersize=3)
        panel.set_title(label, fontsize="medium")
        panel.grid(True, alpha=0.3)
    used = panels[: len(series)]
    if scored:
        panel = panels[len(series)]
        x, y = zip(*scored, strict=True)
        panel.plot(x, y, color="black", marker="s", markersize=3)
        panel.set_title(score_name, fontsize="medium")
        panel.grid(True, alpha=0.3)
        used.append(panel)
    for panel in panels[len(used) :]:
        fig.delaxes(panel)
    if model is not None:
        _mark_best_epoch(model, used)
    for panel in used:
        _integer_epochs(panel)
        panel.set_xlabel("epoch")
    title = "Training losses"
    if hidden:
        title += f" (never > 0, not shown: {', '.join(hidden)})"
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    return fig


def _compact_history(ax, epochs, series, hidden, scored, score_name, model) -> Figure:
    """Every loss on one log axis and the validation score on a twin axis, in ``ax``."""
    for label, values in series:
        ax.plot(epochs, values, marker="o", markersize=3, label=label)
    if series:
        ax.set_yscale("log")
    ax.set_ylabel("loss (log scale)")
    title = "Training losses"
    if hidden:
        title += f" (never > 0, not shown: {', '.join(hidden)})"
    ax.set_title(title, fontsize="medium")
    ax.grid(True, which="major", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if scored:
        twin = ax.twinx()
        x, y = zip(*scored, strict=True)
        twin.plot(x, y, color="black", linestyle="--", marker="s", markersize=3, label=score_name)
        twin.set_ylabel(score_name)
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    if model is not None:
        _mark_best_epoch(model, [ax])
    if handles:
        _legend(ax, handles, labels, outside=False)
    ax.set_xlabel("epoch")
    _integer_epochs(ax)
    return ax.figure


def plot_fusion_weights(model_or_history: Any, *, ax: Axes | None = None) -> Figure:
    """Plot the modality fusion weights ``softmax(w)`` per epoch.

    The weights start uniform (``1/M``, drawn as a dotted line) and the recommender learns how
    much each modality contributes to the fused representation (model page §5).

    Parameters
    ----------
    model_or_history : DiffMMRecommender or list of dict
        A fitted model, or its ``history_`` (each record holding ``fusion_weights``, a list in
        the order of ``modalities_``). With a bare history the modalities are named by position.
    ax : matplotlib Axes, optional
        Axes to draw into; by default a new figure is created.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the plot.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If the history holds no fusion weights.

    Examples
    --------
    >>> from diffmm import DiffMMRecommender
    >>> from diffmm.datasets import make_synthetic
    >>> from diffmm.plotting import plot_fusion_weights
    >>> data = make_synthetic(n_users=60, n_items=40, random_state=0)
    >>> model = DiffMMRecommender(epochs=3, denoiser_hidden_dims=(32,), random_state=0)
    >>> fig = plot_fusion_weights(model.fit(data.train, data.features))
    >>> [line.get_label() for line in fig.axes[0].lines][:2]
    ['visual', 'acoustic']
    """
    history, model = _history(model_or_history)
    pairs = zip(_epochs(history), history, strict=True)
    rows = [(e, r["fusion_weights"]) for e, r in pairs if "fusion_weights" in r]
    if not rows:
        raise ValueError(
            "The history holds no fusion weights per epoch (they are recorded by diffmm "
            "versions newer than the one that trained this model); model.fusion_weights_ "
            "holds the final ones."
        )
    epochs = np.array([e for e, _ in rows])
    weights = np.array([np.asarray(w, dtype=float) for _, w in rows])
    n_modalities = weights.shape[1]
    names = list(getattr(model, "modalities_", ()) or [])
    if len(names) != n_modalities:
        names = [f"modality {m}" for m in range(n_modalities)]

    plt = _pyplot()
    created = ax is None
    if ax is None:
        fig, ax = plt.subplots(figsize=(8.0, 3.0))
    fig = ax.figure
    for m, name in enumerate(names):
        ax.plot(epochs, weights[:, m], marker="o", markersize=3, label=name)
    ax.axhline(1.0 / n_modalities, color="0.6", linestyle=":", linewidth=1, label="uniform (1/M)")
    if model is not None:
        _mark_best_epoch(model, [ax])
    ax.set_xlabel("epoch")
    ax.set_ylabel("fusion weight")
    ax.set_title("Modality fusion weights softmax(w)", fontsize="medium")
    ax.grid(True, alpha=0.3)
    _legend(ax, *ax.get_legend_handles_labels(), outside=created)
    _integer_epochs(ax)
    if created:
        fig.tight_layout()
    return fig


def generated_graph_stats(model: Any, held_out: Any) -> dict[str, dict[str, float]]:
    """Per modality, how the model's generated user→item edges relate to the data.

    Each generated graph ``G_m`` (``model.generated_graphs_``, users first) holds the edges the
    modality's denoiser proposed in the kept epoch (model page §4), after edge dropout. This counts
    its user→item edges (the block ``[:n_users, n_users:]``) and the share of them that are
    held-out interactions, i.e. the precision of the generated edges as recommendations.

    Parameters
    ----------
    model : DiffMMRecommender
        A model fitted with ``generate_graphs=True``.
    held_out : DataFrame, array-like of shape (n_interactions, 2) or sparse matrix
        Held-out interactions of the model's users, in any form ``evaluate`` accepts (raw ids).

    Returns
    -------
    dict of str to dict
        For each modality (in ``modalities_`` order): ``n_edges``; ``held_out_precision``, the
        share of edges that are held-out interactions; ``training_share``, the share that are
        training interactions (the denoiser reconstructs the row it starts from, so this is
        usually high); ``chance_precision``, the held-out share of all user–item pairs that are
        not training interactions (what random new edges would reach); and ``fusion_weight``.

    Raises
    ------
    ValueError
        If the model has no generated graphs (``generate_graphs=False``).

    Examples
    --------
    >>> from diffmm import DiffMMRecommender
    >>> from diffmm.datasets import make_synthetic
    >>> from diffmm.plotting import generated_graph_stats
    >>> data = make_synthetic(n_users=60, n_items=40, random_state=0)
    >>> model = DiffMMRecommender(epochs=2, denoiser_hidden_dims=(32,), random_state=0)
    >>> stats = generated_graph_stats(model.fit(data.train, data.features), data.validation)
    >>> sorted(stats)
    ['acoustic', 'visual']
    >>> 0.0 <= stats["visual"]["held_out_precision"] <= 1.0
    True
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model)
    graphs = getattr(model, "generated_graphs_", None)
    if graphs is None:
        raise ValueError(
            "The model has no generated graphs: it was fitted with generate_graphs=False."
        )
    n_users, n_items = model.n_users_, model.n_items_
    held = sp.csr_matrix(model._held_out_matrix(held_out, "held_out")[:, :n_items])
    train = sp.csr_matrix(model.interactions_, dtype=np.float32)
    candidates = n_users * n_items - train.nnz
    chance = float(held.nnz / candidates) if candidates else 0.0
    stats: dict[str, dict[str, float]] = {}
    for name, graph in zip(model.modalities_, graphs, strict=True):
        block = sp.csr_matrix(graph)[:n_users, n_users:].tocsr()
        block.eliminate_zeros()
        edges = (block != 0).astype(np.float32)
        n_edges = int(edges.nnz)
        hits = float(edges.multiply(held).sum())
        known = float(edges.multiply(train).sum())
        stats[name] = {
            "n_edges": n_edges,
            "held_out_precision": hits / n_edges if n_edges else 0.0,
            "training_share": known / n_edges if n_edges else 0.0,
            "chance_precision": chance,
            "fusion_weight": float(model.fusion_weights_[name]),
        }
    return stats


def plot_generated_graphs(model: Any, held_out: Any, *, axes: Any = None) -> Figure:
    """Three panels, per modality, on what the generated graphs hold (see the model page).

    1. **Precision** of the generated user→item edges against ``held_out`` (the share of
       edges that are held-out interactions), with a dotted line at **chance**: the precision
       of random new edges, i.e. the held-out share of all user–item pairs that are not
       training interactions. A useful graph sits well above chance: its edges point where
       users go next.
    2. **Training share**: the share of edges that are training interactions. The denoiser
       reconstructs the row it starts from, so by default many edges re-state what the
       interaction graph has; near 1 the generated graph adds little that is new
       (``generation_excludes_seen=True`` makes it 0).
    3. The modalities' **fusion weights** (they sum to 1): how much each modality's branch,
       generated graph included, counts in the fused representation.

    See :func:`generated_graph_stats` for the numbers.

    Parameters
    ----------
    model : DiffMMRecommender
        A model fitted with ``generate_graphs=True``.
    held_out : DataFrame, array-like of shape (n_interactions, 2) or sparse matrix
        Held-out interactions of the model's users (raw ids), e.g. the validation split.
    axes : sequence of three matplotlib Axes, optional
        Axes to draw the three panels into; by default a new figure is created.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the plot.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If the model has no generated graphs (``generate_graphs=False``).

    Examples
    --------
    >>> from diffmm import DiffMMRecommender
    >>> from diffmm.datasets import make_synthetic
    >>> from diffmm.plotting import plot_generated_graphs
    >>> data = make_synthetic(n_users=60, n_items=40, random_state=0)
    >>> model = DiffMMRecommender(epochs=2, denoiser_hidden_dims=(32,), random_state=0)
    >>> model = model.fit(data.train, data.features)
    >>> fig = plot_generated_graphs(model, data.validation)
    >>> [axis.get_ylabel() for axis in fig.axes]
    ['precision of the edges', 'edges already in training', 'fusion weight']
    """
    stats = generated_graph_stats(model, held_out)
    plt = _pyplot()
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(3.2 * 3 + 0.6 * len(stats), 3.4))
    axes = list(axes)
    if len(axes) != 3:
        raise ValueError(f"axes must be three Axes, got {len(axes)}.")
    fig = axes[0].figure
    names = list(stats)
    labels = [f"{name}\n{stats[name]['n_edges']} edges" for name in names]
    panels = [
        ("held_out_precision", "precision of the edges", "held out, against chance"),
        ("training_share", "edges already in training", "not new (lower: more new)"),
        ("fusion_weight", "fusion weight", "weight of each modality"),
    ]
    for axis, (key, ylabel, title) in zip(axes, panels, strict=True):
        values = [stats[name][key] for name in names]
        bars = axis.bar(labels, values, color=[f"C{n}" for n in range(len(names))])
        axis.bar_label(bars, fmt="%.3g", fontsize="x-small", padding=1)
        axis.set_ylabel(ylabel)
        axis.set_title(title, fontsize="medium")
        axis.grid(True, axis="y", alpha=0.3)
    chance = next(iter(stats.values()))["chance_precision"]
    axes[0].axhline(chance, color="0.3", linestyle=":", linewidth=1, label="chance")
    axes[0].legend(fontsize="small", loc="best")
    axes[0].set_ylim(
        0, max(2.5 * chance, 1.25 * max(stats[n]["held_out_precision"] for n in names))
    )
    axes[1].set_ylim(0, 1.05)
    axes[2].set_ylim(0, 1.05)
    epoch = getattr(model, "best_epoch_", None)
    fig.suptitle(
        "Generated user→item graphs" + (f" (epoch {epoch})" if epoch is not None else ""),
        fontsize="medium",
    )
    fig.tight_layout()
    return fig
