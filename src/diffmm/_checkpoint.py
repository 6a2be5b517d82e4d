"""Training checkpoints: what a run writes after its epochs, and how a later fit resumes.

A checkpoint is an archive of the safe file format (``_persistence``) holding a digest of the
training data, the estimator's hyper-parameters and the loop's state (``Trainer.state_dict``:
weights of the best and latest epochs, optimiser moments, random streams, history).
Resuming checks that the data and the settings that shape the model are the same.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ._errors import InvalidInputError, ModelFileError
from ._persistence import FileState, read_archive, write_archive
from ._sparse import sparse_csr
from ._training import Snapshot, Trainer, TrainingResult

__all__ = [
    "CHECKPOINT_NAME",
    "check_folder",
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
        "callbacks",
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
        if isinstance(value, np.random.Generator) or key == "callbacks":
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


def check_folder(folder: str | Path) -> Path:
    """Make sure checkpoints can be written to ``folder`` (created if missing) before training.

    Raises :class:`InvalidInputError` naming the problem: the path is a file, or the folder
    cannot be created or written to.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(
            f"checkpoint_dir {folder} is a file, not a folder; give a folder to write "
            f"{CHECKPOINT_NAME} into."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InvalidInputError(
            f"Cannot write checkpoints to {folder}: {exc.strerror or exc}. Give a writable "
            "checkpoint_dir (or None)."
        ) from None
    return folder


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
    content = FileState(tree, str(path))
    if content.value("fingerprint", str) != data_digest:
        raise ValueError(
            f"The checkpoint {path} was written for other training data (interactions, "
            "features or validation data differ); resume with the same data."
        )
    mine = params_for_file(params)
    changed = sorted(
        key
        for key, value in content.value("params", dict).items()
        if key not in _RESUMABLE_CHANGES and not _equal(mine.get(key), value)
    )
    if changed:
        raise ValueError(
            f"The checkpoint {path} was written with different hyper-parameters {changed}; "
            f"resume with the same settings (only {sorted(_RESUMABLE_CHANGES)} may change)."
        )
    state = _checked_state(content.sub("state"), trainer)
    try:
        return trainer.load_state_dict(state)
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
        # torch's optimiser and generator states, NumPy's bit generator: refused as damaged.
        raise ModelFileError(f"The checkpoint {path} is damaged: {exc!r}") from None


def _equal(a: Any, b: Any) -> bool:
    """``a == b`` for settings, where a value read from a file may be of any type."""
    try:
        result = a == b
    except (ValueError, TypeError):  # e.g. arrays of other shapes
        return False
    return result if isinstance(result, bool) else False


def _checked_state(state: FileState, trainer: Trainer) -> dict[str, Any]:
    """The loop state of a checkpoint, its structure checked (weights are checked on load)."""
    result = state.sub("result")
    history = result.value("history", list)
    if not all(isinstance(record, dict) for record in history):
        raise state.error("the checkpoint's history is not a list of records")
    checked = {
        "history": history,
        "stale": result.value("stale", int),
        "epoch": result.value("epoch", int),
        "stopped_early": result.value("stopped_early", bool),
    }
    for key in ("best", "last_good"):
        snapshot = result.value(key, dict, allow_none=True)
        checked[key] = None if snapshot is None else _snapshot(FileState(snapshot, key), trainer)
    optimizers = state.value("denoiser_optimizers", list)
    if not all(isinstance(o, dict) for o in [state.value("optimizer", dict), *optimizers]):
        raise state.error("an optimiser state is not a mapping")
    generator = state.value("generator", torch.Tensor, allow_none=True)
    return {
        "result": checked,
        "optimizer": state.value("optimizer", dict),
        "denoiser_optimizers": optimizers,
        "rng": state.value("rng", dict),
        "generator": generator,
    }


def _snapshot(snapshot: FileState, trainer: Trainer) -> Snapshot:
    network = snapshot.tensor_dict("network")
    pop_features(network)  # checkpoints of format 1 hold the features there
    denoisers = snapshot.value("denoisers", list)
    graphs = snapshot.value("graphs", list, allow_none=True)
    data = {
        "epoch": snapshot.value("epoch", int),
        "score": snapshot.value("score", float, int, allow_none=True),
        "network": network,
        "denoisers": [_tensors(d, snapshot) for d in denoisers],
        "graphs": None if graphs is None else [_graph_parts_checked(g, snapshot) for g in graphs],
    }
    return _snapshot_from_dict(data, trainer.device)


def _tensors(value: Any, where: FileState) -> dict[str, torch.Tensor]:
    if not (isinstance(value, dict) and all(isinstance(v, torch.Tensor) for v in value.values())):
        raise where.error("a denoiser's weights are not tensors")
    return value


def _graph_parts_checked(value: Any, where: FileState) -> dict[str, torch.Tensor]:
    keys = {"crow", "col", "values", "size"}
    if not (isinstance(value, dict) and set(value) == keys):
        raise where.error("a generated graph is malformed")
    if not all(isinstance(value[k], torch.Tensor) for k in keys):
        raise where.error("a generated graph is malformed")
    crow, col, size = value["crow"], value["col"], int(value["size"].reshape(-1)[0])
    ok = crow.ndim == 1 and len(crow) == size + 1 and col.ndim == 1
    ok = ok and len(value["values"]) == len(col) and int(crow[-1]) == len(col) and int(crow[0]) == 0
    if not ok or (len(col) and (int(col.min()) < 0 or int(col.max()) >= size)):
        raise where.error("a generated graph is not a CSR matrix")
    return value


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
