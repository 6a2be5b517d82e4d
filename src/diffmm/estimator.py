"""``DiffMMRecommender``: the scikit-learn estimator around the DiffMM model.

Parameters in, validation at the top of ``fit``, fitted state out. ``fit`` wires the parts
together: the torch modules (``_model``), the diffusion phases (``_diffusion_phases``), the
model's objective (``_objectives``) and the epoch loop (``_training``), with checkpoints from
``_checkpoint``; fold-in of new users is in ``_inference``.
"""

from __future__ import annotations

import itertools
import logging
import numbers
import warnings
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils.validation import check_is_fitted

from ._checkpoint import (
    check_folder,
    fingerprint,
    pop_features,
    read_checkpoint,
    write_checkpoint,
)
from ._diffusion_phases import DiffusionConfig, DiffusionPhases
from ._errors import InvalidInputError, ModelFileError
from ._factor_model import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    FactorRecommender,
    modules_for_loading,
)
from ._foldin import propagation_user_factors
from ._graph import adjacency_from_matrix
from ._inference import denoiser_user_scores
from ._model import Denoiser, DiffMMNetwork, NetworkConfig
from ._objectives import DiffMMObjective
from ._persistence import FileState, check_array
from ._presets import PRESETS
from ._ranking import long_frame
from ._training import Snapshot, Trainer, TrainingResult
from ._validation import (
    Interval,
    Options,
    Predicate,
    check_histories,
    check_new_items,
)
from .diffusion import DiffusionSchedule

__all__ = ["PRESETS", "DiffMMRecommender"]

logger = logging.getLogger("diffmm")


def _int_tuple(value: Any) -> bool:
    return (
        isinstance(value, (tuple, list))
        and len(value) >= 1
        and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in value
        )
    )


class DiffMMRecommender(FactorRecommender):
    """Multi-modal graph-diffusion recommender (DiffMM), as a scikit-learn estimator.

    Per epoch, one Gaussian-diffusion denoiser per modality learns to reconstruct users'
    interaction rows (with a loss that aligns them with the modality's item embeddings), the
    denoisers generate one user–item graph per modality, and a graph encoder over the
    interaction graph, the modality features and the generated graphs is trained with BPR, L2
    and cross-modal InfoNCE. See the model page of the docs for the equations.

    Parameters
    ----------
    embedding_dim : int, default=64
        Size ``D`` of user, item and projected modality embeddings.
    projection : {"matrix", "linear"}, default="matrix"
        Modality projection: a bias-free matrix with LeakyReLU(0.2), or a linear layer.
    n_layers : int, default=1
        Graph propagation layers ``L``.
    residual_weight : float, default=0.5
        ``λ_ris``, weight of the normalised fused modality embedding added to the output.
    generated_graph_weight : float, default=0.2
        ``λ_adj``, weight of the generated graphs' message in each modality.
    diffusion_steps : int, default=5
        Diffusion steps ``T``.
    noise_scale, noise_min, noise_max : float, default=0.1, 1e-4, 0.02
        The noise schedule.
    sampling_steps : int, default=0
        Noise the interaction row to step ``sampling_steps − 1`` before generating (0: start
        from the clean row).
    sampling_noise : bool, default=False
        Add posterior noise in the reverse steps of graph generation.
    denoiser_hidden_dims : tuple of int, default=(1000,)
        Hidden layer sizes of each denoiser.
    time_embedding_dim : int, default=10
        Size of the denoiser's time embedding.
    denoiser_dropout : float, default=0.5
        Input dropout of the denoisers during training.
    normalize_denoiser_input : bool, default=False
        L2-normalise the denoiser's input row.
    denoiser_learning_rate : float, default=1e-3
        Adam learning rate of the denoisers.
    precision : {"fp32", "bf16"}, default="fp32"
        Precision of the denoisers' dense matrix products in training and graph generation.
        ``"bf16"`` runs them in bfloat16 (their inputs and weights cast to it, as autocast
        would; weights, optimiser state and losses stay float32), several times faster on
        CPUs with AVX-512 BF16/AMX and on recent GPUs; see the performance page for its
        measured effect on accuracy.
    alignment_weight : float, default=0.1
        ``λ_msi``, weight of the modality-aware signal-injection loss (0 disables it).
    graph_top_k : int, default=1
        Items per user kept as edges of each generated graph.
    edge_keep_rate : float, default=0.5
        Probability of keeping each generated edge per epoch (1: no dropout).
    generate_graphs : bool, default=True
        ``False`` skips the diffusion part entirely: no denoisers, no generated-graph message,
        and the contrastive views are built on the interaction graph instead.
    contrastive : {"modal_modal", "main_modal"} or None, default="modal_modal"
        Cross-modal contrastive scheme: every pair of modality views, or the encoder output
        against each modality view; ``None`` disables the contrastive loss.
    contrastive_weight : float, default=1e-2
        ``λ_cl``.
    temperature : float, default=0.5
        InfoNCE temperature ``τ``.
    l2_weight : float, default=1e-5
        ``λ_reg`` on the ID embedding tables.
    epochs : int, default=50
        Training epochs (each: denoiser step, graph generation, recommender step).
    batch_size : int, default=1024
        Users per denoiser batch and interactions per recommender batch.
    learning_rate : float, default=1e-3
        Adam learning rate of the recommender.
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
        Seeds initialisation, shuffling, negative sampling, diffusion noise and dropout.
    verbose : bool, default=False
        Show progress bars: epochs, and within each epoch the current phase's batches with
        its running losses and the last validation score. Either way each epoch's record goes
        to the ``"diffmm"`` logger.
    callbacks : list, optional
        Called after every epoch (see :class:`~diffmm.callbacks.Callback`): record metrics
        (:class:`~diffmm.callbacks.TrackMetrics`), or stop training by returning ``True``
        (the best epoch's weights are kept).
    checkpoint_dir : str or Path, optional
        Write a checkpoint (weights, optimiser state, random streams, history) to
        ``checkpoint_dir/checkpoint.diffmm`` every ``checkpoint_every`` epochs and after the last;
        ``fit(..., resume_from=checkpoint_dir)`` continues from it.
    checkpoint_every : int, default=1
        Epochs between checkpoints when ``checkpoint_dir`` is set.
    copy_features : bool, default=True
        Keep the model's own float32 copy of the modality features once ``fit`` returns.
        Training reads the caller's arrays in place when they already are float32, 2-D and
        C-contiguous (memory-mapped ``.npy`` files included) and never writes them; the copy is
        taken at the end, when the optimiser state is gone, so it does not raise the peak.
        ``False`` keeps the reference afterwards, which saves the features' size in memory on
        large catalogues; the fitted model then holds those arrays, so do not modify them.
        Other inputs are converted to a float32 copy either way.
    user_balance : float, default=0.0
        How the recommender step draws its (user, item) pairs. 0: every training interaction
        once per epoch, in random order (the published model). Above 0: as many pairs drawn
        with replacement, user ``u`` with probability proportional to ``deg(u)^(1 −
        user_balance)`` and then one of their items uniformly; 1 draws users uniformly, so
        users with few interactions get as much of the gradient as heavy users.
    negative_candidates : int, default=1
        Negatives drawn per pair; above 1 the highest-scoring of them is used (hard
        negatives).
    learning_rate_schedule : {"constant", "cosine"}, default="constant"
        The recommender's learning rate per epoch. ``"cosine"``: epoch ``e`` of ``epochs``
        uses ``learning_rate · (1 + cos(π (e − 1) / epochs)) / 2``, from ``learning_rate``
        down towards 0, so late epochs refine rather than wander. The denoisers keep
        ``denoiser_learning_rate``.
    cold_items : {"id", "features"}, default="id"
        ``"features"``: items without a training interaction have no ID embedding (they are
        represented by their features, as items added with :meth:`add_items` are) and are
        never sampled as negatives.
    score_undropped_graphs : bool, default=False
        Evaluate and compute the fitted factors with the generated graphs before edge dropout
        (their expected value, since kept edges are scaled by ``1/edge_keep_rate``) instead of
        the epoch's dropped sample.
    generation_excludes_seen : bool, default=False
        Generate edges only to items a user has not interacted with (each user's own items
        are left out before the top-k).
    item_knn : int, default=0
        Above 0: a frozen item–item graph links each item to its ``item_knn`` most
        feature-similar items per modality (FREEDOM's graph, averaged over modalities), and
        each item's output adds ``item_graph_weight`` times the mean of its neighbours' ID
        embeddings.
    item_graph_weight : float, default=1.0
        Weight of the item–item graph's term (with ``item_knn > 0``).
    user_col, item_col, weight_col : str
        Column names for DataFrame input.

    Attributes
    ----------
    user_ids_, item_ids_ : ndarray
        Raw ids of the fitted users and items, by index.
    modalities_ : tuple of str
        Modality names in the order of the fusion weights.
    user_factors_ : ndarray of shape (n_users, embedding_dim)
    item_factors_ : ndarray of shape (n_items, embedding_dim)
        The encoder's output; scores are their dot products.
    history_ : list of dict
        Per epoch: losses per component (``loss_*``), seconds per phase (``seconds_*``), the
        softmaxed ``fusion_weights`` (in ``modalities_`` order) and, with validation data,
        ``validation_score``.
    best_epoch_ : int
        The epoch whose weights were kept.
    stopped_early_, interrupted_ : bool
        Whether training stopped on patience, or on ``KeyboardInterrupt`` (Ctrl-C), which
        keeps the best weights so far and warns.
    device_ : torch.device
        The device training ran on.

    Examples
    --------
    >>> from diffmm import DiffMMRecommender
    >>> from diffmm.datasets import make_synthetic
    >>> data = make_synthetic(n_users=60, n_items=40, random_state=0)
    >>> model = DiffMMRecommender(epochs=2, denoiser_hidden_dims=(32,), random_state=0)
    >>> model = model.fit(data.train, data.features)
    >>> ids, scores = model.recommend([0, 1], n=5)
    >>> ids.shape
    (2, 5)
    """

    _requires_features = True
    _progress_name = "DiffMM"
    # Training, device and early-stopping parameters are checked by FactorRecommender.
    _parameter_constraints: dict[str, list] = {
        "projection": [Options({"matrix", "linear"})],
        "n_layers": [Interval(numbers.Integral, 0, None)],
        "residual_weight": [NON_NEGATIVE],
        "generated_graph_weight": [NON_NEGATIVE],
        "diffusion_steps": [POSITIVE_INT],
        "noise_scale": [POSITIVE],
        "noise_min": [POSITIVE],
        "noise_max": [POSITIVE],
        "sampling_steps": [Interval(numbers.Integral, 0, None)],
        "sampling_noise": [bool],
        "denoiser_hidden_dims": [Predicate(_int_tuple, "a non-empty tuple of ints >= 1")],
        "time_embedding_dim": [Interval(numbers.Integral, 2, None)],
        "denoiser_dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "normalize_denoiser_input": [bool],
        "denoiser_learning_rate": [POSITIVE],
        "precision": [Options({"fp32", "bf16"})],
        "alignment_weight": [NON_NEGATIVE],
        "graph_top_k": [POSITIVE_INT],
        "edge_keep_rate": [Interval(numbers.Real, 0, 1, closed="right")],
        "generate_graphs": [bool],
        "contrastive": [Options({"modal_modal", "main_modal"}), None],
        "contrastive_weight": [NON_NEGATIVE],
        "temperature": [POSITIVE],
        "checkpoint_dir": [str, Path, None],
        "checkpoint_every": [POSITIVE_INT],
        "copy_features": [bool],
        "cold_items": [Options({"id", "features"})],
        "score_undropped_graphs": [bool],
        "generation_excludes_seen": [bool],
        "item_knn": [Interval(numbers.Integral, 0, None)],
        "item_graph_weight": [NON_NEGATIVE],
    }

    def __init__(
        self,
        *,
        embedding_dim: int = 64,
        projection: Literal["matrix", "linear"] = "matrix",
        n_layers: int = 1,
        residual_weight: float = 0.5,
        generated_graph_weight: float = 0.2,
        diffusion_steps: int = 5,
        noise_scale: float = 0.1,
        noise_min: float = 1e-4,
        noise_max: float = 0.02,
        sampling_steps: int = 0,
        sampling_noise: bool = False,
        denoiser_hidden_dims: tuple[int, ...] = (1000,),
        time_embedding_dim: int = 10,
        denoiser_dropout: float = 0.5,
        normalize_denoiser_input: bool = False,
        denoiser_learning_rate: float = 1e-3,
        precision: Literal["fp32", "bf16"] = "fp32",
        alignment_weight: float = 0.1,
        graph_top_k: int = 1,
        edge_keep_rate: float = 0.5,
        generate_graphs: bool = True,
        contrastive: Literal["modal_modal", "main_modal"] | None = "modal_modal",
        contrastive_weight: float = 1e-2,
        temperature: float = 0.5,
        l2_weight: float = 1e-5,
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
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int = 1,
        copy_features: bool = True,
        user_balance: float = 0.0,
        negative_candidates: int = 1,
        learning_rate_schedule: Literal["constant", "cosine"] = "constant",
        cold_items: Literal["id", "features"] = "id",
        score_undropped_graphs: bool = False,
        generation_excludes_seen: bool = False,
        item_knn: int = 0,
        item_graph_weight: float = 1.0,
        user_col: str = "user",
        item_col: str = "item",
        weight_col: str | None = "weight",
    ) -> None:
        self.embedding_dim = embedding_dim
        self.projection = projection
        self.n_layers = n_layers
        self.residual_weight = residual_weight
        self.generated_graph_weight = generated_graph_weight
        self.diffusion_steps = diffusion_steps
        self.noise_scale = noise_scale
        self.noise_min = noise_min
        self.noise_max = noise_max
        self.sampling_steps = sampling_steps
        self.sampling_noise = sampling_noise
        self.denoiser_hidden_dims = denoiser_hidden_dims
        self.time_embedding_dim = time_embedding_dim
        self.denoiser_dropout = denoiser_dropout
        self.normalize_denoiser_input = normalize_denoiser_input
        self.denoiser_learning_rate = denoiser_learning_rate
        self.precision = precision
        self.alignment_weight = alignment_weight
        self.graph_top_k = graph_top_k
        self.edge_keep_rate = edge_keep_rate
        self.generate_graphs = generate_graphs
        self.contrastive = contrastive
        self.contrastive_weight = contrastive_weight
        self.temperature = temperature
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
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.copy_features = copy_features
        self.user_balance = user_balance
        self.negative_candidates = negative_candidates
        self.learning_rate_schedule = learning_rate_schedule
        self.cold_items = cold_items
        self.score_undropped_graphs = score_undropped_graphs
        self.generation_excludes_seen = generation_excludes_seen
        self.item_knn = item_knn
        self.item_graph_weight = item_graph_weight
        self.user_col = user_col
        self.item_col = item_col
        self.weight_col = weight_col

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> DiffMMRecommender:
        """An estimator with the settings of a named preset (see :data:`PRESETS`).

        Examples
        --------
        >>> DiffMMRecommender.from_preset("tiktok", epochs=5).projection
        'linear'
        """
        if name not in PRESETS:
            raise InvalidInputError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides})

    # -- fitting ---------------------------------------------------------------------------

    def _check_cross_params(self, n_modalities: int) -> None:
        self._schedule()  # the noise schedule's own rules, e.g. noise_min < noise_max
        if self.sampling_steps > self.diffusion_steps:
            raise InvalidInputError(
                f"sampling_steps ({self.sampling_steps}) must be <= diffusion_steps "
                f"({self.diffusion_steps})."
            )
        if self.graph_top_k > self.n_items_:
            raise InvalidInputError(
                f"graph_top_k ({self.graph_top_k}) is larger than the {self.n_items_} items."
            )
        if self.contrastive == "modal_modal" and n_modalities < 2:
            raise InvalidInputError(
                "contrastive='modal_modal' contrasts pairs of modalities and needs at least two; "
                "with one modality use contrastive='main_modal' (or None)."
            )

    def fit(
        self,
        interactions: Any,
        modality_features: Any = None,
        *,
        validation_data: Any = None,
        resume_from: str | Path | None = None,
    ) -> DiffMMRecommender:
        """Train the model.

        Parameters
        ----------
        interactions : DataFrame, array-like of shape (n_interactions, 2 or 3) or sparse matrix
            Training interactions (binarised for the model).
        modality_features : mapping of str to array of shape (n_items, d) or DataFrame
            Item features per modality, aligned to item indices (arrays) or indexed by raw item
            id (DataFrames; then they define the item universe, cold items included).
        validation_data : DataFrame, array-like or sparse matrix, optional
            Held-out interactions; the model is evaluated on them every ``eval_every`` epochs,
            the best epoch's weights are kept and training stops after ``patience``
            evaluations without improvement.
        resume_from : str or Path, optional
            A checkpoint file (or the ``checkpoint_dir`` holding one) written by an earlier
            ``fit`` on the same data with the same settings; training continues after its last
            epoch and, on the CPU, ends exactly where an uninterrupted run would.

        Returns
        -------
        self
            The estimator, fitted. If ``fit`` raises, the estimator is left exactly as it was
            before the call (still unfitted, or still the previous model).
        """
        return self._transaction(
            lambda model: model._fit(interactions, modality_features, validation_data, resume_from)
        )

    def _fit(
        self,
        interactions: Any,
        modality_features: Any,
        validation_data: Any,
        resume_from: str | Path | None,
    ) -> None:
        # Training only reads the features, so it uses the caller's float32 arrays as they are;
        # the model's own copy (copy_features=True) is taken once training has let go of the
        # optimiser state and the weight snapshots, so it does not add to the peak.
        features = self._prepare_fit(interactions, modality_features, copy_features=False)
        names = tuple(features)
        borrowed = [features[name] is modality_features[name] for name in names]
        self._check_cross_params(len(names))
        dims = [features[m].shape[1] for m in names]
        self._check_memory(self._parameter_count(dims, self.n_items_))
        held_out = self._validation_matrix(validation_data)
        if self.checkpoint_dir is not None:
            check_folder(self.checkpoint_dir)
        device = self._resolve_device()
        rng, init_generator, train_generator = self._random_streams(device)
        with warnings.catch_warnings():  # read-only (memory-mapped) features: never written
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            tensors = [torch.from_numpy(features[m]) for m in names]
        network, denoisers = self._build_modules(tensors, init_generator, len(tensors))
        n_items = network.config.n_items
        network, denoisers = network.to(device), [d.to(device) for d in denoisers]
        diffusion = None
        if self.generate_graphs:
            diffusion = DiffusionPhases(
                network,
                denoisers,
                self._schedule(),
                self.interactions_,
                self._diffusion_config(),
                device=device,
                rng=rng,
                generator=train_generator,
            )
        objective = DiffMMObjective(
            network,
            adjacency_from_matrix(self.interactions_, device),
            diffusion,
            l2_weight=self.l2_weight,
            contrastive=self.contrastive,
            contrastive_weight=self.contrastive_weight,
            temperature=self.temperature,
        )
        trainer = Trainer(
            objective,
            self.interactions_,
            self._training_config(has_validation=held_out is not None),
            device=device,
            rng=rng,
            diffusion=diffusion,
            evaluate=self._validation_scorer(self.interactions_, held_out),
            never_negative=None if network.id_mask is None else ~self._id_items(n_items).numpy(),
        )
        self.modalities_ = names
        self.device_ = device
        data_digest = fingerprint(self.interactions_, features, held_out)
        params = self.get_params(deep=False)
        state = None
        if resume_from is not None:
            state = read_checkpoint(resume_from, trainer, data_digest=data_digest, params=params)

        checkpoint = partial(self._checkpoint_epoch, trainer, data_digest, params)
        try:
            self._run_trainer(
                trainer,
                on_epoch_end=checkpoint,
                state=state,
                finish=partial(self._finish_diffmm, trainer, denoisers),
            )
        finally:
            # Frees the optimiser state before the copies below.
            del trainer, objective, diffusion, checkpoint
            if self.copy_features:
                _own_features(network, [features[name] for name in names], borrowed)

    def _checkpoint_epoch(
        self, trainer: Trainer, data_digest: str, params: dict[str, Any], result: TrainingResult
    ) -> None:
        done = result.epoch >= self.epochs or result.stopped_early
        if self.checkpoint_dir is None or not (result.epoch % self.checkpoint_every == 0 or done):
            return
        try:
            write_checkpoint(
                self.checkpoint_dir, trainer, result, data_digest=data_digest, params=params
            )
        except OSError as exc:  # a full disk, a folder gone: the run itself goes on
            warnings.warn(
                f"Could not write the checkpoint after epoch {result.epoch} to "
                f"{self.checkpoint_dir}: {exc}. Training goes on; the previous checkpoint (if "
                "any) is still there.",
                UserWarning,
                stacklevel=2,
            )

    def _network_config(self, n_items: int, feature_dims: tuple[int, ...]) -> NetworkConfig:
        return NetworkConfig(
            n_users=self.n_users_,
            n_items=n_items,
            feature_dims=feature_dims,
            embedding_dim=self.embedding_dim,
            projection=self.projection,
            n_layers=self.n_layers,
            generated_graph_weight=self.generated_graph_weight,
            residual_weight=self.residual_weight,
            item_knn=self.item_knn,
            item_graph_weight=self.item_graph_weight,
        )

    def _parameter_count(self, feature_dims: list[int], n_items: int) -> int:
        """Trainable parameters of the network and the denoisers these settings build."""
        d, tau = self.embedding_dim, self.time_embedding_dim
        bias = d if self.projection == "linear" else 0
        network = (self.n_users_ + n_items) * d + sum(f * d + bias for f in feature_dims)
        sizes = [n_items + tau, *self.denoiser_hidden_dims, n_items]
        layers = sum(a * b + b for a, b in itertools.pairwise(sizes)) + tau * tau + tau
        return network + len(feature_dims) + len(feature_dims) * layers

    def _id_items(self, n_items: int) -> torch.Tensor | None:
        """Which of the first ``n_items`` items have an ID embedding (None: all of them)."""
        if self.cold_items == "id":
            return None
        return torch.from_numpy(self.interactions_[:, :n_items].getnnz(axis=0) > 0)

    def _build_modules(
        self, features: list[torch.Tensor], generator: torch.Generator | None, n_denoisers: int
    ) -> tuple[DiffMMNetwork, list[Denoiser]]:
        n_items = int(features[0].shape[0])
        config = self._network_config(n_items, tuple(int(f.shape[1]) for f in features))
        network = DiffMMNetwork(
            config, features, generator=generator, id_items=self._id_items(n_items)
        )
        denoisers = [
            Denoiser(
                n_items,
                tuple(self.denoiser_hidden_dims),
                time_dim=self.time_embedding_dim,
                dropout=self.denoiser_dropout,
                normalize_input=self.normalize_denoiser_input,
                generator=generator,
            )
            for _ in range(n_denoisers)
        ]
        return network, denoisers

    def _diffusion_config(self) -> DiffusionConfig:
        return DiffusionConfig(
            batch_size=self.batch_size,
            learning_rate=self.denoiser_learning_rate,
            alignment_weight=self.alignment_weight,
            graph_top_k=self.graph_top_k,
            edge_keep_rate=self.edge_keep_rate,
            sampling_steps=self.sampling_steps,
            sampling_noise=self.sampling_noise,
            precision=self.precision,
            exclude_seen=self.generation_excludes_seen,
            score_undropped=self.score_undropped_graphs,
        )

    def _finish_diffmm(self, trainer: Trainer, denoisers: list[Denoiser], best: Snapshot) -> None:
        """Keep the chosen epoch's weights, graphs and output embeddings (on the CPU)."""
        self._finish(trainer, best)
        self.denoisers_ = [d.cpu() for d in denoisers]
        self.generated_graphs_ = (
            None if best.graphs is None else [_to_scipy(g) for g in best.graphs]
        )
        self._set_fusion_weights()

    def _set_fusion_weights(self) -> None:
        weights = torch.softmax(self.network_.fusion_weights.detach(), 0).tolist()
        self.fusion_weights_ = dict(zip(self.modalities_, weights, strict=True))

    # -- persistence -------------------------------------------------------------------------

    def _fitted_state(self) -> dict[str, Any]:
        graphs = None
        if self.generated_graphs_ is not None:
            graphs = [
                {"indptr": g.indptr, "indices": g.indices, "data": g.data, "shape": g.shape}
                for g in self.generated_graphs_
            ]
        return {
            **super()._fitted_state(),
            "modalities_": self.modalities_,
            "network": self.network_.state_dict(),
            "features": [self.network_.modality_features(m) for m in range(len(self.modalities_))],
            "denoisers": [d.state_dict() for d in self.denoisers_],
            "generated_graphs_": graphs,
        }

    def _set_fitted_state(self, state: FileState) -> None:
        super()._set_fitted_state(state)
        modalities = state.strings("modalities_")
        self.modalities_ = tuple(modalities)
        network_state = state.tensor_dict("network")
        stored = pop_features(network_state)  # where files of format 1 hold them
        raw = state.value("features", list) if state.has("features") else stored
        features = [
            torch.from_numpy(check_array(f, "a feature matrix", state.error, ndim=2, kinds="f"))
            for f in raw
        ]
        n_trained = features[0].shape[0] if features else 0
        if len(features) != len(modalities) or any(f.shape[0] != n_trained for f in features):
            raise state.error("the feature matrices do not match the modalities")
        if not 1 <= n_trained <= self.n_items_ or self.interactions_[:, n_trained:].nnz:
            raise state.error(f"{n_trained} trained items do not fit {self.n_items_} items")
        denoiser_states = state.value("denoisers", list)
        if len(denoiser_states) != len(modalities):
            raise state.error("there is not one denoiser per modality")
        # The settings must describe the stored weights before any module is built from them
        # (a file must not make the loader allocate more than the file holds).
        stored = sum(t.numel() for w in [network_state, *denoiser_states] for t in _tensors(w))
        if stored != self._parameter_count([f.shape[1] for f in features], n_trained):
            raise state.error("the weights do not have the sizes the settings give")
        with modules_for_loading():
            self.network_, self.denoisers_ = self._build_modules(
                features, None, len(denoiser_states)
            )
        for module, weights in [
            (self.network_, network_state),
            *zip(self.denoisers_, denoiser_states, strict=True),
        ]:
            if not isinstance(weights, dict):
                raise state.error("a module's weights are not a mapping")
            try:
                module.load_state_dict(weights)
            except RuntimeError as exc:  # missing, unexpected or misshapen weights
                raise state.error(f"weights that do not fit the settings ({exc})") from None
        self.generated_graphs_ = None
        graphs = state.value("generated_graphs_", list, allow_none=True)
        if graphs is not None:
            if len(graphs) != len(modalities):
                raise state.error("there is not one generated graph per modality")
            n_nodes = self.n_users_ + n_trained
            self.generated_graphs_ = [
                _graph_from_file(FileState(g, "a generated graph"), n_nodes) for g in graphs
            ]
        self._set_fusion_weights()

    # -- new users and new items --------------------------------------------------------------

    def _schedule(self) -> DiffusionSchedule:
        return DiffusionSchedule(
            steps=self.diffusion_steps,
            noise_scale=self.noise_scale,
            noise_min=self.noise_min,
            noise_max=self.noise_max,
        )

    def recommend_new_users(
        self,
        histories: Any,
        n: int = 10,
        *,
        method: Literal["propagation", "denoiser"] = "propagation",
        exclude_seen: bool = True,
        items: Any = None,
        exclude_items: Any = None,
        batch_size: int = 1024,
        as_frame: bool = False,
    ) -> Any:
        """Top-``n`` items for users the model was not trained on, from their histories.

        The fitted model is not changed (no training, no new state).

        Parameters
        ----------
        histories : list of array-like of raw item ids, or sparse matrix (n_new_users, n_items)
            One interaction history per new user.
        n : int, default=10
        method : {"propagation", "denoiser"}, default="propagation"
            ``"propagation"``: the user's embedding is one hop of the graph encoder's
            normalised propagation over the fitted item embeddings,
            ``Σ_{i∈H} e_i / sqrt((|H|+1)(d_i+1))``, and items are scored by dot product.
            ``"denoiser"``: each modality's denoiser runs the reverse diffusion from the history
            row (as in graph generation) and the outputs are combined with the fusion weights;
            it scores only the items the model was trained on (items added later with
            :meth:`add_items` are not candidates). With ``sampling_steps > 0`` or
            ``sampling_noise``, its noise comes from ``random_state``.
        exclude_seen : bool, default=True
            Leave out the items in each history.
        items, exclude_items, batch_size
            As in :meth:`recommend`.
        as_frame : bool, default=False
            Return a long DataFrame as :meth:`recommend` does; its ``user`` column holds the
            position of each history (0, 1, ...).

        Returns
        -------
        item_ids : ndarray of shape (n_new_users, n)
        scores : ndarray of shape (n_new_users, n)

        Examples
        --------
        >>> from diffmm.datasets import make_synthetic
        >>> data = make_synthetic(n_users=60, n_items=40, random_state=0)
        >>> model = DiffMMRecommender(epochs=1, denoiser_hidden_dims=(16,), random_state=0)
        >>> model = model.fit(data.train, data.features)
        >>> ids, _ = model.recommend_new_users([[0, 3, 5], [7]], n=4, method="denoiser")
        >>> ids.shape
        (2, 4)
        """
        check_is_fitted(self)
        if method not in ("propagation", "denoiser"):
            raise InvalidInputError(f"method must be 'propagation' or 'denoiser', got {method!r}.")
        history = check_histories(histories, self._items)
        allowed = None
        if method == "propagation":
            degrees = np.asarray(self.interactions_.sum(axis=0)).ravel()
            users = propagation_user_factors(history, self.item_factors_, degrees)

            def score_rows(rows: np.ndarray) -> np.ndarray:
                return users[rows] @ self.item_factors_.T

        else:
            n_trained = self.network_.config.n_items
            allowed = np.arange(n_trained)
            schedule = self._schedule()
            seed = np.random.default_rng(self.random_state).integers(2**62)
            generator = torch.Generator().manual_seed(int(seed))
            weights = torch.softmax(self.network_.fusion_weights.detach(), 0)

            def randn(shape: tuple[int, ...]) -> torch.Tensor:
                return torch.randn(shape, generator=generator)

            def score_rows(rows: np.ndarray) -> np.ndarray:
                scores = np.full((len(rows), self.n_items_), -np.inf, dtype=np.float32)
                scores[:, :n_trained] = denoiser_user_scores(
                    self.denoisers_,
                    weights,
                    schedule,
                    history[rows][:, :n_trained],
                    sampling_steps=self.sampling_steps,
                    sampling_noise=self.sampling_noise,
                    randn=randn,
                )
                return scores

        ids, scores = self._rank(
            score_rows,
            history.shape[0],
            n,
            exclude=history if exclude_seen else None,
            items=items,
            exclude_items=exclude_items,
            batch_size=batch_size,
            allowed=allowed,
        )
        if as_frame:
            return long_frame(np.arange(history.shape[0]), ids, scores, ("user", "item"))
        return ids, scores

    def add_items(self, modality_features: Any, *, item_ids: Any = None) -> DiffMMRecommender:
        """Add new items to the catalogue from their features, without retraining.

        A new item gets what the encoder computes for an item with features and no
        interaction (see the docs' cold-start section): its projected, normalised modality
        features fused with the fitted fusion weights. It can then be recommended, scored and
        evaluated like any item; its scores are on the same scale as warm items', whose
        embeddings also carry the collaborative signal.

        Parameters
        ----------
        modality_features : mapping of str to DataFrame or array of shape (n_new_items, d)
            The same modalities (names and dimensions) as in :meth:`fit`. DataFrames are
            indexed by the new raw item ids.
        item_ids : array-like of shape (n_new_items,), optional
            Raw ids for array features; by default the next integer indices (valid when the
            model's item ids are ``0..n_items-1``).

        Returns
        -------
        self

        Examples
        --------
        >>> import numpy as np
        >>> from diffmm.datasets import make_synthetic
        >>> data = make_synthetic(n_users=60, n_items=40, random_state=0)
        >>> model = DiffMMRecommender(epochs=1, denoiser_hidden_dims=(16,), random_state=0)
        >>> model = model.fit(data.train, data.features)
        >>> new = {name: values[:2] + 0.1 for name, values in data.features.items()}
        >>> model.add_items(new).item_ids_[-2:]
        array([40, 41])
        """
        check_is_fitted(self)
        dims = {
            name: int(self.network_.modality_features(m).shape[1])
            for m, name in enumerate(self.modalities_)
        }
        features, new_ids = check_new_items(modality_features, item_ids, self._items, dims)
        tensors = [torch.from_numpy(features[name]) for name in self.modalities_]
        factors = self.network_.encode_new_items(tensors).numpy()
        n_new = len(new_ids)
        self._items = self._items.extended(new_ids)
        self.item_ids_ = self._items.ids
        self.item_factors_ = np.vstack([self.item_factors_, factors.astype(np.float32)])
        self.n_items_ += n_new
        pad = sp.csr_matrix((self.n_users_, n_new), dtype=np.float32)
        self.interactions_ = sp.hstack([self.interactions_, pad], format="csr")
        self.interaction_weights_ = sp.hstack(
            [self.interaction_weights_, pad.astype(np.float64)], format="csr"
        )
        return self


def _own_features(network: DiffMMNetwork, features: list[np.ndarray], borrowed: list[bool]) -> None:
    """Give ``network`` its own copy of every feature buffer that is still a caller's array."""
    for m, (array, shared) in enumerate(zip(features, borrowed, strict=True)):
        buffer = network.modality_features(m)
        if shared and buffer.device.type == "cpu" and np.may_share_memory(buffer.numpy(), array):
            network.set_modality_features(m, buffer.clone())


def _to_scipy(graph: torch.Tensor) -> sp.csr_matrix:
    graph = graph.cpu()
    return sp.csr_matrix(
        (
            graph.values().numpy(),
            graph.col_indices().numpy(),
            graph.crow_indices().numpy(),
        ),
        shape=tuple(graph.shape),
    )


def _graph_from_file(state: FileState, n_nodes: int) -> sp.csr_matrix:
    if state.ints("shape", 2) != [n_nodes, n_nodes]:
        raise state.error("a generated graph does not cover the users and items")
    indptr = state.array("indptr", ndim=1, kinds="iu", shape=(n_nodes + 1,))
    indices = state.array("indices", ndim=1, kinds="iu", non_negative=True)
    data = state.array("data", ndim=1, kinds="f", shape=(len(indices),), finite=True)
    ok = indptr[0] == 0 and indptr[-1] == len(indices) and not np.any(np.diff(indptr) < 0)
    if not ok or (indices.size and indices.max() >= n_nodes):
        raise state.error("a generated graph is not a CSR matrix")
    return sp.csr_matrix((data, indices, indptr), shape=(n_nodes, n_nodes))


def _tensors(weights: Any) -> list[torch.Tensor]:
    if not isinstance(weights, dict) or not all(
        isinstance(t, torch.Tensor) for t in weights.values()
    ):
        raise ModelFileError("The model file is inconsistent: a module's weights are malformed.")
    return list(weights.values())
