"""diffmm.plotting: every plot renders to a real image; matplotlib stays optional."""

from __future__ import annotations

import copy
import doctest
import importlib
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib", reason="plotting needs the 'plot' extra")
matplotlib.use("Agg")

import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

import diffmm  # noqa: E402
import diffmm.plotting  # noqa: E402
from diffmm import DiffMMRecommender  # noqa: E402
from diffmm.plotting import (  # noqa: E402
    generated_graph_stats,
    plot_fusion_weights,
    plot_generated_graphs,
    plot_history,
)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models: extra threads only contend with each other on a small, shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fitted(tiny_data):
    model = DiffMMRecommender(
        epochs=3, denoiser_hidden_dims=(32,), embedding_dim=16, random_state=0
    )
    return model.fit(tiny_data.train, tiny_data.features, validation_data=tiny_data.validation)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def assert_drawn(fig, path):
    """Save ``fig`` as a PNG and check that it is an image with something drawn on it."""
    fig.savefig(path, dpi=60)
    assert path.stat().st_size > 1000
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    background = image[0, 0, :3]
    drawn = np.any(np.abs(image[..., :3] - background) > 0.1, axis=-1)
    assert drawn.mean() > 0.01, "the image is (almost) blank"


def test_plot_history_gives_each_loss_its_own_panel(fitted, tmp_path):
    fig = plot_history(fitted)
    assert_drawn(fig, tmp_path / "history.png")
    *loss_axes, score_ax = fig.axes
    titles = [axis.get_title() for axis in loss_axes]
    assert titles == ["diffusion", "alignment (MSI)", "BPR", "L2", "contrastive"]
    for axis, key in zip(
        loss_axes, ("diffusion", "alignment", "bpr", "l2", "contrastive"), strict=True
    ):
        assert axis.get_yscale() == "linear"  # each on its own scale, where its trend shows
        values = [r[f"loss_{key}"] for r in fitted.history_]
        np.testing.assert_allclose(axis.lines[0].get_ydata(), values)
    assert score_ax.get_title() == "validation recall@20"
    scores = [r["validation_score"] for r in fitted.history_]
    np.testing.assert_allclose(score_ax.lines[0].get_ydata(), scores)


def test_plot_history_into_given_axes_uses_a_twin_axis(fitted, tmp_path):
    fig, ax = plt.subplots()
    assert plot_history(fitted.history_, ax=ax) is fig
    assert len(fig.axes) == 2  # the given axes and its twin for the validation score
    assert_drawn(fig, tmp_path / "history_ax.png")


def test_plot_history_leaves_out_components_that_are_never_positive(tmp_path):
    history = [
        {"epoch": e, "loss_bpr": 0.7 / e, "loss_contrastive": 0.0, "loss_l2": 0.01 * e}
        for e in (1, 2, 3)
    ]
    fig = plot_history(history)
    assert [ax.get_title() for ax in fig.axes] == ["BPR", "L2"]  # no validation panel
    assert "contrastive" in fig._suptitle.get_text()
    assert_drawn(fig, tmp_path / "history_zero.png")


def test_plot_history_rejects_empty_or_unfitted():
    with pytest.raises(ValueError, match="empty"):
        plot_history([])
    with pytest.raises(ValueError, match="fit it first"):
        plot_history(DiffMMRecommender())
    with pytest.raises(TypeError, match="history"):
        plot_history(42)


def test_plot_fusion_weights(fitted, tmp_path):
    fig = plot_fusion_weights(fitted)
    assert_drawn(fig, tmp_path / "fusion.png")
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    for m, name in enumerate(fitted.modalities_):
        expected = [r["fusion_weights"][m] for r in fitted.history_]
        np.testing.assert_allclose(lines[name].get_ydata(), expected)


def test_plot_fusion_weights_needs_them_in_the_history():
    with pytest.raises(ValueError, match="no fusion weights"):
        plot_fusion_weights([{"epoch": 1, "loss_bpr": 0.5}])


def test_generated_graph_stats(fitted, tiny_data):
    stats = generated_graph_stats(fitted, tiny_data.validation)
    assert list(stats) == list(fitted.modalities_)
    n_users = fitted.n_users_
    for graph, (name, row) in zip(fitted.generated_graphs_, stats.items(), strict=True):
        block = graph[:n_users, n_users:]
        assert row["n_edges"] == np.count_nonzero(block.toarray())
        for key in ("held_out_precision", "training_share", "chance_precision"):
            assert 0.0 <= row[key] <= 1.0
        assert row["fusion_weight"] == pytest.approx(fitted.fusion_weights_[name])
    # Against the training interactions, precision is exactly the share of training edges.
    on_train = generated_graph_stats(fitted, tiny_data.train)
    for row in on_train.values():
        assert row["held_out_precision"] == pytest.approx(row["training_share"])


def test_plot_generated_graphs(fitted, tiny_data, tmp_path):
    fig = plot_generated_graphs(fitted, tiny_data.validation)
    assert_drawn(fig, tmp_path / "graphs.png")
    precision, training, fusion = fig.axes
    for axis in (precision, training, fusion):  # one bar per modality, each panel its scale
        assert len(axis.patches) == len(fitted.modalities_)
    stats = generated_graph_stats(fitted, tiny_data.validation)
    chance = next(iter(stats.values()))["chance_precision"]
    assert precision.lines[0].get_ydata()[0] == pytest.approx(chance)
    weights = [p.get_height() for p in fusion.patches]
    assert sum(weights) == pytest.approx(1.0)
    fig2, axes = plt.subplots(1, 3)
    assert plot_generated_graphs(fitted, tiny_data.validation, axes=axes) is fig2


def test_plot_generated_graphs_without_graphs(fitted, tiny_data):
    model = copy.copy(fitted)
    model.generated_graphs_ = None  # what generate_graphs=False leaves
    with pytest.raises(ValueError, match="generate_graphs=False"):
        plot_generated_graphs(model, tiny_data.validation)
    with pytest.raises(NotFittedError):
        generated_graph_stats(DiffMMRecommender(), tiny_data.validation)


@pytest.mark.parametrize(
    "plot", [plot_history, plot_fusion_weights], ids=["history", "fusion_weights"]
)
def test_clear_import_error_without_matplotlib(monkeypatch, plot):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    history = [{"epoch": 1, "loss_bpr": 0.5, "fusion_weights": [0.5, 0.5]}]
    with pytest.raises(ImportError, match=r"pip install \"diffmm\[plot\]\""):
        plot(history)


def test_module_imports_without_matplotlib(monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(diffmm, "plotting", diffmm.plotting)  # restored afterwards
    monkeypatch.delitem(sys.modules, "diffmm.plotting")
    fresh = importlib.import_module("diffmm.plotting")  # matplotlib is imported lazily
    with pytest.raises(ImportError, match=r"diffmm\.plotting needs matplotlib"):
        fresh.plot_history([{"epoch": 1, "loss_bpr": 0.5}])


def test_docstring_examples_run():
    result = doctest.testmod(diffmm.plotting, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
