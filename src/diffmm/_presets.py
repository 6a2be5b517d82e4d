"""Named settings of :class:`~diffmm.DiffMMRecommender` for known data sets.

Kept apart from the estimator so that the command line lists them without importing torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS"]

PRESETS: dict[str, dict[str, Any]] = {
    "tiktok": {
        "l2_weight": 1e-4,
        "contrastive_weight": 1e-2,
        "epochs": 50,
        "projection": "linear",
        "alignment_weight": 0.1,
        "contrastive": "main_modal",
    },
    # Best settings found on TikTok's validation split (docs: Accuracy on real data): the SPEC's
    # TikTok settings with the generated graphs weighted 0.5 instead of 0.2.
    "tiktok-tuned": {
        "l2_weight": 1e-4,
        "contrastive_weight": 1e-2,
        "epochs": 50,
        "projection": "linear",
        "alignment_weight": 0.1,
        "contrastive": "main_modal",
        "generated_graph_weight": 0.5,
    },
    "amazon-baby": {
        "l2_weight": 1e-5,
        "contrastive_weight": 1e-1,
        "edge_keep_rate": 1.0,
        "alignment_weight": 0.01,
    },
    "amazon-sports": {
        "l2_weight": 1e-6,
        "contrastive_weight": 1e-2,
        "temperature": 0.1,
        "residual_weight": 0.1,
        "alignment_weight": 0.5,
        "edge_keep_rate": 1.0,
        "projection": "linear",
    },
}
"""Named settings; use with :meth:`DiffMMRecommender.from_preset` (see the model page)."""
