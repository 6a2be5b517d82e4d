"""Baseline recommenders with the same API and evaluation as :class:`DiffMMRecommender`."""

from __future__ import annotations

import numbers
from typing import Any, Literal

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ._base import BaseRecommender
from ._factor_model import FactorRecommender, modules_for_loading
from ._graph import adjacency_from_matrix
from ._model import LightGCNNetwork
from ._objectives import LightGCNObjective
from ._persistence import FileState
from ._training import Trainer
from ._validation import Interval

__all__ = ["LightGCNRecommender", "PopularityRecommender"]


class PopularityRecommender(BaseRecommender):
    """Recommend the items with the most training interactions to everyone.

    Ties are broken by the lower item index. Item features, when given to :meth:`fit`, only
    define the item universe (cold items get popularity 0).

    Parameters
    ----------
    user_col, item_col : str, default="user", "item"
        Column names when interactions come as a DataFrame.
    weight_col : str or None, default="weight"
        Weight column of DataFrame input, used when present (weights are binarised).

    Attributes
    ----------
    popularity_ : ndarray of shape (n_items,)
        Number of distinct training users of each item.
    user_ids_, item_ids_ : ndarray
        Raw ids of the fitted users and items, by index.

    Examples
    --------
    >>> import numpy as np
    >>> from diffmm.baselines import PopularityRecommender
    >>> X = np.array([[0, 0], [1, 0], [1, 1], [2, 2]])
    >>> model = PopularityRecommender().fit(X)
    >>> model.recommend([2], n=2)[0]
    array([[0, 1]])
    """

    def __init__(
        self, *, user_col: str = "user", item_col: str = "item", weight_col: str | None = "weight"
    ) -> None:
        self.user_col = user_col
        self.item_col = item_col
        self.weight_col = weight_col

    def fit(self, interactions: Any, modality_features: Any = None) -> PopularityRecommender:
        """Count each item's training users.

        Parameters
        ----------
        interactions : DataFrame, array-like of shape (n_interactions, 2 or 3) or sparse matrix
            Training interactions.
        modality_features : mapping, optional
            Only used to define the item universe.

        Returns
        -------
        self
        """
        return self._transaction(lambda model: model._fit(interactions, modality_features))

    def _fit(self, interactions: Any, modality_features: Any) -> None:
        self._prepare_fit(interactions, modality_features)
        self.popularity_ = np.asarray(self.interactions_.sum(axis=0), dtype=np.float64).ravel()

    def _fitted_state(self) -> dict[str, Any]:
        return {**super()._fitted_state(), "popularity_": self.popularity_}

    def _set_fitted_state(self, state: FileState) -> None:
        super()._set_fitted_state(state)
        self.popularity_ = state.array(
            "popularity_", ndim=1, shape=(self.n_items_,), finite=True, non_negative=True
        ).astype(np.float64)

    def _score_block(self, user_indices: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        check_is_fitted(self)
        return np.broadcast_to(self.popularity_, (len(user_indices), self.n_items_)).copy()

    def _score_pairs(self, user_indices: np.ndarray, item_indices: np.ndarray) -> np.ndarray:
        return self.popularity_[item_indices]


class LightGCNRecommender(FactorRecommender):
    """LightGCN (He et al., SIGIR 2020): collaborative filtering by graph smoothing of IDs.

    User and item embeddings ``E`` are propagated over the symmetrically normalised
    interaction graph without self-loops, ``A = D^-1/2 B D^-1/2`` with
    ``B = [[0, R], [Rᵀ, 0]]``, and the layers are averaged: ``(1/(L+1)) Σ_{l=0..L} A^l·E``.
    Scores are dot products of the result. It is trained by the same loop as
    :class:`~diffmm.DiffMMRecommender` (BPR with one uniformly sampled negative per
    interaction, Adam, validation with early stopping), so the two compare on equal terms; it
    uses no modality features. Its L2 term is LightGCN's own: on the batch's ego embeddings,
    ``λ_reg·(‖e_u‖² + ‖e_i‖² + ‖e_j‖²)/(2·batch)`` (DiffMM's acts on the whole tables).

    Parameters
    ----------
    embedding_dim : int, default=64
        Size ``D`` of the user and item embeddings.
    n_layers : int, default=3
        Propagation layers ``L`` (0: plain matrix factorisation with BPR).
    l2_weight : float, default=1e-4
        ``λ_reg`` on the batch's ego embeddings (LightGCN's default).
    epochs : int, default=50
        Training epochs (passes over all training interactions).
    batch_size : int, default=1024
        Interactions per optimisation step.
    learning_rate : float, default=1e-3
        Adam learning rate.
    eval_every : int, default=1
        Evaluate on ``validation_data`` every this many epochs.
    early_stopping_metric : str, default="recall"
        A metric name from :data:`diffmm.metrics.METRICS` used to select the best epoch.
    early_stopping_k : int, default=20
        Cut-off of ``early_stopping_metric``.
    patience : int or None, default=10
        Stop after this many evaluations without improvement (``None``: never stop early; the
        best epoch is still restored).
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available, else the CPU.
    random_state : int, numpy.random.Generator or None, default=None
        Seeds initialisation, shuffling and negative sampling.
    verbose : bool, default=False
        Show progress bars (epochs, and the batches of each epoch with the running losses);
        either way each epoch's record goes to the ``"diffmm"`` logger.
    callbacks : list, optional
        Called after every epoch (see :class:`~diffmm.callbacks.Callback`).
    user_balance : float, default=0.0
        How the (user, item) pairs are drawn: 0, every interaction once per epoch; above 0,
        as many pairs with users weighted by ``deg(u)^(1 − user_balance)`` (1: uniform over
        users), as in :class:`~diffmm.DiffMMRecommender`.
    negative_candidates : int, default=1
        Negatives drawn per pair; above 1 the highest-scoring of them is used.
    learning_rate_schedule : {"constant", "cosine"}, default="constant"
        ``"cosine"`` lowers the learning rate each epoch from ``learning_rate`` towards 0
        over the ``epochs`` budget, as in :class:`~diffmm.DiffMMRecommender`.
    user_col, item_col, weight_col : str
        Column names for DataFrame input.

    Attributes
    ----------
    user_ids_, item_ids_ : ndarray
        Raw ids of the fitted users and items, by index.
    user_factors_ : ndarray of shape (n_users, embedding_dim)
    item_factors_ : ndarray of shape (n_items, embedding_dim)
        The layer-averaged embeddings; scores are their dot products.
    network_ : LightGCNNetwork
        The trained embedding tables (on the CPU).
    history_ : list of dict
        Per epoch: ``loss_bpr``, ``loss_l2``, ``loss_contrastive`` (always 0),
        ``seconds_recommender`` and, with validation data, ``validation_score``.
    best_epoch_ : int
        The epoch whose weights were kept.
    stopped_early_, interrupted_ : bool
        Whether training stopped on patience, or on ``KeyboardInterrupt`` (Ctrl-C), which
        keeps the best weights so far and warns.
    device_ : torch.device
        The device training ran on.

    Examples
    --------
    >>> from diffmm.baselines import LightGCNRecommender
    >>> from diffmm.datasets import make_synthetic
    >>> data = make_synthetic(n_users=60, n_items=40, random_state=0)
    >>> model = LightGCNRecommender(epochs=3, embedding_dim=16, random_state=0)
    >>> model = model.fit(data.train, validation_data=data.validation)
    >>> ids, scores = model.recommend([0, 1], n=5)
    >>> ids.shape
    (2, 5)
    >>> len(model.history_)
    3
    """

    _progress_name = "LightGCN"
    _parameter_constraints: dict[str, list] = {
        "n_layers": [Interval(numbers.Integral, 0, None)],
    }

    def __init__(
        self,
        *,
        embedding_dim: int = 64,
        n_layers: int = 3,
        l2_weight: float = 1e-4,
        epochs: int = 50,
        batch_size: int = 1024,
        learning_rate: float = 1e-3,
        eval_every: int = 1,
        early_stopping_metric: str = "recall",
        early_stopping_k: int = 20,
        patience: int | None = 10,
        device: str | torch.device = "auto",
        random_state: int | np.random.Generator | None = None,
        verbose: bool = False,
        callbacks: list | None = None,
        user_balance: float = 0.0,
        negative_candidates: int = 1,
        learning_rate_schedule: Literal["constant", "cosine"] = "constant",
        user_col: str = "user",
        item_col: str = "item",
        weight_col: str | None = "weight",
    ) -> None:
        self.embedding_dim = embedding_dim
        self.n_layers = n_layers
        self.l2_weight = l2_weight
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.eval_every = eval_every
        self.early_stopping_metric = early_stopping_metric
        self.early_stopping_k = early_stopping_k
        self.patience = patience
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.user_balance = user_balance
        self.negative_candidates = negative_candidates
        self.learning_rate_schedule = learning_rate_schedule
        self.user_col = user_col
        self.item_col = item_col
        self.weight_col = weight_col

    def fit(
        self, interactions: Any, modality_features: Any = None, *, validation_data: Any = None
    ) -> LightGCNRecommender:
        """Train the model.

        Parameters
        ----------
        interactions : DataFrame, array-like of shape (n_interactions, 2 or 3) or sparse matrix
            Training interactions (binarised for the model).
        modality_features : mapping, optional
            Not used for learning; DataFrames indexed by raw item id only add items to the
            catalogue (cold items, which keep their initial embeddings).
        validation_data : DataFrame, array-like or sparse matrix, optional
            Held-out interactions; the model is evaluated on them every ``eval_every`` epochs,
            the best epoch's weights are kept and training stops after ``patience``
            evaluations without improvement.

        Returns
        -------
        self
        """
        return self._transaction(
            lambda model: model._fit(interactions, modality_features, validation_data)
        )

    def _fit(self, interactions: Any, modality_features: Any, validation_data: Any) -> None:
        self._prepare_fit(interactions, modality_features)
        self._check_memory((self.n_users_ + self.n_items_) * self.embedding_dim)
        held_out = self._validation_matrix(validation_data)
        device = self._resolve_device()
        rng, init_generator, _ = self._random_streams(device)
        network = LightGCNNetwork(
            self.n_users_,
            self.n_items_,
            embedding_dim=self.embedding_dim,
            n_layers=self.n_layers,
            generator=init_generator,
        )
        adjacency = adjacency_from_matrix(self.interactions_, device, self_loops=False)
        trainer = Trainer(
            LightGCNObjective(network.to(device), adjacency, l2_weight=self.l2_weight),
            self.interactions_,
            self._training_config(has_validation=held_out is not None),
            device=device,
            rng=rng,
            evaluate=self._validation_scorer(self.interactions_, held_out),
        )
        self.device_ = device
        self._run_trainer(trainer)

    def _fitted_state(self) -> dict[str, Any]:
        return {**super()._fitted_state(), "network": self.network_.state_dict()}

    def _set_fitted_state(self, state: FileState) -> None:
        super()._set_fitted_state(state)
        weights = state.tensor_dict("network")
        expected = (self.n_users_ + self.n_items_) * self.embedding_dim
        if sum(t.numel() for t in weights.values()) != expected:
            raise state.error("the weights do not have the sizes the settings give")
        with modules_for_loading():
            self.network_ = LightGCNNetwork(
                self.n_users_,
                self.n_items_,
                embedding_dim=self.embedding_dim,
                n_layers=self.n_layers,
            )
        try:
            self.network_.load_state_dict(weights)
        except RuntimeError as exc:  # missing, unexpected or misshapen weights
            raise state.error(f"weights that do not fit the settings ({exc})") from None
