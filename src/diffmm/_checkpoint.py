"""Training checkpoints: what a run writes after its epochs, and how a later fit resumes.

A checkpoint is an archive of the safe file format (``_persistence``) holding a digest of the
training data, the estimator's hyper-parameters and the loop's state (``Trainer.state_dict``:
weights of the best and latest epochs, optimiser moments, random streams, history).
Resuming checks that the data and the settings that shape the model are the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ._persistence import read_archive, write_archive
from ._sparse import sparse_csr
from ._training import Snapshot, Trainer, TrainingResult

__all__ = [
    "CHECKPOINT_NAME",
    "fingerprint",
    "params_for_file",
    "pop_features",
    "read_checkpoint",
    "write_checkpoint",
]

CHECKPOINT_NAME = "checkpoint.diffmm"
# Settings that may differ between a checkpointed run and its resumption.
_RESUMABLE_CHANGES = frozenset(
    {
        "epochs",
        "patience",
        "verbose",
        "device",
        "checkpoint_dir",
        "checkpoint_every",
        "copy_features",
    }
)


def fingerprint(
    matrix: sp.csr_matrix, features: Mapping[str, np.ndarray], held_out: sp.csr_matrix | None
) -> str:
    """A digest of the training data, so that a checkpoint only resumes on the same data."""
    digest = hashlib.sha256()
    for mat in (matrix, held_out):
        if mat is not None:
            digest.update(np.asarray(mat.shape, dtype=np.int64).tobytes())
            digest.update(mat.indptr.astype(np.int64).tobytes())
            digest.update(mat.indices.astype(np.int64).tobytes())
    for name, values in features.items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def params_for_file(params: Mapping[str, Any]) -> dict[str, Any]:
    """Hyper-parameters as JSON values (a Generator ``random_state`` cannot be stored)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, np.random.Generator):
            value = None
        elif isinstance(value, (torch.device, Path)):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


def pop_features(network_state: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Remove the ``features_<m>`` entries (in the network state of format-1 files)."""
    keys = sorted((k for k in network_state if k.startswith("features_")), key=lambda k: int(k[9:]))
    return [network_state.pop(k) for k in keys]


def write_checkpoint(
    folder: str | Path,
    trainer: Trainer,
    result: TrainingResult,
    *,
    data_digest: str,
    params: Mapping[str, Any],
) -> Path:
    """Write ``folder/checkpoint.diffmm`` (atomically) for the run at ``result``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = trainer.state_dict(result)
    saved = state["result"]
    for key in ("best", "last_good"):
        saved[key] = _snapshot_to_dict(saved[key])
    tree = {"fingerprint": data_digest, "params": params_for_file(params), "state": state}
    return write_archive(folder / CHECKPOINT_NAME, tree, kind="checkpoint")


def read_checkpoint(
    path: str | Path,
    trainer: Trainer,
    *,
    data_digest: str,
    params: Mapping[str, Any],
) -> TrainingResult:
    """Load a checkpoint (a file, or the folder holding one) into ``trainer``; return its state.

    Raises ``ValueError`` when it was written for other data or other hyper-parameters (only
    the settings in ``_RESUMABLE_CHANGES`` may differ).
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    tree, _ = read_archive(path, kind="checkpoint")
    if tree["fingerprint"] != data_digest:
        raise ValueError(
            f"The checkpoint {path} was written for other training data (interactions, "
            "features or validation data differ); resume with the same data."
        )
    mine = params_for_file(params)
    changed = sorted(
        key
        for key, value in tree["params"].items()
        if key not in _RESUMABLE_CHANGES and mine.get(key) != value
    )
    if changed:
        raise ValueError(
            f"The checkpoint {path} was written with different hyper-parameters {changed}; "
            f"resume with the same settings (only {sorted(_RESUMABLE_CHANGES)} may change)."
        )
    state = tree["state"]
    saved = state["result"]
    for key in ("best", "last_good"):
        if saved[key] is not None:  # checkpoints of format 1 hold the features there
            pop_features(saved[key]["network"])
        saved[key] = _snapshot_from_dict(saved[key], trainer.device)
    return trainer.load_state_dict(state)


def _graph_parts(graph: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "crow": graph.crow_indices(),
        "col": graph.col_indices(),
        "values": graph.values(),
        "size": torch.tensor(graph.shape[0]),
    }


def _snapshot_to_dict(snapshot: Snapshot | None) -> dict | None:
    if snapshot is None:
        return None
    return {
        "epoch": snapshot.epoch,
        "score": snapshot.score,
        "network": snapshot.network,
        "denoisers": snapshot.denoisers,
        "graphs": None if snapshot.graphs is None else [_graph_parts(g) for g in snapshot.graphs],
    }


def _snapshot_from_dict(data: dict | None, device: torch.device) -> Snapshot | None:
    if data is None:
        return None
    graphs = None
    if data["graphs"] is not None:
        graphs = [
            sparse_csr(
                g["crow"].to(device), g["col"].to(device), g["values"].to(device), int(g["size"])
            )
            for g in data["graphs"]
        ]
    return Snapshot(
        epoch=int(data["epoch"]),
        network={k: v.to(device) for k, v in data["network"].items()},
        denoisers=[{k: v.to(device) for k, v in d.items()} for d in data["denoisers"]],
        graphs=graphs,
        score=data["score"],
    )
