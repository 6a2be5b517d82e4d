"""The reduced-precision option: bf16 autocast for the denoisers' dense work only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffmm import DiffMMRecommender


def _model(**params):
    base = dict(
        epochs=2,
        denoiser_hidden_dims=(32,),
        embedding_dim=16,
        batch_size=256,
        random_state=0,
        device="cpu",
    )
    return DiffMMRecommender(**{**base, **params})


def test_precision_is_validated(tiny_data):
    with pytest.raises(ValueError, match="precision"):
        _model(precision="fp8").fit(tiny_data.train, tiny_data.features)


def test_default_is_fp32_and_unchanged_by_the_option(tiny_data):
    assert DiffMMRecommender().precision == "fp32"
    a = _model().fit(tiny_data.train, tiny_data.features)
    b = _model(precision="fp32").fit(tiny_data.train, tiny_data.features)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)


def test_bf16_trains_a_comparable_float32_model(tiny_data):
    fp32 = _model().fit(tiny_data.train, tiny_data.features)
    bf16 = _model(precision="bf16").fit(tiny_data.train, tiny_data.features)
    # Weights, factors and losses stay float32; only the matmuls ran in bfloat16.
    assert bf16.user_factors_.dtype == np.float32
    assert all(p.dtype == torch.float32 for d in bf16.denoisers_ for p in d.parameters())
    assert all(np.isfinite(r["loss_diffusion"]) for r in bf16.history_)
    # Reduced precision changes the numbers, not the model: close losses, different bits.
    assert not np.array_equal(fp32.user_factors_, bf16.user_factors_)
    first32, first16 = fp32.history_[0], bf16.history_[0]
    assert first16["loss_diffusion"] == pytest.approx(first32["loss_diffusion"], rel=0.05)
    # Both rank held-out items far above chance.
    for model in (fp32, bf16):
        assert model.score(tiny_data.validation, k=10) > 0.0


def test_bf16_round_trips_through_save(tmp_path, tiny_data):
    model = _model(precision="bf16").fit(tiny_data.train, tiny_data.features)
    loaded = DiffMMRecommender.load(model.save(tmp_path / "m.diffmm"))
    assert loaded.precision == "bf16"
    np.testing.assert_array_equal(loaded.recommend([0, 1])[0], model.recommend([0, 1])[0])
