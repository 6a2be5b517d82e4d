"""Shared fixtures: small synthetic data, the real TikTok folder, the torch device."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from diffmm.datasets import make_synthetic

TIKTOK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tiktok"

# Under pytest-xdist every worker is a process of its own: share the cores between them
# instead of each running as many torch threads as there are cores (the processes tests
# start inherit the cap through OMP_NUM_THREADS).
if os.environ.get("PYTEST_XDIST_WORKER"):
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    _threads = max(1, (os.cpu_count() or 1) // _workers)
    torch.set_num_threads(_threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(_threads))


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
