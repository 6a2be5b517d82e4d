"""Tests for the pure Gaussian-diffusion math in :mod:`diffmm.diffusion`."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffmm.diffusion import (
    ARRAY_NAMES,
    DiffusionSchedule,
    loss_weight,
    q_sample,
    reverse_step,
    snr,
)
from reference import posterior_mean_variance


def _snr(s: DiffusionSchedule, t: np.ndarray) -> np.ndarray:
    return snr(s, torch.as_tensor(t), dtype=torch.float64).numpy()


def _loss_weights(s: DiffusionSchedule, t: np.ndarray) -> np.ndarray:
    return loss_weight(s, torch.as_tensor(t), dtype=torch.float64).numpy()


# ---------------------------------------------------------------------------
# Independent float64 reference, written from the spec formulas (SPEC §1-§5).
# ---------------------------------------------------------------------------


def reference_schedule(steps: int, noise_scale: float, noise_min: float, noise_max: float):
    v = np.linspace(noise_scale * noise_min, noise_scale * noise_max, steps)
    abar_prime = 1.0 - v
    betas = [1.0 - abar_prime[0]]
    for t in range(1, steps):
        betas.append(min(1.0 - abar_prime[t] / abar_prime[t - 1], 0.999))
    betas[0] = 1e-4
    betas = np.array(betas, dtype=np.float64)
    alphas = 1.0 - betas
    abar = np.array([np.prod(alphas[: t + 1]) for t in range(steps)])
    abar_prev = np.array([1.0 if t == 0 else abar[t - 1] for t in range(steps)])
    c1 = betas * np.sqrt(abar_prev) / (1.0 - abar)
    c2 = (1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar)
    var = betas * (1.0 - abar_prev) / (1.0 - abar)
    logvar = np.empty(steps)
    logvar[0] = math.log(var[1]) if steps > 1 else math.log(betas[0])
    for t in range(1, steps):
        logvar[t] = math.log(var[t])
    snr_ = abar / (1.0 - abar)
    weights = np.array([1.0 if t == 0 else snr_[t - 1] - snr_[t] for t in range(steps)])
    return {
        "betas": betas,
        "alphas": alphas,
        "alphas_cumprod": abar,
        "alphas_cumprod_prev": abar_prev,
        "posterior_mean_coef1": c1,
        "posterior_mean_coef2": c2,
        "posterior_variance": var,
        "posterior_log_variance_clipped": logvar,
        "snr": snr_,
        "loss_weights": weights,
    }


# Default T=5 betas, computed with exact rational arithmetic (fractions.Fraction)
# from SPEC §1: v = [1e-5, 5.075e-4, 1.005e-3, 1.5025e-3, 2e-3] and
# β_t = (v_t − v_{t−1})/(1 − v_{t−1}) = 4.975e-4/(1 − v_{t−1}); hand check:
# β_1 = 4.975e-4/0.99999 = 4.97504975...e-4.
DEFAULT_BETAS = np.array(
    [
        1e-4,
        0.0004975049750497505,
        0.0004977526094492956,
        0.0004980004904929454,
        0.0004982486185493704,
    ]
)

CONFIGS = [
    dict(steps=5, noise_scale=0.1, noise_min=1e-4, noise_max=0.02),  # default
    dict(steps=10, noise_scale=0.5, noise_min=1e-3, noise_max=0.05),
    dict(steps=2, noise_scale=1.0, noise_min=1e-6, noise_max=0.9999),  # hits the 0.999 cap
    dict(steps=1, noise_scale=0.1, noise_min=1e-4, noise_max=0.02),
]


@st.composite
def configs(draw):
    steps = draw(st.integers(1, 50))
    noise_min = draw(st.floats(1e-6, 0.1))
    noise_max = noise_min * draw(st.floats(1.5, 100.0))
    # noise_scale·noise_max < 1 is required; draw the scale as a fraction of its bound.
    noise_scale = draw(st.floats(0.01, 1.0)) * 0.99 / noise_max
    return dict(steps=steps, noise_scale=noise_scale, noise_min=noise_min, noise_max=noise_max)


FAST = settings(max_examples=60, deadline=None)


# ---------------------------------------------------------------------------
# Golden values
# ---------------------------------------------------------------------------


def test_default_betas_literal():
    sched = DiffusionSchedule()
    assert sched.steps == 5
    np.testing.assert_allclose(sched.betas, DEFAULT_BETAS, rtol=1e-12, atol=0)
    assert sched.betas[0] == 1e-4


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"T{c['steps']}")
def test_schedule_matches_reference(cfg):
    sched = DiffusionSchedule(**cfg)
    ref = reference_schedule(**cfg)
    for name in ARRAY_NAMES:
        arr = getattr(sched, name)
        assert arr.dtype == np.float64 and arr.shape == (cfg["steps"],), name
        np.testing.assert_allclose(arr, ref[name], rtol=1e-12, atol=1e-15, err_msg=name)
    t = np.arange(cfg["steps"])
    np.testing.assert_allclose(_snr(sched, t), ref["snr"], rtol=1e-12)
    np.testing.assert_allclose(_loss_weights(sched, t), ref["loss_weights"], rtol=1e-9)


def test_max_beta_cap_applies():
    sched = DiffusionSchedule(steps=2, noise_scale=1.0, noise_min=1e-6, noise_max=0.9999)
    assert sched.betas[1] == 0.999


def test_schedule_equality_and_hash():
    a, b = DiffusionSchedule(), DiffusionSchedule()
    assert a == b and hash(a) == hash(b)
    np.testing.assert_array_equal(a.betas, b.betas)
    assert a != DiffusionSchedule(steps=6)


def test_pickle_and_copy_roundtrip():
    import copy
    import pickle

    s = DiffusionSchedule(steps=7, noise_scale=0.3)
    q_sample(s, torch.zeros(1, 2), torch.tensor([1]), torch.zeros(1, 2))  # fills tensor cache
    for clone in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s)):
        assert clone == s
        np.testing.assert_array_equal(clone.posterior_variance, s.posterior_variance)


def test_schedule_is_immutable():
    sched = DiffusionSchedule()
    with pytest.raises(dataclasses.FrozenInstanceError):
        sched.steps = 3
    with pytest.raises(ValueError):
        sched.betas[0] = 0.5


# ---------------------------------------------------------------------------
# Property-based invariants
# ---------------------------------------------------------------------------


@FAST
@given(configs())
def test_schedule_invariants(cfg):
    s = DiffusionSchedule(**cfg)
    T = cfg["steps"]
    assert np.all((s.betas > 0) & (s.betas < 1))
    assert np.all((s.alphas_cumprod > 0) & (s.alphas_cumprod < 1))
    assert s.alphas_cumprod_prev[0] == 1.0
    np.testing.assert_array_equal(s.alphas_cumprod_prev[1:], s.alphas_cumprod[:-1])
    # ᾱ strictly decreases because every β_t > 0.
    assert np.all(np.diff(s.alphas_cumprod) < 0)
    # Posterior: variance 0 at t=0, positive after; clipped log variance finite.
    assert s.posterior_variance[0] == 0.0
    assert np.all(s.posterior_variance[1:] > 0)
    assert np.all(np.isfinite(s.posterior_log_variance_clipped))
    if T > 1:
        assert s.posterior_log_variance_clipped[0] == s.posterior_log_variance_clipped[1]
    else:
        assert s.posterior_log_variance_clipped[0] == math.log(s.betas[0])
    np.testing.assert_allclose(s.posterior_mean_coef1[0], 1.0, rtol=1e-12)
    assert s.posterior_mean_coef2[0] == 0.0
    # SNR positive and strictly decreasing; loss weights positive, 1 at t=0.
    t = np.arange(T)
    snr_t = _snr(s, t)
    assert np.all(snr_t > 0) and np.all(np.diff(snr_t) < 0)
    w = _loss_weights(s, t)
    assert w[0] == 1.0 and np.all(w[1:] > 0)


@FAST
@given(configs(), st.integers(0, 2**31 - 1))
def test_posterior_matches_bayes_rule(cfg, seed):
    """Posterior equals Gaussian conditioning of q(x_{t-1}|x0) and q(x_t|x_{t-1})."""
    s = DiffusionSchedule(**cfg)
    T = cfg["steps"]
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(T, 7, generator=gen, dtype=torch.float64)
    xt = torch.randn(T, 7, generator=gen, dtype=torch.float64)
    t = torch.arange(T)
    mean, var, _ = posterior_mean_variance(s, x0, xt, t)
    for k in range(1, T):
        a_prev, a_k, b_k = s.alphas_cumprod_prev[k], s.alphas[k], s.betas[k]
        prec = 1.0 / (1.0 - a_prev) + a_k / b_k
        exp_var = 1.0 / prec
        exp_mean = exp_var * (
            math.sqrt(a_prev) * x0[k] / (1 - a_prev) + math.sqrt(a_k) * xt[k] / b_k
        )
        np.testing.assert_allclose(var[k, 0].item(), exp_var, rtol=1e-9)
        np.testing.assert_allclose(mean[k].numpy(), exp_mean.numpy(), rtol=1e-8, atol=1e-12)
    # At t = 0 the posterior collapses onto x0.
    np.testing.assert_allclose(mean[0].numpy(), x0[0].numpy(), rtol=1e-12, atol=0)
    assert var[0, 0].item() == 0.0


@FAST
@given(configs(), st.integers(0, 2**31 - 1))
def test_noise_free_posterior_mean_with_perfect_denoiser(cfg, seed):
    """x_t = sqrt(ᾱ_t)·x0 and x̂0 = x0  =>  posterior mean = sqrt(ᾱ_{t-1})·x0.

    Proof: c1·x0 + c2·sqrt(ᾱ_t)·x0 = [β_t·sqrt(ᾱ_{t-1}) + (1-ᾱ_{t-1})·α_t·sqrt(ᾱ_{t-1})]
    /(1-ᾱ_t)·x0 = sqrt(ᾱ_{t-1})·(β_t + α_t - ᾱ_t)/(1-ᾱ_t)·x0 = sqrt(ᾱ_{t-1})·x0,
    using sqrt(α_t)·sqrt(ᾱ_t) = α_t·sqrt(ᾱ_{t-1}).  At t = 0 this is x0 itself.
    """
    s = DiffusionSchedule(**cfg)
    T = cfg["steps"]
    x0 = torch.rand(T, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    t = torch.arange(T)
    xt = q_sample(s, x0, t, torch.zeros_like(x0))
    mean, _, _ = posterior_mean_variance(s, x0, xt, t)
    expected = torch.from_numpy(np.sqrt(s.alphas_cumprod_prev))[:, None] * x0
    torch.testing.assert_close(mean, expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(mean[0], x0[0], rtol=1e-12, atol=1e-14)


@FAST
@given(configs(), st.integers(0, 2**31 - 1))
def test_reverse_chain_exact_for_perfect_denoiser(cfg, seed):
    s = DiffusionSchedule(**cfg)
    T = cfg["steps"]
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.rand(3, 6, generator=gen, dtype=torch.float64)
    t_last = torch.full((3,), T - 1)
    x = q_sample(s, x0, t_last, torch.zeros_like(x0))
    for k in range(T - 1, -1, -1):
        tk = torch.full((3,), k)
        # Noise is supplied: it must be ignored at k = 0 only.
        noise = torch.randn(x0.shape, generator=gen, dtype=torch.float64) if k == 0 else None
        x = reverse_step(s, x0, x, tk, noise=noise)
        expected = math.sqrt(s.alphas_cumprod_prev[k]) * x0
        torch.testing.assert_close(x, expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(x, x0, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------
# Torch functions vs NumPy (dtype, per-row gather, broadcasting)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(6, 9), (6, 2, 3)])
def test_torch_functions_match_numpy(dtype, shape):
    s = DiffusionSchedule(steps=10, noise_scale=0.5, noise_min=1e-3, noise_max=0.05)
    ref = reference_schedule(10, 0.5, 1e-3, 0.05)
    rng = np.random.default_rng(0)
    x0_np = rng.random(shape)
    eps_np = rng.standard_normal(shape)
    z_np = rng.standard_normal(shape)
    t_np = np.array([0, 9, 3, 0, 5, 1])  # distinct per row, including t = 0
    x0, eps, z = (torch.tensor(a, dtype=dtype) for a in (x0_np, eps_np, z_np))
    t = torch.tensor(t_np)
    bshape = (-1,) + (1,) * (len(shape) - 1)

    def col(name):
        return ref[name][t_np].reshape(bshape)

    tol = dict(rtol=1e-6, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-14)

    xt = q_sample(s, x0, t, eps)
    xt_np = np.sqrt(col("alphas_cumprod")) * x0_np + np.sqrt(1 - col("alphas_cumprod")) * eps_np
    assert xt.dtype == dtype and xt.shape == shape
    np.testing.assert_allclose(xt.double().numpy(), xt_np, **tol)

    xt_in = torch.tensor(xt_np, dtype=dtype)
    mean, var, logvar = posterior_mean_variance(s, x0, xt_in, t)
    mean_np = col("posterior_mean_coef1") * x0_np + col("posterior_mean_coef2") * xt_np
    assert mean.dtype == var.dtype == logvar.dtype == dtype
    assert var.shape == logvar.shape == (shape[0],) + (1,) * (len(shape) - 1)
    np.testing.assert_allclose(mean.double().numpy(), mean_np, **tol)
    np.testing.assert_allclose(var.double().numpy(), col("posterior_variance"), **tol)
    np.testing.assert_allclose(
        logvar.double().numpy(), col("posterior_log_variance_clipped"), **tol
    )

    noisy = reverse_step(s, x0, xt_in, t, noise=z)
    mask = (t_np > 0).reshape(bshape)
    noisy_np = mean_np + mask * np.exp(0.5 * col("posterior_log_variance_clipped")) * z_np
    np.testing.assert_allclose(noisy.double().numpy(), noisy_np, **tol)
    det = reverse_step(s, x0, xt_in, t)
    np.testing.assert_allclose(det.double().numpy(), mean_np, **tol)
    # Rows with t = 0 ignore the noise and return x̂0.
    torch.testing.assert_close(noisy[t == 0], x0[t == 0])

    got_snr = snr(s, t, dtype=dtype)
    got_w = loss_weight(s, t, dtype=dtype)
    assert got_snr.dtype == got_w.dtype == dtype and got_snr.shape == (6,)
    np.testing.assert_allclose(got_snr.double().numpy(), ref["snr"][t_np], rtol=1e-6)
    np.testing.assert_allclose(got_w.double().numpy(), ref["loss_weights"][t_np], rtol=1e-6)


def test_gather_is_per_row():
    s = DiffusionSchedule()
    x0 = torch.ones(5, 4, dtype=torch.float64)
    t = torch.tensor([4, 3, 2, 1, 0])
    xt = q_sample(s, x0, t, torch.zeros_like(x0))
    for row, k in enumerate(t.tolist()):
        assert torch.all(xt[row] == math.sqrt(s.alphas_cumprod[k]))


def test_lower_precision_and_int32_t():
    s = DiffusionSchedule()
    x0 = torch.rand(4, 3, dtype=torch.bfloat16)
    out = q_sample(s, x0, torch.tensor([0, 1, 2, 4], dtype=torch.int32), torch.zeros_like(x0))
    assert out.dtype == torch.bfloat16


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    s = DiffusionSchedule()
    x0 = torch.rand(8, 16)
    eps = torch.randn(8, 16)
    t = torch.randint(0, 5, (8,))
    cpu = reverse_step(s, x0, q_sample(s, x0, t, eps), t, noise=eps)
    dev = torch.device("cuda")
    gpu = reverse_step(
        s, x0.to(dev), q_sample(s, x0.to(dev), t.to(dev), eps.to(dev)), t, eps.to(dev)
    )
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)
    assert loss_weight(s, t.to(dev)).device.type == "cuda"


# ---------------------------------------------------------------------------
# Validation (SPEC §7)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(steps=0), r"steps must be an integer >= 1"),
        (dict(steps=-3), r"steps must be an integer >= 1"),
        (dict(steps=2.5), r"steps must be an integer >= 1"),
        (dict(steps=True), r"steps must be an integer >= 1"),
        (dict(noise_scale=0.0), r"noise_scale must be > 0"),
        (dict(noise_scale=-1.0), r"noise_scale must be > 0"),
        (dict(noise_scale=float("nan")), r"noise_scale must be finite"),
        (dict(noise_min=0.0), r"noise_min must satisfy 0 < noise_min < noise_max"),
        (dict(noise_min=-1e-4), r"noise_min must satisfy 0 < noise_min < noise_max"),
        (dict(noise_min=0.02, noise_max=0.02), r"noise_max must satisfy 0 < noise_min"),
        (dict(noise_min=0.03, noise_max=0.02), r"noise_max must satisfy 0 < noise_min"),
        (dict(noise_max=float("inf")), r"noise_max must be finite"),
        (dict(noise_min="1e-4"), r"noise_min must be a real number"),
        (dict(noise_scale=1.0, noise_max=1.0), r"noise_scale \* noise_max must be < 1"),
        # Grid points too close to be distinct in float64 -> some β_t == 0.
        (
            dict(steps=50, noise_scale=1.0, noise_min=0.1, noise_max=np.nextafter(0.1, 1.0)),
            r"betas must lie in \(0, 1\)",
        ),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DiffusionSchedule(**kwargs)
    with pytest.raises(ValueError, match=match):
        DiffusionSchedule(**kwargs)


def test_numpy_integer_steps_accepted():
    s = DiffusionSchedule(steps=np.int64(3))
    assert s.steps == 3 and type(s.steps) is int


@pytest.mark.parametrize("with_noise", [False, True])
def test_reverse_step_out_matches_new_tensor(with_noise):
    # The in-place form is what graph generation uses: the same sum, up to one rounding (the
    # kernel may fuse the last multiply and add).
    s = DiffusionSchedule(steps=5, noise_scale=0.1)
    gen = torch.Generator().manual_seed(3)
    x0_pred = torch.randn(7, 11, generator=gen)
    x_t = torch.randn(7, 11, generator=gen)
    t = torch.tensor([0, 1, 2, 3, 4, 4, 1])
    noise = torch.randn(7, 11, generator=gen) if with_noise else None
    expected = reverse_step(s, x0_pred, x_t, t, noise)

    buffer = torch.empty_like(x_t)
    kept = x_t.clone()
    assert reverse_step(s, x0_pred, x_t, t, noise, out=buffer) is buffer
    torch.testing.assert_close(buffer, expected, rtol=2e-7, atol=2e-7)
    torch.testing.assert_close(x_t, kept, rtol=0, atol=0)  # x_t only read

    in_place = reverse_step(s, x0_pred, x_t, t, noise, out=x_t)  # out may be x_t itself
    assert in_place is x_t
    torch.testing.assert_close(in_place, expected, rtol=2e-7, atol=2e-7)

    # A lower-precision prediction is read as x_t's dtype, as the bf16 option produces it.
    low = x0_pred.bfloat16()
    mixed = reverse_step(s, low, kept, t, noise, out=torch.empty_like(kept))
    assert mixed.dtype == torch.float32
    expected_mixed = reverse_step(s, low.float(), kept, t, noise)
    torch.testing.assert_close(mixed, expected_mixed, rtol=2e-7, atol=2e-7)

    with pytest.raises(ValueError, match="must match x"):
        reverse_step(s, x0_pred, x_t, t, out=torch.empty(7, 12))
    with pytest.raises(ValueError, match="x0_pred must match x_t"):
        reverse_step(s, x0_pred[:, :5], x_t, t, out=torch.empty_like(x_t))


def test_q_sample_into_the_noise_tensor():
    s = DiffusionSchedule(steps=5, noise_scale=0.1)
    gen = torch.Generator().manual_seed(4)
    x0 = (torch.rand(6, 8, generator=gen) < 0.3).float()
    t = torch.tensor([0, 1, 2, 3, 4, 2])
    noise = torch.randn(6, 8, generator=gen)
    expected = q_sample(s, x0, t, noise.clone())
    kept = x0.clone()
    assert q_sample(s, x0, t, noise, out=noise) is noise
    torch.testing.assert_close(noise, expected, rtol=0, atol=0)
    torch.testing.assert_close(x0, kept, rtol=0, atol=0)
    with pytest.raises(ValueError, match="reads x0 after writing out"):
        q_sample(s, x0, t, noise, out=x0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_q_sample_reads_a_sparse_x0_at_its_entries(dtype):
    s = DiffusionSchedule(steps=5, noise_scale=0.1)
    gen = torch.Generator().manual_seed(5)
    x0 = ((torch.rand(6, 8, generator=gen) < 0.3) * torch.rand(6, 8, generator=gen)).to(dtype)
    x0[2] = 0.0  # a user without interactions
    t = torch.tensor([0, 1, 2, 3, 4, 2])
    noise = torch.randn(6, 8, generator=gen, dtype=dtype)
    expected = q_sample(s, x0, t, noise.clone())
    got = q_sample(s, x0.to_sparse_csr(), t, noise, out=noise)
    assert got is noise and got.layout == torch.strided
    # The dense form may fuse its multiply-add (one rounding instead of two): equal up to that.
    torch.testing.assert_close(got, expected)
    assert torch.equal(got[x0 == 0], expected[x0 == 0])
    fresh = q_sample(s, x0.to_sparse_csr(), t, torch.zeros_like(x0))
    torch.testing.assert_close(fresh, q_sample(s, x0, t, torch.zeros_like(x0)))


@pytest.mark.parametrize("with_noise", [False, True])
def test_reverse_step_reads_a_sparse_x_t_at_its_entries(with_noise):
    s = DiffusionSchedule(steps=5, noise_scale=0.1)
    gen = torch.Generator().manual_seed(6)
    x_t = (torch.rand(6, 8, generator=gen) < 0.3).float()
    x_t[4] = 0.0
    x0_pred = torch.randn(6, 8, generator=gen)
    t = torch.tensor([0, 1, 2, 3, 4, 4])
    noise = torch.randn(6, 8, generator=gen) if with_noise else None
    expected = reverse_step(s, x0_pred, x_t, t, noise)
    got = reverse_step(s, x0_pred, x_t.to_sparse_csr(), t, noise)
    assert got.layout == torch.strided
    torch.testing.assert_close(got, expected)
    into = torch.full_like(x_t, float("nan"))
    low = x0_pred.bfloat16()
    got = reverse_step(s, low, x_t.to_sparse_csr(), t, noise, out=into)
    assert got is into
    torch.testing.assert_close(got, reverse_step(s, low.float(), x_t, t, noise))


def test_bad_tensor_inputs_raise():
    s = DiffusionSchedule()
    x = torch.zeros(3, 4)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 5\)"):
        q_sample(s, x, torch.tensor([0, 1, 5]), x)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 5\)"):
        reverse_step(s, x, x, torch.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match=r"t must have shape \(batch,\)"):
        q_sample(s, x, torch.tensor([0, 1]), x)
    with pytest.raises(TypeError, match="integer tensor"):
        q_sample(s, x, torch.tensor([0.0, 1.0, 2.0]), x)
    with pytest.raises(ValueError, match="must match x"):
        q_sample(s, x, torch.tensor([0, 1, 2]), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="must match x"):
        reverse_step(s, x, x, torch.tensor([0, 1, 2]), noise=torch.zeros(3, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating dtype"):
        q_sample(s, torch.zeros(3, 4, dtype=torch.long), torch.tensor([0, 1, 2]), x)
