"""Shared fixtures: small synthetic data, the real TikTok folder, the torch device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from diffmm.datasets import make_synthetic

TIKTOK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tiktok"


@pytest.fixture(scope="session")
def tiny_data():
    """A small planted data set that trains in seconds."""
    return make_synthetic(n_users=120, n_items=80, interactions_per_user=12, random_state=7)


@pytest.fixture(scope="session")
def tiktok_path() -> Path:
    if not (TIKTOK / "trnMat.pkl").exists():
        pytest.skip(f"real TikTok data not found at {TIKTOK}")
    return TIKTOK


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def torch_device(request) -> str:
    """Run a test on the CPU and, where one exists, on a CUDA device (skipped otherwise)."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    return request.param
