"""How the training code runs its tensor work: optimisers, batches, freed memory.

Small helpers shared by the epoch loop (``_training``) and the diffusion phases
(``_diffusion_phases``); they know nothing about either.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

__all__ = ["adam", "batches", "release_free_memory"]


def adam(params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch has one for the device (the same update).

    The unfused multi-tensor Adam makes about ten passes over every parameter per step; see
    the performance page for what that costs the denoisers.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or no fused kernel there
        return torch.optim.Adam(params, lr=lr)


def batches(order: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive slices of ``order`` of ``batch_size`` entries (the last may be shorter)."""
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # glibc; absent on macOS, Windows and musl
    except (AttributeError, OSError, TypeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> None:
    """Return the C heap's free pages to the operating system, where the C library can.

    glibc keeps the freed blocks of one phase's large temporaries in its heap; handed back,
    they do not sit under the next phase's peak (see the performance page).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
