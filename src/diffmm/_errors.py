"""The package's exception types, in one place (the public ones are exported by ``diffmm``)."""

from __future__ import annotations

from typing import Any

__all__ = ["InvalidInputError", "ModelFileError", "NonFiniteLossError", "UnknownIdError"]


class InvalidInputError(ValueError, TypeError):
    """Input that fails one of the package's checks: a hyper-parameter, data or an argument.

    A ``ValueError`` (and, for values of the wrong type, a ``TypeError``), so ``except
    ValueError`` catches it too; its message names the problem and what to do.
    """


class UnknownIdError(InvalidInputError):
    """A user or item id that the fitted model does not know."""


class ModelFileError(ValueError):
    """A file is not a readable diffmm model or checkpoint (corrupted, wrong kind, too new)."""


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite during training.

    ``fit`` leaves the estimator as it was before the call. ``model`` is a fitted copy with
    the weights of the best epoch so far (``None`` when no epoch had completed), ``history``
    the per-epoch records up to the failure and ``snapshot`` the training loop's copy of
    those weights.
    """

    def __init__(self, message: str, snapshot: Any = None, history: Any = None) -> None:
        super().__init__(message)
        self.snapshot = snapshot
        self.history = history or []
        self.model: Any = None
