"""Tests for :mod:`diffmm._normalize` against ``F.normalize``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from diffmm._normalize import normalize_rows


def rows(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 7, dtype=torch.float64, generator=gen) * 3
    x[5] = 0.0  # zero row: clamped, gradient g/ε
    x[9] = 1e-14  # below ε = 1e-12: clamped
    x[11] *= 1e-9
    return x.to(dtype)


def value_and_grad(fn, x, upstream):
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    (grad,) = torch.autograd.grad(out, x, upstream)
    return out.detach(), grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normalize_rows_is_f_normalize(dtype):
    x = rows(dtype)
    upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    out, grad = value_and_grad(normalize_rows, x, upstream)
    ref_out, ref_grad = value_and_grad(lambda t: F.normalize(t, dim=-1), x, upstream)
    assert torch.equal(out, ref_out)  # the value bit for bit
    tol = {} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(grad, ref_grad, **tol)
    # Clamped rows pass g/ε straight through (no projection term).
    torch.testing.assert_close(grad[[5, 9]], upstream[[5, 9]] / 1e-12, **tol)


def test_normalize_rows_gradcheck():
    x = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.autograd.gradcheck(normalize_rows, (x.requires_grad_(True),))


def test_normalize_rows_eps_and_batch_dimensions():
    x = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(3)) * 1e-3
    out, grad = value_and_grad(lambda t: normalize_rows(t, eps=1e-2), x, torch.ones_like(x))
    ref_out, ref_grad = value_and_grad(
        lambda t: F.normalize(t, dim=-1, eps=1e-2), x, torch.ones_like(x)
    )
    assert torch.equal(out, ref_out)
    torch.testing.assert_close(grad, ref_grad)


def test_normalize_rows_without_grad_saves_nothing():
    x = torch.randn(4, 3)
    with torch.no_grad():
        out = normalize_rows(x)
    assert out.grad_fn is None
    assert torch.equal(out, F.normalize(x, dim=-1))
