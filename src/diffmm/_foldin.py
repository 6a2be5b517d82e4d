"""Folding new users into fitted factors, with NumPy and SciPy only (no torch).

Shared by the estimators' ``recommend_new_users(method="propagation")`` and the serving model.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["propagation_user_factors"]


def propagation_user_factors(
    histories: sp.csr_matrix, item_factors: np.ndarray, item_degrees: np.ndarray
) -> np.ndarray:
    """One hop of symmetric-normalised propagation from a user's items to the user.

    What the graph encoder's propagation does for a user node ``u`` with history ``H``
    (self-loops included in the degrees): ``Σ_{i∈H} e_i / sqrt((|H|+1)(d_i+1))``.

    Parameters
    ----------
    histories : csr_matrix of shape (n_users, n_items)
        Binary interaction rows.
    item_factors : ndarray of shape (n_items, dim)
        The fitted items' output embeddings.
    item_degrees : ndarray of shape (n_items,)
        Training degrees of the items.

    Returns
    -------
    ndarray of shape (n_users, dim)
    """
    weighted = item_factors / np.sqrt(item_degrees + 1.0)[:, None]
    user_degree = np.asarray(histories.sum(axis=1)).reshape(-1, 1)
    return np.asarray(histories @ weighted) / np.sqrt(user_degree + 1.0)
