"""Tests for :mod:`diffmm.losses` against direct float64 NumPy formulas (SPEC §3, §6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diffmm import losses
from diffmm.losses import bpr_loss, info_nce, l2_penalty
from reference import alignment_loss, diffusion_loss

# ---------------------------------------------------------------------------
# Independent float64 references written from the SPEC formulas.
# ---------------------------------------------------------------------------


def ref_bpr(eu: np.ndarray, ei: np.ndarray, ej: np.ndarray) -> float:
    # −mean log σ(e_u·e_i − e_u·e_j); log σ(z) = −log(1 + exp(−z)), evaluated stably.
    z = np.sum(eu * ei, axis=1) - np.sum(eu * ej, axis=1)
    return float(np.mean(np.logaddexp(0.0, -z)))


def ref_bpr_naive(eu, ei, ej) -> float:
    z = np.sum(eu * ei, axis=1) - np.sum(eu * ej, axis=1)
    return float(-np.mean(np.log(1.0 / (1.0 + np.exp(-z)))))


def l2_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ref_info_nce_naive(x: np.ndarray, y: np.ndarray, nodes: np.ndarray, tau: float) -> float:
    """SPEC §6 literally.

    ``−mean_n log(exp(x_n·y_n/τ) / Σ_{n' over all rows of Y} exp(x_n·y_n'/τ))``.
    """
    xn, yn = l2_rows(x), l2_rows(y)
    total = 0.0
    for n in nodes:
        num = math.exp(xn[n] @ yn[n] / tau)
        den = sum(math.exp(xn[n] @ yn[k] / tau) for k in range(len(yn)))
        total += -math.log(num / den)
    return total / len(nodes)


def ref_info_nce_stable(x, y, nodes, tau) -> float:
    # Same formula, log-sum-exp with max subtraction so that small τ cannot overflow.
    xn, yn = l2_rows(x), l2_rows(y)
    logits = xn[nodes] @ yn.T / tau  # (batch, all rows of Y)
    m = logits.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
    pos = np.sum(xn[nodes] * yn[nodes], axis=1) / tau
    return float(np.mean(lse - pos))


def t64(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


# ---------------------------------------------------------------------------
# BPR
# ---------------------------------------------------------------------------


def test_bpr_golden_by_hand():
    # e_u = (1, 0), e_i = (2, 0), e_j = (0, 5): z = 2, loss = log(1 + e^-2).
    loss = bpr_loss(t64([[1.0, 0.0]]), t64([[2.0, 0.0]]), t64([[0.0, 5.0]]))
    assert float(loss) == pytest.approx(math.log1p(math.exp(-2.0)), rel=1e-12)
    # Zero embeddings: σ(0) = 1/2 → loss = log 2.
    z = torch.zeros(3, 4, dtype=torch.float64)
    assert float(bpr_loss(z, z, z)) == pytest.approx(math.log(2.0), rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bpr_matches_numpy(dtype):
    rng = np.random.default_rng(0)
    eu, ei, ej = (rng.normal(size=(17, 8)) for _ in range(3))
    loss = bpr_loss(*(torch.as_tensor(a, dtype=dtype) for a in (eu, ei, ej)))
    assert loss.shape == ()
    assert loss.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert float(loss) == pytest.approx(ref_bpr(eu, ei, ej), rel=tol)
    assert ref_bpr(eu, ei, ej) == pytest.approx(ref_bpr_naive(eu, ei, ej), rel=1e-12)


def test_bpr_stable_for_large_margins():
    # z = ±1000: the naive float32 σ underflows to 0 → log 0; the loss must stay finite.
    eu = torch.tensor([[10.0, 0.0], [10.0, 0.0]])
    ei = torch.tensor([[-100.0, 0.0], [100.0, 0.0]])
    ej = torch.zeros(2, 2)
    loss = bpr_loss(eu, ei, ej)
    assert torch.isfinite(loss)
    assert float(loss) == pytest.approx((1000.0 + 0.0) / 2, rel=1e-5)


def test_bpr_gradcheck():
    gen = torch.Generator().manual_seed(0)
    args = tuple(
        torch.randn(4, 3, dtype=torch.float64, generator=gen, requires_grad=True) for _ in range(3)
    )
    assert torch.autograd.gradcheck(bpr_loss, args)


# ---------------------------------------------------------------------------
# L2
# ---------------------------------------------------------------------------


def test_l2_penalty_matches_numpy():
    rng = np.random.default_rng(1)
    eu, ei = rng.normal(size=(5, 4)), rng.normal(size=(7, 4))
    expected = float(np.sum(eu**2) + np.sum(ei**2))
    assert float(l2_penalty(t64(eu), t64(ei))) == pytest.approx(expected, rel=1e-12)
    assert float(l2_penalty(t64(eu))) == pytest.approx(float(np.sum(eu**2)), rel=1e-12)


def test_l2_penalty_gradient():
    eu = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    ei = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    l2_penalty(eu, ei).backward()
    torch.testing.assert_close(eu.grad, 2 * eu.detach())
    torch.testing.assert_close(ei.grad, 2 * ei.detach())


# ---------------------------------------------------------------------------
# InfoNCE
# ---------------------------------------------------------------------------


def test_info_nce_golden_by_hand():
    # Orthonormal rows, x = y: x_n·y_n = 1, x_n·y_n' = 0 for n' ≠ n.
    # loss = −log(e^{1/τ} / (e^{1/τ} + (N−1))) with N = 3 rows of Y, τ = 0.5.
    x = torch.eye(3, dtype=torch.float64) * torch.tensor([[2.0], [3.0], [0.5]], dtype=torch.float64)
    loss = info_nce(x, x, torch.tensor([0, 2]), 0.5)
    e = math.exp(2.0)
    assert float(loss) == pytest.approx(-math.log(e / (e + 2.0)), rel=1e-12)


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_info_nce_matches_naive_formula(tau):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(9, 5)) * rng.uniform(0.5, 3.0, size=(9, 1))  # un-normalised rows
    y = rng.normal(size=(9, 5))
    nodes = np.array([0, 3, 3, 8, 5])  # duplicates allowed; a subset of rows
    loss = info_nce(t64(x), t64(y), torch.as_tensor(nodes), tau)
    assert loss.shape == ()
    expected = ref_info_nce_naive(x, y, nodes, tau)
    assert float(loss) == pytest.approx(expected, rel=1e-10)
    assert ref_info_nce_stable(x, y, nodes, tau) == pytest.approx(expected, rel=1e-10)


def test_info_nce_denominator_covers_all_rows_of_y():
    # Adding rows to Y that are not in the batch must change the loss (sum over ALL rows).
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    nodes = torch.tensor([0, 1])
    small = float(info_nce(t64(x), t64(y), nodes, 0.5))
    x_big = np.vstack([x, rng.normal(size=(6, 3))])
    y_big = np.vstack([y, rng.normal(size=(6, 3))])
    big = float(info_nce(t64(x_big), t64(y_big), nodes, 0.5))
    assert big > small
    assert big == pytest.approx(ref_info_nce_naive(x_big, y_big, nodes.numpy(), 0.5), rel=1e-10)


def test_info_nce_float32_matches_float64_reference():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 8)), rng.normal(size=(30, 8))
    nodes = rng.integers(0, 30, size=12)
    loss = info_nce(
        torch.as_tensor(x, dtype=torch.float32),
        torch.as_tensor(y, dtype=torch.float32),
        torch.as_tensor(nodes),
        0.2,
    )
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(ref_info_nce_stable(x, y, nodes, 0.2), rel=1e-5)


@pytest.mark.parametrize("tau", [1e-2, 1e-3])
def test_info_nce_stable_with_small_temperature(tau):
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(10, 4)), rng.normal(size=(10, 4))
    y[1] = x[1]  # a perfectly aligned positive: x·y/τ = 1/τ
    nodes = np.array([0, 1, 2, 7])
    # The naive float32 formula overflows here (exp(1/τ) > float32 max ≈ 3.4e38).
    naive = torch.exp(torch.tensor(1.0 / tau, dtype=torch.float32))
    assert torch.isinf(naive)
    for dtype in (torch.float32, torch.float64):
        loss = info_nce(
            torch.as_tensor(x, dtype=dtype),
            torch.as_tensor(y, dtype=dtype),
            torch.as_tensor(nodes),
            tau,
        )
        assert torch.isfinite(loss)
        expected = ref_info_nce_stable(x, y, nodes, tau)
        tol = {"rel": 1e-10} if dtype == torch.float64 else {"rel": 1e-4, "abs": 1e-3}
        assert float(loss) == pytest.approx(expected, **tol)
    # Gradients are finite too.
    xs = torch.as_tensor(x, dtype=torch.float32).requires_grad_(True)
    ys = torch.as_tensor(y, dtype=torch.float32).requires_grad_(True)
    info_nce(xs, ys, torch.as_tensor(nodes), tau).backward()
    assert torch.isfinite(xs.grad).all() and torch.isfinite(ys.grad).all()


def test_info_nce_invariant_to_row_scaling():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    nodes = torch.tensor([1, 4])
    base = float(info_nce(t64(x), t64(y), nodes, 0.5))
    scale = rng.uniform(0.1, 10.0, size=(6, 1))
    assert float(info_nce(t64(x * scale), t64(y / scale), nodes, 0.5)) == pytest.approx(
        base, rel=1e-10
    )


def test_info_nce_gradcheck():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randn(5, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    nodes = torch.tensor([0, 2, 2, 4])
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, nodes, 0.3), (x, y))


def old_info_nce(view_x, view_y, nodes, temperature):
    """The direct autograd implementation that ``info_nce`` replaced, kept as the reference."""
    x = F.normalize(view_x[nodes], dim=-1) / temperature
    y = F.normalize(view_y, dim=-1)
    positive = (x * y[nodes]).sum(-1)
    return (torch.logsumexp(x @ y.T, dim=-1) - positive).mean()


def value_and_grads(fn, x, y, nodes, tau):
    x = x.detach().clone().requires_grad_(True)
    y = y.detach().clone().requires_grad_(True)
    loss = fn(x, y, nodes, tau)
    loss.backward()
    return loss.detach(), x.grad, y.grad


def views(n_x, n_y, dim, dtype, seed, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    scale = torch.rand(n_x, 1, generator=gen, dtype=torch.float64) * 3 + 0.5
    x = (torch.randn(n_x, dim, generator=gen, dtype=torch.float64) * scale).to(dtype)
    y = torch.randn(n_y, dim, generator=gen, dtype=torch.float64).to(dtype)
    return x.to(device), y.to(device)


@pytest.fixture(params=[None, 3], ids=["one_block", "blocks_of_3"])
def block_bytes(request, monkeypatch):
    """Also run with blocks of 3 rows, so that there are several and the last is partial."""
    if request.param is not None:
        monkeypatch.setattr(losses, "_block_rows", lambda y: request.param)
    return request.param


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_info_nce_matches_old_implementation(tau, dtype, block_bytes):
    x, y = views(40, 40, 6, dtype, seed=10)
    nodes = torch.tensor([0, 3, 3, 3, 7, 39, 12, 7, 0, 25, 26, 27, 28])  # repeats, any order
    new = value_and_grads(info_nce, x, y, nodes, tau)
    old = value_and_grads(old_info_nce, x, y, nodes, tau)
    tol = {} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    for a, b in zip(new, old, strict=True):
        assert a.dtype == dtype
        torch.testing.assert_close(a, b, **tol)


def test_info_nce_x_and_y_of_different_lengths(block_bytes):
    # The item call of the trainer: x and y share their rows, but Y may be another view size.
    x, y = views(30, 50, 4, torch.float64, seed=11)
    nodes = torch.tensor([29, 1, 1, 5])
    for a, b in zip(
        value_and_grads(info_nce, x, y, nodes, 0.2),
        value_and_grads(old_info_nce, x, y, nodes, 0.2),
        strict=True,
    ):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("tau", [0.05, 0.3])
def test_info_nce_gradcheck_with_repeats_and_blocks(tau, block_bytes):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(7, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randn(7, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    nodes = torch.tensor([6, 0, 2, 2, 4, 2, 1])
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, nodes, tau), (x, y))


def test_info_nce_gradient_for_one_view_only():
    x, y = views(8, 8, 3, torch.float64, seed=12)
    nodes = torch.tensor([1, 1, 5])
    xs = x.clone().requires_grad_(True)
    info_nce(xs, y, nodes, 0.4).backward()
    xr = x.clone().requires_grad_(True)
    old_info_nce(xr, y, nodes, 0.4).backward()
    torch.testing.assert_close(xs.grad, xr.grad)
    ys = y.clone().requires_grad_(True)
    info_nce(x, ys, nodes, 0.4).backward()
    yr = y.clone().requires_grad_(True)
    old_info_nce(x, yr, nodes, 0.4).backward()
    torch.testing.assert_close(ys.grad, yr.grad)
    with torch.no_grad():
        torch.testing.assert_close(info_nce(x, y, nodes, 0.4), old_info_nce(x, y, nodes, 0.4))


def test_info_nce_backward_twice_with_retain_graph():
    x, y = views(6, 6, 3, torch.float64, seed=13)
    x.requires_grad_(True)
    loss = info_nce(x, y, torch.tensor([0, 5, 5]), 0.5)
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * first)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tau", [1e-2, 1e-3, 1e-4])
def test_info_nce_large_logits_nearly_equal_rows(tau, dtype, block_bytes):
    # Rows of Y nearly equal to each other and to X: every logit is close to 1/τ (up to 10⁴),
    # far past exp's float32 range; the shift must keep everything finite. For these τ the
    # loss takes the exact-row-maximum path, in float32 and (τ ≤ 1e-3) in float64.
    gen = torch.Generator().manual_seed(4)
    base = torch.randn(1, 5, dtype=torch.float64, generator=gen)
    x = base + 1e-4 * torch.randn(12, 5, dtype=torch.float64, generator=gen)
    y = base + 1e-4 * torch.randn(12, 5, dtype=torch.float64, generator=gen)
    nodes = torch.tensor([0, 4, 4, 11, 2])
    new = value_and_grads(info_nce, x.to(dtype), y.to(dtype), nodes, tau)
    for t in new:
        assert torch.isfinite(t).all()
    old = value_and_grads(old_info_nce, x, y, nodes, tau)
    if dtype == torch.float64:
        for a, b in zip(new, old, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)
    else:
        torch.testing.assert_close(new[0], old[0].float(), rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_info_nce_worst_case_for_the_unshifted_path(dtype):
    # Positive anti-aligned (x·y_n = −1/τ), every other row aligned (+1/τ): the exponentials
    # span exp(±1/τ). τ = 0.0125 still takes the unshifted path in float32
    # (1/τ + log n < log(max) − 4), with exp(80) ≈ 6e34 in the sum and exp(−80) ≈ 2e−35
    # for the positive.
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(6, 4, dtype=torch.float64, generator=gen)
    y = x.clone()
    y[2] = -x[2]
    x[:] = x[2]
    y[[0, 1, 3, 4, 5]] = x[2]
    nodes = torch.tensor([2, 2, 0])
    assert 1 / 0.0125 + math.log(6) < math.log(torch.finfo(torch.float32).max) - 4
    new = value_and_grads(info_nce, x.to(dtype), y.to(dtype), nodes, 0.0125)
    old = value_and_grads(old_info_nce, x, y, nodes, 0.0125)
    tol = {} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-4}
    for a, b in zip(new, old, strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b.to(dtype), **tol)


@pytest.mark.parametrize("block", [4, 9])
def test_info_nce_shift_paths_agree(block):
    # The unshifted path and the row-maximum path give the same value and gradients.
    x, y = views(9, 11, 4, torch.float64, seed=14)
    # The function takes x with one row per entry of rows.
    rows, counts = torch.tensor([0, 2, 3, 8]), torch.tensor([1, 3, 1, 2])
    x = (F.normalize(x[rows], dim=-1) / 0.2).requires_grad_(True)
    y = F.normalize(y, dim=-1).requires_grad_(True)
    results = []
    for shifted in (False, True):
        loss = losses._InfoNCE.apply(x, y, rows, counts, 7, shifted, block)
        results.append((loss, *torch.autograd.grad(loss, (x, y))))
    for plain, shifted in zip(*results, strict=True):
        torch.testing.assert_close(plain, shifted)


def test_info_nce_empty_batch_is_nan_like_a_mean():
    x, y = views(4, 4, 3, torch.float64, seed=15)
    assert torch.isnan(info_nce(x, y, torch.tensor([], dtype=torch.int64), 0.5))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_info_nce_cuda_matches_cpu_reference(dtype):
    x, y = views(300, 500, 16, dtype, seed=16)
    nodes = torch.randint(0, 300, (128,), generator=torch.Generator().manual_seed(0))
    new = value_and_grads(info_nce, x.cuda(), y.cuda(), nodes.cuda(), 0.2)
    old = value_and_grads(old_info_nce, x, y, nodes, 0.2)
    tol = {} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-6}
    for a, b in zip(new, old, strict=True):
        assert a.device.type == "cuda"
        torch.testing.assert_close(a.cpu(), b, **tol)


# ---------------------------------------------------------------------------
# Diffusion loss and alignment (modality-aware signal injection) loss, SPEC §3
# ---------------------------------------------------------------------------


def test_diffusion_loss_matches_numpy():
    rng = np.random.default_rng(7)
    x0 = (rng.random((6, 11)) < 0.3).astype(float)
    pred = rng.normal(size=(6, 11))
    w = np.array([1.0, 0.5, 2.0, 1.0, 0.0, 3.5])
    per_user = np.array([np.mean((x0[u] - pred[u]) ** 2) for u in range(6)])
    expected = float(np.mean(w * per_user))
    assert float(diffusion_loss(t64(x0), t64(pred), t64(w))) == pytest.approx(expected, rel=1e-12)


def test_diffusion_loss_golden_by_hand():
    # Two users, two items: user 0 error (1, 1) → mse 1, weight 2; user 1 error (0, 2) → mse 2,
    # weight 1 (t = 0). Loss = (2·1 + 1·2)/2 = 2.
    x0 = t64([[1.0, 0.0], [0.0, 1.0]])
    pred = t64([[0.0, 1.0], [0.0, -1.0]])
    assert float(diffusion_loss(x0, pred, t64([2.0, 1.0]))) == pytest.approx(2.0)


def test_diffusion_loss_gradient_reaches_prediction_only_through_weights():
    x0 = torch.zeros(2, 3, dtype=torch.float64)
    pred = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    diffusion_loss(x0, pred, t64([0.0, 3.0])).backward()
    # d/dpred of mean_u w_u mean_i (pred − x0)² = w_u · 2 (pred − x0) / (n_items · n_users).
    expected = torch.tensor([[0.0] * 3, [3.0 * 2 / 6] * 3], dtype=torch.float64)
    torch.testing.assert_close(pred.grad, expected)


def test_alignment_loss_matches_numpy():
    rng = np.random.default_rng(8)
    n_users, n_items, d = 5, 7, 4
    pred = rng.normal(size=(n_users, n_items))
    x0 = (rng.random((n_users, n_items)) < 0.4).astype(float)
    phi = rng.normal(size=(n_items, d))  # φ_m(F_m)
    e_i = rng.normal(size=(n_items, d))  # E_i
    per_user = [
        np.mean(
            (
                sum(pred[u, i] * phi[i] for i in range(n_items))
                - sum(x0[u, i] * e_i[i] for i in range(n_items))
            )
            ** 2
        )
        for u in range(n_users)
    ]
    expected = float(np.mean(per_user))
    loss = alignment_loss(t64(pred), t64(x0), t64(phi), t64(e_i))
    assert loss.shape == ()
    assert float(loss) == pytest.approx(expected, rel=1e-12)


def test_alignment_loss_golden_by_hand():
    # One user, items (a, b); x̂0 = (1, 0), x0 = (0, 1); φ = [[1, 2], [0, 0]], E_i = [[0, 0], [3, 3]]
    # → x̂0·φ = (1, 2), x0·E_i = (3, 3), mean_D ((−2)² + (−1)²) = 2.5.
    loss = alignment_loss(
        t64([[1.0, 0.0]]), t64([[0.0, 1.0]]), t64([[1.0, 2.0], [0.0, 0.0]]), t64([[0, 0], [3, 3]])
    )
    assert float(loss) == pytest.approx(2.5)


def test_alignment_loss_gradcheck_in_prediction():
    gen = torch.Generator().manual_seed(2)
    pred = torch.randn(3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    x0 = (torch.rand(3, 4, generator=gen) < 0.5).double()
    phi = torch.randn(4, 2, dtype=torch.float64, generator=gen)
    e_i = torch.randn(4, 2, dtype=torch.float64, generator=gen)
    assert torch.autograd.gradcheck(lambda p: alignment_loss(p, x0, phi, e_i), (pred,))


def _denoiser_case(seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(5, 9, dtype=dtype, generator=gen)
    x0 = (torch.rand(5, 9, generator=gen) < 0.4).to(dtype)
    w = torch.rand(5, dtype=dtype, generator=gen) * 3
    phi = torch.randn(9, 4, dtype=dtype, generator=gen)
    e_i = torch.randn(9, 4, dtype=dtype, generator=gen)
    return pred, x0, w, phi, e_i


@pytest.mark.parametrize(("g_diffusion", "g_alignment"), [(1.0, 0.0), (0.0, 1.0), (0.7, -2.5)])
def test_denoiser_losses_match_the_two_losses(g_diffusion, g_alignment):
    pred, x0, w, phi, e_i = _denoiser_case(0)
    ref_pred = pred.clone().requires_grad_()
    reference = (diffusion_loss(x0, ref_pred, w), alignment_loss(ref_pred, x0, phi, e_i))
    (g_diffusion * reference[0] + g_alignment * reference[1]).backward()

    fused_pred = pred.clone().requires_grad_()
    fused = losses.denoiser_losses(fused_pred, x0, w, phi, x0 @ e_i)
    (g_diffusion * fused[0] + g_alignment * fused[1]).backward()

    for got, want in zip(fused, reference, strict=True):
        assert got.shape == () and float(got) == pytest.approx(float(want), rel=1e-12)
    torch.testing.assert_close(fused_pred.grad, ref_pred.grad, rtol=1e-12, atol=1e-14)


def test_denoiser_losses_gradcheck():
    pred, x0, w, phi, e_i = _denoiser_case(1)
    pred.requires_grad_()

    def both(p):
        return losses.denoiser_losses(p, x0, w, phi, x0 @ e_i)

    assert torch.autograd.gradcheck(both, (pred,))


def test_denoiser_losses_read_a_bf16_prediction_as_float32():
    pred, x0, w, phi, e_i = _denoiser_case(2, torch.float32)
    low = pred.bfloat16().requires_grad_()
    fused = losses.denoiser_losses(low, x0, w, phi, x0 @ e_i)
    widened = low.detach().float().requires_grad_()
    reference = (diffusion_loss(x0, widened, w), alignment_loss(widened, x0, phi, e_i))
    (fused[0] + fused[1]).backward()
    (reference[0] + reference[1]).backward()
    for got, want in zip(fused, reference, strict=True):
        assert got.dtype == torch.float32
        assert float(got) == pytest.approx(float(want), rel=1e-5)
    assert low.grad.dtype == torch.bfloat16
    torch.testing.assert_close(low.grad, widened.grad.bfloat16())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_denoiser_losses_read_a_sparse_x0_at_its_entries(dtype):
    pred, x0, w, phi, e_i = _denoiser_case(4, torch.float32)
    x0 = x0 * torch.rand(x0.shape, generator=torch.Generator().manual_seed(5))
    x0[1] = 0.0
    results = []
    for target_x0 in (x0, x0.to_sparse_csr()):
        p = pred.to(dtype).requires_grad_()
        fused = losses.denoiser_losses(p, target_x0, w, phi, x0 @ e_i)
        (fused[0] + 0.3 * fused[1]).backward()
        results.append((fused, p.grad))
    (dense_losses, dense_grad), (sparse_losses, sparse_grad) = results
    for got, want in zip(sparse_losses, dense_losses, strict=True):
        assert float(got) == float(want)
    torch.testing.assert_close(sparse_grad, dense_grad, rtol=0, atol=0)


def test_denoiser_losses_differentiate_the_prediction_only():
    pred, x0, w, phi, e_i = _denoiser_case(3)
    with pytest.raises(ValueError, match="detach modality_item_embeddings"):
        losses.denoiser_losses(pred, x0, w, phi.requires_grad_(), x0 @ e_i)
    pred.requires_grad_()
    diffusion, _ = losses.denoiser_losses(pred, x0, w, phi.detach(), x0 @ e_i)
    diffusion.backward(retain_graph=True)
    first = pred.grad.clone()
    diffusion.backward()  # the saved residual is not consumed by the first pass
    torch.testing.assert_close(pred.grad, 2 * first)


@pytest.mark.parametrize("temperature", [0.5, 1e-3])  # unshifted / shifted by the row maximum
def test_info_nce_backward_scales_the_forward_gradients(temperature, block_bytes):
    # The CPU path computes the gradients in the forward pass, for an upstream gradient of 1;
    # the backward must scale them by the actual one, and a no-grad call must give the same
    # value.
    x, y = views(30, 40, 5, torch.float64, seed=17)
    nodes = torch.tensor([3, 3, 29, 0, 17, 17, 17])
    new = value_and_grads(lambda *a: -0.37 * info_nce(*a), x, y, nodes, temperature)
    old = value_and_grads(lambda *a: -0.37 * old_info_nce(*a), x, y, nodes, temperature)
    for a, b in zip(new, old, strict=True):
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        without_grad = info_nce(x, y, nodes, temperature)
    with_grad = info_nce(x.clone().requires_grad_(True), y, nodes, temperature)
    assert with_grad.requires_grad
    assert torch.equal(without_grad, with_grad.detach())


def test_info_nce_of_a_normalised_view_is_info_nce_bit_for_bit():
    # The recommender step normalises a view once for all its terms: the same value and the
    # same gradients as info_nce normalising it itself.
    gen = torch.Generator().manual_seed(3)
    vx, vy = torch.randn(40, 8, generator=gen), torch.randn(40, 8, generator=gen)
    nodes = torch.tensor([3, 7, 7, 0, 39, 12])
    results = []
    for prepared in (False, True):
        x, y = vx.clone().requires_grad_(), vy.clone().requires_grad_()
        if prepared:
            value = losses._info_nce_normalized(x, losses.normalize_rows(y), nodes, 0.3)
        else:
            value = info_nce(x, y, nodes, 0.3)
        value.backward()
        results.append((value.detach(), x.grad, y.grad))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)
