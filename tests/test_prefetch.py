"""Drawing ahead in a worker thread: same items, same order, bounded, and nothing left running."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import diffmm._diffusion_phases as phases
from diffmm import DiffMMRecommender
from diffmm._model import Denoiser
from diffmm._prefetch import Prefetch


def test_items_come_in_order():
    with Prefetch(iter(range(100))) as items:
        assert list(items) == list(range(100))
        assert next(items, "end") == "end"


def _counted(n: int, made: list[int]):
    """0, 1, ..., n - 1, each appended to ``made`` when it is made."""
    for i in range(n):
        made.append(i)
        yield i


def test_at_most_one_item_is_made_ahead():
    made = []
    with Prefetch(_counted(5, made)) as items:
        for i in range(5):
            assert next(items) == i
            time.sleep(0.05)  # room for the worker to run ahead as far as it would
            assert len(made) <= i + 2


def test_errors_in_the_source_are_raised_by_next():
    def source():
        yield 1
        raise RuntimeError("broken source")

    with Prefetch(source()) as items:
        assert next(items) == 1
        with pytest.raises(RuntimeError, match="broken source"):
            next(items)


def test_leaving_early_stops_the_worker():
    made = []
    items = Prefetch(_counted(1000, made))
    with items:
        assert next(items) == 0
    assert not items._worker.is_alive()
    assert len(made) <= 2
    assert next(items, "end") == "end"


def test_dropout_draw_given_ahead_gives_the_same_output():
    denoiser = Denoiser(30, (16,), dropout=0.5, generator=torch.Generator().manual_seed(0))
    x = torch.rand(4, 30, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 1, 2, 3])
    inline = denoiser(x, t, generator=torch.Generator().manual_seed(2))
    draw = torch.rand(x.shape, generator=torch.Generator().manual_seed(2))
    ahead = denoiser(x, t, dropout_draw=draw)
    assert torch.equal(inline, ahead)
    with pytest.raises(ValueError, match="dropout_draw has shape"):
        denoiser(x, t, dropout_draw=torch.rand(3, 30))


def test_drawing_ahead_does_not_change_training(tiny_data, monkeypatch):
    settings = {"denoiser_hidden_dims": (16,), "batch_size": 32, "embedding_dim": 8}
    ahead = DiffMMRecommender(epochs=2, random_state=0, **settings)
    ahead.fit(tiny_data.train, tiny_data.features)
    calls = []

    class InLine:  # the draws made in line, as before
        def __init__(self, source):
            calls.append(1)
            self.source = source

        def __next__(self):
            return next(self.source)

        def close(self):
            pass

    monkeypatch.setattr(phases, "Prefetch", InLine)
    inline = DiffMMRecommender(epochs=2, random_state=0, **settings)
    inline.fit(tiny_data.train, tiny_data.features)
    assert calls  # the in-line path ran
    np.testing.assert_array_equal(ahead.user_factors_, inline.user_factors_)
    np.testing.assert_array_equal(ahead.item_factors_, inline.item_factors_)


def test_filling_a_buffer_draws_what_a_fresh_tensor_would():
    # The denoiser phase draws into reused buffers; torch.randn / torch.rand are these fills.
    fresh_noise = torch.randn((7, 11), generator=torch.Generator().manual_seed(3))
    fresh_draw = torch.rand((7, 11), generator=torch.Generator().manual_seed(4))
    buffer = torch.full((9, 11), float("nan"))
    noise = buffer[:7].normal_(generator=torch.Generator().manual_seed(3))
    assert torch.equal(noise, fresh_noise)
    draw = buffer[:7].uniform_(generator=torch.Generator().manual_seed(4))
    assert torch.equal(draw, fresh_draw)


def test_an_interrupt_in_the_denoiser_phase_leaves_no_worker(tiny_data, monkeypatch):
    settings = {"denoiser_hidden_dims": (16,), "batch_size": 32, "embedding_dim": 8}
    real = phases.losses.denoiser_losses
    calls = {"n": 0}
    per_epoch = -(-tiny_data.train.shape[0] // 32) * len(tiny_data.features)

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == per_epoch + 2:  # early in the second epoch's denoiser phase
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(phases.losses, "denoiser_losses", interrupted)
    model = DiffMMRecommender(epochs=3, random_state=0, **settings)
    with pytest.warns(UserWarning, match="interrupted after epoch 1"):
        model.fit(tiny_data.train, tiny_data.features)
    assert calls["n"] == per_epoch + 2
    assert not [t for t in threading.enumerate() if t.name == "diffmm-prefetch" and t.is_alive()]
