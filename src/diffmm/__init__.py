"""diffmm: the DiffMM multi-modal diffusion recommender as a scikit-learn style estimator.

The estimators are imported on first use, so that ``diffmm.serving`` and ``diffmm --help``
start without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import InvalidInputError, ModelFileError, NonFiniteLossError, UnknownIdError
from ._presets import PRESETS
from ._version import __version__

if TYPE_CHECKING:
    from .baselines import LightGCNRecommender, PopularityRecommender
    from .estimator import DiffMMRecommender

__all__ = [
    "PRESETS",
    "DiffMMRecommender",
    "InvalidInputError",
    "LightGCNRecommender",
    "ModelFileError",
    "NonFiniteLossError",
    "PopularityRecommender",
    "UnknownIdError",
    "__version__",
]

_LAZY = {
    "DiffMMRecommender": "estimator",
    "LightGCNRecommender": "baselines",
    "PopularityRecommender": "baselines",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'diffmm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
