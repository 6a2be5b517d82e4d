"""Gaussian-diffusion math of DiffMM, free of any network code.

In the style of diffusers' ``scheduling_ddpm.py``: the schedule is an immutable
table of float64 coefficients, and the functions below take tensors and return
tensors.  Nothing here calls a network or keeps training state.

The formulas, from model page §1 (schedule, forward process, posterior, SNR), §3 (loss weight)
and §4 (reverse step), labelled (D1)–(D7) here and cited in the code by those labels:

(D1) Schedule.  ``T`` steps (default 5), noise scale ``s`` (0.1), ``noise_min``
    (1e-4), ``noise_max`` (0.02).  ``v = linspace(s·noise_min, s·noise_max, T)``,
    ``ᾱ'_t = 1 − v_t``, ``β_0 = 1 − ᾱ'_0``,
    ``β_t = min(1 − ᾱ'_t/ᾱ'_{t−1}, 0.999)`` for ``t ≥ 1``; then ``β_0 := 1e-4``.
    Everything else derives from β: ``α_t = 1 − β_t``, ``ᾱ_t = Π_{k≤t} α_k``,
    ``ᾱ_{−1} = 1``.  Computed in float64.
(D2) Forward process: ``x_t = sqrt(ᾱ_t)·x_0 + sqrt(1 − ᾱ_t)·ε``.
(D3) Posterior q(x_{t−1} | x_t, x_0): mean ``c1_t·x_0 + c2_t·x_t`` with
    ``c1_t = β_t·sqrt(ᾱ_{t−1})/(1 − ᾱ_t)``,
    ``c2_t = (1 − ᾱ_{t−1})·sqrt(α_t)/(1 − ᾱ_t)``; variance
    ``β_t·(1 − ᾱ_{t−1})/(1 − ᾱ_t)`` (exactly 0 at ``t = 0``); the clipped log
    variance replaces the ``t = 0`` entry by the ``t = 1`` entry.  When
    ``T == 1`` there is no ``t = 1`` entry and the clipped log variance at
    ``t = 0`` is defined as ``log(β_0)`` (the DDPM "upper bound" variance).
(D4) ``SNR(t) = ᾱ_t/(1 − ᾱ_t)``.
(D5) Training loss weight for a sampled step ``t``: ``SNR(t−1) − SNR(t)``, and
    ``1`` where ``t = 0``.
(D6) Reverse step: ``x_{t−1} = c1_t·x̂_0 + c2_t·x_t``, plus
    ``exp(½·clipped log variance_t)·noise`` for rows with ``t > 0``, only when
    noise is supplied.
(D7) Validation: ``T ≥ 1`` integer, ``0 < noise_min < noise_max``,
    ``noise_scale > 0``, and all betas in (0, 1); otherwise ``ValueError``.
    Additionally ``noise_scale·noise_max < 1`` is required, because otherwise
    ``ᾱ'_t ≤ 0`` and the (D1) ratio stops being a variance ratio.

A note on (D3)/(D6) with a perfect denoiser: for a noise-free ``x_t = sqrt(ᾱ_t)·x_0``
and ``x̂_0 = x_0`` the posterior mean is exactly ``sqrt(ᾱ_{t−1})·x_0``, because
``β_t·sqrt(ᾱ_{t−1}) + (1 − ᾱ_{t−1})·sqrt(α_t)·sqrt(ᾱ_t)
= sqrt(ᾱ_{t−1})·(β_t + α_t − ᾱ_t) = sqrt(ᾱ_{t−1})·(1 − ᾱ_t)``.  In particular
``c1_0 = 1`` and ``c2_0 = 0``, so the last reverse step returns ``x̂_0``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
import torch

from ._sparse import add_csr_
from ._validation import Interval, check_scalar

__all__ = [
    "DiffusionSchedule",
    "loss_weight",
    "q_sample",
    "reverse_step",
    "snr",
]

MAX_BETA = 0.999  # (D1): cap on β_t for t ≥ 1
FIXED_BETA_0 = 1e-4  # (D1): β_0 is fixed to this value

#: Names of the public float64 coefficient arrays of a :class:`DiffusionSchedule`.
ARRAY_NAMES: tuple[str, ...] = (
    "betas",
    "alphas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
    "posterior_variance",
    "posterior_log_variance_clipped",
)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    a.flags.writeable = False
    return a


@dataclass(frozen=True)
class DiffusionSchedule:
    """Immutable float64 DiffMM noise schedule ((D1), (D3), (D4), (D5)).

    Parameters
    ----------
    steps : int, default 5
        Number of diffusion steps ``T`` (``>= 1``).
    noise_scale : float, default 0.1
        Noise scale ``s`` (``> 0``).
    noise_min, noise_max : float, default 1e-4, 0.02
        Range of the linear variance grid, ``0 < noise_min < noise_max`` and
        ``noise_scale * noise_max < 1``.

    Attributes
    ----------
    betas, alphas, alphas_cumprod, alphas_cumprod_prev : ndarray of shape (steps,)
        ``β_t``, ``α_t``, ``ᾱ_t`` and ``ᾱ_{t−1}`` (with ``ᾱ_{−1} = 1``).
    posterior_mean_coef1, posterior_mean_coef2 : ndarray of shape (steps,)
        ``c1_t`` and ``c2_t`` of the posterior mean ``c1_t·x_0 + c2_t·x_t``.
    posterior_variance : ndarray of shape (steps,)
        Posterior variance; exactly 0 at ``t = 0``.
    posterior_log_variance_clipped : ndarray of shape (steps,)
        Log posterior variance with the ``t = 0`` entry replaced by the
        ``t = 1`` entry (``log(β_0)`` when ``steps == 1``); always finite.

    All arrays are float64 and read-only.  Equality and hashing use the four
    constructor parameters only.

    Raises
    ------
    ValueError
        If a parameter is out of range ((D7)).

    Examples
    --------
    >>> sched = DiffusionSchedule(steps=5)
    >>> sched.steps, sched.betas.shape
    (5, (5,))
    >>> float(sched.betas[0])
    0.0001
    >>> bool(sched.posterior_variance[0] == 0.0)
    True
    """

    steps: int = 5
    noise_scale: float = 0.1
    noise_min: float = 1e-4
    noise_max: float = 0.02

    betas: np.ndarray = field(init=False, repr=False, compare=False)
    alphas: np.ndarray = field(init=False, repr=False, compare=False)
    alphas_cumprod: np.ndarray = field(init=False, repr=False, compare=False)
    alphas_cumprod_prev: np.ndarray = field(init=False, repr=False, compare=False)
    posterior_mean_coef1: np.ndarray = field(init=False, repr=False, compare=False)
    posterior_mean_coef2: np.ndarray = field(init=False, repr=False, compare=False)
    posterior_variance: np.ndarray = field(init=False, repr=False, compare=False)
    posterior_log_variance_clipped: np.ndarray = field(init=False, repr=False, compare=False)
    # Derived float64 tables used by the tensor functions, and a cache of their
    # tensor copies keyed by (name, dtype, device).  Constants only: no state.
    _tables: dict[str, np.ndarray] = field(init=False, repr=False, compare=False)
    _tensor_cache: dict[tuple[str, torch.dtype, torch.device], torch.Tensor] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        steps, scale, lo, hi = _validate_params(
            self.steps, self.noise_scale, self.noise_min, self.noise_max
        )
        set_ = object.__setattr__  # frozen dataclass
        set_(self, "steps", steps)
        set_(self, "noise_scale", scale)
        set_(self, "noise_min", lo)
        set_(self, "noise_max", hi)

        # (D1): linear variance grid and betas from consecutive ratios.
        v = np.linspace(scale * lo, scale * hi, steps, dtype=np.float64)
        alpha_bar_prime = 1.0 - v
        betas = np.empty(steps, dtype=np.float64)
        betas[0] = 1.0 - alpha_bar_prime[0]
        if steps > 1:
            betas[1:] = np.minimum(1.0 - alpha_bar_prime[1:] / alpha_bar_prime[:-1], MAX_BETA)
        betas[0] = FIXED_BETA_0  # (D1): β_0 fixed
        if not (np.all(np.isfinite(betas)) and np.all(betas > 0.0) and np.all(betas < 1.0)):
            bad = int(np.flatnonzero(~((betas > 0.0) & (betas < 1.0)))[0])
            raise ValueError(
                f"betas must lie in (0, 1); got betas[{bad}]={betas[bad]!r} for "
                f"steps={steps}, noise_scale={scale}, noise_min={lo}, noise_max={hi} "
                "(noise_min and noise_max are too close for this many steps)"
            )

        # (D1): everything else from β.
        alphas = 1.0 - betas
        alphas_cumprod = np.cumprod(alphas)
        alphas_cumprod_prev = np.concatenate([[1.0], alphas_cumprod[:-1]])  # ᾱ_{−1} = 1

        # (D3): posterior q(x_{t−1} | x_t, x_0).
        one_minus_ac = 1.0 - alphas_cumprod
        coef1 = betas * np.sqrt(alphas_cumprod_prev) / one_minus_ac
        coef2 = (1.0 - alphas_cumprod_prev) * np.sqrt(alphas) / one_minus_ac
        post_var = betas * (1.0 - alphas_cumprod_prev) / one_minus_ac  # exactly 0 at t=0
        # (D3): clip by replacing the (log 0) t=0 entry with the t=1 entry;
        # for steps == 1 use log(β_0) (documented choice).
        first = post_var[1] if steps > 1 else betas[0]
        post_log_var = np.log(np.concatenate([[first], post_var[1:]]))

        # (D4) / (D5): SNR and loss weights (computed in float64 to avoid
        # cancellation in SNR(t−1) − SNR(t)).
        snr_table = alphas_cumprod / one_minus_ac
        weights = np.ones(steps, dtype=np.float64)
        weights[1:] = snr_table[:-1] - snr_table[1:]

        arrays = {
            "betas": betas,
            "alphas": alphas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": alphas_cumprod_prev,
            "posterior_mean_coef1": coef1,
            "posterior_mean_coef2": coef2,
            "posterior_variance": post_var,
            "posterior_log_variance_clipped": post_log_var,
        }
        for name, arr in arrays.items():
            set_(self, name, _frozen(arr))
        tables = {name: getattr(self, name) for name in ARRAY_NAMES}
        tables["sqrt_alphas_cumprod"] = _frozen(np.sqrt(alphas_cumprod))  # (D2)
        tables["sqrt_one_minus_alphas_cumprod"] = _frozen(np.sqrt(one_minus_ac))  # (D2)
        tables["posterior_std_clipped"] = _frozen(np.exp(0.5 * post_log_var))  # (D6)
        tables["snr"] = _frozen(snr_table)
        tables["loss_weights"] = _frozen(weights)
        set_(self, "_tables", tables)
        set_(self, "_tensor_cache", {})

    def __reduce__(self) -> tuple[type[DiffusionSchedule], tuple[int, float, float, float]]:
        # Pickle/copy by parameters only: arrays are recomputed, device tensor cache dropped.
        return (type(self), (self.steps, self.noise_scale, self.noise_min, self.noise_max))

    def _coef(self, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (name, dtype, device)
        cached = self._tensor_cache.get(key)
        if cached is None:
            # float64 -> target dtype conversion happens once, from float64.
            cached = torch.tensor(self._tables[name], dtype=dtype, device=device)
            self._tensor_cache[key] = cached
        return cached


# ---------------------------------------------------------------------------
# Tensor functions
# ---------------------------------------------------------------------------


def _check_t(schedule: DiffusionSchedule, t: torch.Tensor, batch: int | None) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t must be an integer torch.Tensor, got {type(t).__name__}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"t must be an integer tensor (e.g. torch.long), got {t.dtype}")
    if batch is not None and (t.ndim != 1 or t.shape[0] != batch):
        raise ValueError(f"t must have shape (batch,) = ({batch},), got {tuple(t.shape)}")
    # Range check only where it costs no device synchronisation; one reduction for both ends.
    if t.device.type == "cpu" and t.numel():
        low, high = torch.aminmax(t)
        if low.item() < 0 or high.item() >= schedule.steps:
            raise ValueError(f"t must lie in [0, {schedule.steps}) (steps={schedule.steps})")


def _check_x(name: str, x: torch.Tensor, like: torch.Tensor | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    if x.ndim < 1:
        raise ValueError(f"{name} must have a leading batch axis, got a 0-d tensor")
    if like is not None and (x.shape != like.shape or x.dtype != like.dtype):
        raise ValueError(
            f"{name} must match x in shape and dtype: got {tuple(x.shape)}/{x.dtype}, "
            f"expected {tuple(like.shape)}/{like.dtype}"
        )


def _gather(
    schedule: DiffusionSchedule, name: str, t: torch.Tensor, like: torch.Tensor
) -> torch.Tensor:
    """Per-row coefficient ``table[t]`` shaped ``(batch, 1, ..., 1)`` like ``like``."""
    table = schedule._coef(name, like.dtype, like.device)
    out = table[t.to(device=like.device, dtype=torch.long)]
    return out.reshape(t.shape[0], *([1] * (like.ndim - 1)))


def q_sample(
    schedule: DiffusionSchedule,
    x0: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Forward diffusion ``x_t = sqrt(ᾱ_t)·x_0 + sqrt(1 − ᾱ_t)·ε`` ((D2)).

    Parameters
    ----------
    schedule : DiffusionSchedule
    x0 : Tensor of shape (batch, ...)
        Clean inputs, e.g. (batch, n_items) interaction rows; any float dtype. A sparse CSR
        matrix of shape (batch, n_items) is read at its entries only (a pass over them instead
        of one over every element of a dense copy), with the same result.
    t : LongTensor of shape (batch,)
        Step per row, in ``[0, steps)``.
    noise : Tensor, same shape and dtype as x0
        Caller-supplied noise ε (dense).
    out : Tensor, same shape and dtype as x0, optional
        Where to write the result (dense); may be ``noise`` itself (not ``x0``), which then
        needs no new (batch, ...) tensor.

    Returns
    -------
    Tensor, same shape, dtype and device as x0, dense

    Examples
    --------
    >>> s = DiffusionSchedule()
    >>> x0 = torch.ones(2, 3)
    >>> xt = q_sample(s, x0, torch.tensor([0, 4]), torch.zeros(2, 3))
    >>> xt.shape
    torch.Size([2, 3])
    """
    _check_x("x0", x0)
    _check_x("noise", noise, like=x0)
    if out is not None:
        _check_x("out", out, like=x0)
        if out is x0:
            raise ValueError("q_sample reads x0 after writing out: pass noise or a new tensor.")
    _check_t(schedule, t, x0.shape[0])
    a = _gather(schedule, "sqrt_alphas_cumprod", t, x0)
    b = _gather(schedule, "sqrt_one_minus_alphas_cumprod", t, x0)
    x_t = torch.mul(noise, b, out=out)  # (D2): b·ε + a·x0
    if x0.layout == torch.sparse_csr:
        return add_csr_(x_t, x0, row_scale=a)
    return x_t.addcmul_(a, x0)


def reverse_step(
    schedule: DiffusionSchedule,
    x0_pred: torch.Tensor,
    x_t: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor | None = None,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """One reverse (denoising) step ``x_t -> x_{t−1}`` ((D6)).

    ``x_{t−1} = c1_t·x̂_0 + c2_t·x_t``, plus
    ``exp(½·posterior_log_variance_clipped_t)·noise`` on rows with ``t > 0``
    when ``noise`` is given.  Rows with ``t = 0`` return ``x̂_0`` exactly
    (``c1_0 = 1``, ``c2_0 = 0``).

    Parameters
    ----------
    schedule : DiffusionSchedule
    x0_pred : Tensor of shape (batch, ...)
        Network prediction x̂_0; any float dtype.
    x_t : Tensor, same shape and dtype as x0_pred
        Current state at step ``t``. A sparse CSR matrix of shape (batch, n_items) (the
        interaction rows a chain starts from) is read at its entries only.
    t : LongTensor of shape (batch,)
        Step per row, in ``[0, steps)``.
    noise : Tensor, same shape and dtype as x_t, optional
        Standard normal noise; ``None`` (default) gives the deterministic
        posterior mean, as DiffMM uses for graph generation.
    out : Tensor, same shape and dtype as x_t, optional
        Where to write the result (dense); may be ``x_t`` itself (the step then needs no new
        (batch, ...) tensor). ``x0_pred`` may then be of a lower-precision float dtype; it is
        read as ``x_t``'s dtype.

    Returns
    -------
    Tensor, same shape, dtype and device as x_t, dense

    Examples
    --------
    >>> s = DiffusionSchedule()
    >>> x0 = torch.rand(2, 4, dtype=torch.float64)
    >>> t = torch.tensor([4, 4])
    >>> xt = q_sample(s, x0, t, torch.zeros_like(x0))
    >>> x_prev = reverse_step(s, x0, xt, t)  # perfect denoiser
    >>> torch.allclose(x_prev, float(s.alphas_cumprod_prev[4]) ** 0.5 * x0)
    True
    """
    _check_x("x0_pred", x0_pred)
    if out is None:
        _check_x("x_t", x_t, like=x0_pred)
    else:
        _check_x("x_t", x_t)
        _check_x("out", out, like=x_t)
        if x0_pred.shape != x_t.shape or x0_pred.device != x_t.device:
            raise ValueError(
                f"x0_pred must match x_t in shape and device; got {tuple(x0_pred.shape)} on "
                f"{x0_pred.device} and {tuple(x_t.shape)} on {x_t.device}."
            )
    _check_t(schedule, t, x_t.shape[0])
    c1 = _gather(schedule, "posterior_mean_coef1", t, x_t)
    c2 = _gather(schedule, "posterior_mean_coef2", t, x_t)
    if x_t.layout == torch.sparse_csr:  # (D6), c2_t·x_t added at x_t's entries only
        out = add_csr_(torch.mul(x0_pred, c1, out=out), x_t, row_scale=c2)
    elif out is None:
        out = c1 * x0_pred + c2 * x_t  # (D6)
    else:  # the same products and sum (up to one rounding), without temporaries
        torch.mul(x_t, c2, out=out).addcmul_(c1, x0_pred)
    if noise is not None:
        _check_x("noise", noise, like=x_t)
        std = _gather(schedule, "posterior_std_clipped", t, x_t)
        nonzero = (t.to(x_t.device) > 0).reshape(std.shape).to(x_t.dtype)  # (D6): t > 0 only
        out.addcmul_(nonzero * std, noise)
    return out


def snr(
    schedule: DiffusionSchedule, t: torch.Tensor, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Signal-to-noise ratio ``ᾱ_t/(1 − ᾱ_t)`` per step ((D4)).

    Parameters
    ----------
    schedule : DiffusionSchedule
    t : integer Tensor, any shape
        Steps in ``[0, steps)``.
    dtype : torch.dtype, default torch.float32
        Floating dtype of the result (cast from float64).

    Returns
    -------
    Tensor, same shape as t, on t.device

    Examples
    --------
    >>> snr(DiffusionSchedule(), torch.tensor([0, 4])).shape
    torch.Size([2])
    """
    _check_t(schedule, t, None)
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    return schedule._coef("snr", dtype, t.device)[t.long()]


def loss_weight(
    schedule: DiffusionSchedule, t: torch.Tensor, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Training loss weight ``SNR(t−1) − SNR(t)``, 1 where ``t = 0`` ((D5)).

    The difference is taken in float64 before casting to ``dtype``.

    Parameters
    ----------
    schedule : DiffusionSchedule
    t : integer Tensor, any shape
        Sampled steps in ``[0, steps)``.
    dtype : torch.dtype, default torch.float32
        Floating dtype of the result.

    Returns
    -------
    Tensor, same shape as t, on t.device

    Examples
    --------
    >>> loss_weight(DiffusionSchedule(), torch.tensor([0]))
    tensor([1.])
    """
    _check_t(schedule, t, None)
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    return schedule._coef("loss_weights", dtype, t.device)[t.long()]


# ---------------------------------------------------------------------------
# Validation ((D7))
# ---------------------------------------------------------------------------


def _validate_params(
    steps: object, noise_scale: object, noise_min: object, noise_max: object
) -> tuple[int, float, float, float]:
    steps_i = check_scalar(steps, "steps", Interval(numbers.Integral, 1, None))
    scale = check_scalar(noise_scale, "noise_scale", Interval(numbers.Real, 0, None, "neither"))
    lo = check_scalar(noise_min, "noise_min", Interval(numbers.Real, None, None))
    hi = check_scalar(noise_max, "noise_max", Interval(numbers.Real, None, None))
    if lo <= 0.0:
        raise ValueError(f"noise_min must satisfy 0 < noise_min < noise_max, got noise_min={lo}")
    if hi <= lo:
        raise ValueError(
            "noise_max must satisfy 0 < noise_min < noise_max: noise_min "
            f"({lo}) must be smaller than noise_max ({hi})."
        )
    if scale * hi >= 1.0:
        raise ValueError(
            "noise_scale * noise_max must be < 1 (so that 1 - variance stays positive), "
            f"got noise_scale={scale}, noise_max={hi}"
        )
    return steps_i, scale, lo, hi
