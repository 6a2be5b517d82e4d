"""Inference with the fitted torch modules: denoising rows, the denoiser fold-in of new users.

Pure functions over fitted modules; nothing here changes a module's weights. (Items added
after training are encoded by ``DiffMMNetwork.encode_new_items``; the propagation fold-in,
which needs no module, is in ``_foldin``.)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from ._model import Denoiser
from ._sparse import csr_rows
from .diffusion import DiffusionSchedule, q_sample, reverse_step

__all__ = ["denoise_rows", "denoiser_user_scores"]


@torch.no_grad()
def denoise_rows(
    denoiser: Denoiser,
    schedule: DiffusionSchedule,
    x0: torch.Tensor,
    *,
    sampling_steps: int = 0,
    sampling_noise: bool = False,
    randn: Callable[[tuple[int, ...]], torch.Tensor] | None = None,
    matmul_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Run the reverse process from interaction rows ``x0`` (model page), without input dropout.

    Starts from ``x0`` itself, or from ``q_sample(x0, sampling_steps − 1)`` when
    ``sampling_steps > 0``; with ``sampling_noise`` the reverse steps add posterior noise for
    t > 0.

    Parameters
    ----------
    x0 : Tensor of shape (batch, n_items)
        Dense, or a sparse CSR matrix: the first step (or the noising, with
        ``sampling_steps > 0``) then reads only its stored entries, and, when the chain starts
        from the clean rows, the first step's first layer multiplies only those. Never
        written to.
    randn : callable, optional
        ``randn(shape)`` returns standard normal noise; required when ``sampling_steps > 0`` or
        ``sampling_noise``.
    matmul_dtype : torch.dtype, optional
        The dtype of the denoiser's dense products (see :class:`Denoiser`); the chain itself
        stays in ``x0``'s dtype.

    Returns
    -------
    Tensor of shape (batch, n_items)
    """
    was_training = denoiser.training
    denoiser.eval()
    try:
        x = x0
        batch = x0.shape[0]
        if (sampling_steps > 0 or sampling_noise) and randn is None:
            raise ValueError("sampling_steps > 0 or sampling_noise needs a noise source.")
        if sampling_steps > 0:
            t0 = torch.full((batch,), sampling_steps - 1, dtype=torch.int64, device=x0.device)
            x = q_sample(schedule, x, t0, randn(tuple(x.shape)))
        # Each step's x_{t−1}, in place; x0 is never written to.
        chain = torch.empty(tuple(x0.shape), dtype=x0.dtype, device=x0.device)
        for step in reversed(range(schedule.steps)):
            t = torch.full((batch,), step, dtype=torch.int64, device=x0.device)
            noise = randn(tuple(x.shape)) if sampling_noise else None
            x0_pred = denoiser(x, t, matmul_dtype=matmul_dtype)
            x = reverse_step(schedule, x0_pred, x, t, noise, out=chain)
        return x
    finally:
        denoiser.train(was_training)


def denoiser_user_scores(
    denoisers: list[Denoiser],
    fusion_weights: torch.Tensor,
    schedule: DiffusionSchedule,
    histories: sp.csr_matrix,
    *,
    sampling_steps: int = 0,
    sampling_noise: bool = False,
    randn: Callable[[tuple[int, ...]], torch.Tensor] | None = None,
) -> np.ndarray:
    """Scores of every item for new users: each modality's denoised row, fused.

    ``Σ_m w_m·x̂_m`` with ``x̂_m`` the reverse process of modality ``m``'s denoiser run from the
    user's interaction row (as in graph generation) and ``w`` the softmaxed fusion weights.

    Parameters
    ----------
    denoisers : list of Denoiser
        One per modality, in the order of ``fusion_weights``.
    fusion_weights : Tensor of shape (n_modalities,)
        Softmaxed.
    histories : csr_matrix of shape (n_users, n_items)
        Binary interaction rows over the items the denoisers were trained on; read sparse.

    Returns
    -------
    ndarray of shape (n_users, n_items), float32
    """
    x0 = csr_rows(histories)
    total = sum(
        fusion_weights[m]
        * denoise_rows(
            denoiser,
            schedule,
            x0,
            sampling_steps=sampling_steps,
            sampling_noise=sampling_noise,
            randn=randn,
        )
        for m, denoiser in enumerate(denoisers)
    )
    return total.numpy()
