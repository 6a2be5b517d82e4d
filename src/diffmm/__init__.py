"""diffmm: the DiffMM multi-modal diffusion recommender as a scikit-learn style estimator."""

from ._persistence import ModelFileError
from ._training import NonFiniteLossError
from ._validation import UnknownIdError
from ._version import __version__
from .baselines import LightGCNRecommender, PopularityRecommender
from .estimator import PRESETS, DiffMMRecommender

__all__ = [
    "PRESETS",
    "DiffMMRecommender",
    "LightGCNRecommender",
    "ModelFileError",
    "NonFiniteLossError",
    "PopularityRecommender",
    "UnknownIdError",
    "__version__",
]
