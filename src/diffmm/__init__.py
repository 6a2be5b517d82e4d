"""diffmm: the DiffMM multi-modal diffusion recommender as a scikit-learn style estimator."""

from ._errors import InvalidInputError, ModelFileError, NonFiniteLossError, UnknownIdError
from ._version import __version__
from .baselines import LightGCNRecommender, PopularityRecommender
from .estimator import PRESETS, DiffMMRecommender

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
