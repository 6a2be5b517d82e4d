"""A file format that never executes code on load: JSON for structure, safetensors for arrays.

A model file (and a training checkpoint) is a zip archive holding ``diffmm.json`` (format
version, package version, kind, and a JSON tree in which every array is a reference) and
``tensors.safetensors`` (the arrays). Files are written to a temporary name in the target's
folder and renamed into place, so an interrupted save never leaves a half-written file at the
target path.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from ._errors import ModelFileError
from ._version import __version__

__all__ = ["FORMAT_VERSION", "ModelFileError", "pack", "read_archive", "unpack", "write_archive"]

# 1: the first format. 2: DiffMM's modality features are stored beside the network's
# state_dict instead of in it (files of format 1 still load).
FORMAT_VERSION = 2
_JSON_NAME = "diffmm.json"
_TENSOR_NAME = "tensors.safetensors"


# -- a JSON tree with arrays held aside ---------------------------------------------------------


def pack(tree: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Replace every tensor/array in a nested structure by a reference; return both parts.

    Supports dicts (any str/int keys), lists, tuples, str, int, float, bool, None, NumPy
    scalars, tensors and arrays (numeric arrays as tensors; string or object arrays of str/int
    values as JSON lists).
    """
    tensors: dict[str, torch.Tensor] = {}
    seen: dict[int, str] = {}  # the same object referenced twice is stored once

    def store(obj: Any, tensor: Callable[[], torch.Tensor]) -> str:
        if id(obj) not in seen:
            key = f"t{len(tensors)}"
            # A private copy: safetensors refuses tensors that share memory with each other.
            tensors[key] = tensor().clone()
            seen[id(obj)] = key
        return seen[id(obj)]

    def walk(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return {"__tensor__": store(obj, lambda: obj.detach().cpu().contiguous())}
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind in "biuf":
                key = store(obj, lambda: torch.from_numpy(np.ascontiguousarray(obj)))
                return {"__ndarray__": key}
            values = obj.tolist()
            if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values):
                raise TypeError(
                    "Only integer or string ids can be saved; found ids of type "
                    f"{sorted({type(v).__name__ for v in values})}. Map them to strings first."
                )
            return {"__array__": values, "dtype": obj.dtype.str if obj.dtype.kind == "U" else "O"}
        if isinstance(obj, dict):
            if all(isinstance(k, str) for k in obj):
                return {"__dict__": {k: walk(v) for k, v in obj.items()}}
            return {"__items__": [[walk(k), walk(v)] for k, v in obj.items()]}
        if isinstance(obj, tuple):
            return {"__tuple__": [walk(v) for v in obj]}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, os.PathLike):
            return os.fspath(obj)
        if isinstance(obj, torch.device):
            return {"__device__": str(obj)}
        if obj is None or isinstance(obj, (str, bool, int, float)):
            return obj
        raise TypeError(f"Cannot save an object of type {type(obj).__name__}.")

    return walk(tree), tensors


def unpack(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`pack`."""

    def walk(obj: Any) -> Any:
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        if not isinstance(obj, dict):
            return obj
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__array__" in obj:
            values = obj["__array__"]
            if obj["dtype"] != "O":
                return np.array(values, dtype=obj["dtype"])
            out = np.empty(len(values), dtype=object)
            out[:] = values
            return out
        if "__dict__" in obj:
            return {k: walk(v) for k, v in obj["__dict__"].items()}
        if "__items__" in obj:
            return {walk(k): walk(v) for k, v in obj["__items__"]}
        if "__tuple__" in obj:
            return tuple(walk(v) for v in obj["__tuple__"])
        if "__device__" in obj:
            return torch.device(obj["__device__"])
        raise ModelFileError(f"Unknown entry in the model file: {sorted(obj)}.")

    return walk(tree)


# -- archives ----------------------------------------------------------------------------------


def write_archive(path: str | os.PathLike, tree: Any, *, kind: str) -> Path:
    """Write ``tree`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    meta, tensors = pack(tree)
    header = {
        "format_version": FORMAT_VERSION,
        "diffmm_version": __version__,
        "kind": kind,
        "content": meta,
    }
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"Cannot save to {path}: the folder {folder} does not exist.")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(_JSON_NAME, json.dumps(header, allow_nan=True))
            archive.writestr(_TENSOR_NAME, save_tensors(tensors) if tensors else b"")
        with open(tmp_name, "rb") as done:
            os.fsync(done.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return path


def read_archive(path: str | os.PathLike, *, kind: str) -> tuple[Any, dict[str, Any]]:
    """Read a file written by :func:`write_archive`; return ``(tree, header)``.

    Raises :class:`ModelFileError` for a corrupted file, another kind of file, or a format newer
    than this version of the package understands.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No diffmm {kind} file at {path}.")
    try:
        with zipfile.ZipFile(path) as archive:
            header = json.loads(archive.read(_JSON_NAME))
            raw_tensors = archive.read(_TENSOR_NAME)
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as exc:
        raise ModelFileError(
            f"{path} is not a readable diffmm {kind} file (corrupted or of another kind): {exc}"
        ) from None
    if not isinstance(header, dict) or "format_version" not in header:
        raise ModelFileError(f"{path} is not a diffmm {kind} file (no format version).")
    version = header["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} uses file format {version}, newer than the format {FORMAT_VERSION} this "
            f"diffmm ({__version__}) reads; upgrade diffmm (it was written by diffmm "
            f"{header.get('diffmm_version')})."
        )
    if header.get("kind") != kind:
        raise ModelFileError(f"{path} holds a diffmm {header.get('kind')!r}, not a {kind!r}.")
    try:
        tensors = load_tensors(raw_tensors) if raw_tensors else {}
        tree = unpack(header["content"], tensors)
    except ModelFileError:
        raise
    except Exception as exc:  # safetensors raises its own error types on corrupted bytes
        raise ModelFileError(f"{path} is corrupted: {exc}") from None
    return tree, header
