"""A file format that never executes code on load: JSON for structure, safetensors for arrays.

A model file (and a training checkpoint) is a zip archive holding ``diffmm.json`` (format
version, package version, kind, and a JSON tree in which every array is a reference) and
``tensors.safetensors`` (the arrays). Files are written to a temporary name in the target's
folder and renamed into place, so an interrupted save never leaves a half-written file at the
target path.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import struct
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

from ._errors import ModelFileError
from ._version import __version__

__all__ = [
    "FORMAT_VERSION",
    "FileState",
    "ModelFileError",
    "check_array",
    "pack",
    "read_archive",
    "unpack",
    "write_archive",
]

# 1: the first format. 2: DiffMM's modality features are stored beside the network's
# state_dict instead of in it (files of format 1 still load).
FORMAT_VERSION = 2
_STR_DTYPE = re.compile(r"^<U[0-9]{1,6}$")
_JSON_NAME = "diffmm.json"
_TENSOR_NAME = "tensors.safetensors"

# This module never imports torch (serving files are read without it); torch objects in a tree
# to save are recognised through the module torch already is when they exist.


def _torch() -> Any:
    return sys.modules.get("torch")


# -- a JSON tree with arrays held aside ---------------------------------------------------------


def pack(tree: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """Replace every tensor/array in a nested structure by a reference; return both parts.

    Supports dicts (any str/int keys), lists, tuples, str, int, float, bool, None, NumPy
    scalars, torch tensors and devices, and arrays (numeric arrays aside; string or object
    arrays of str/int values as JSON lists).
    """
    torch = _torch()
    arrays: dict[str, np.ndarray] = {}
    seen: dict[int, str] = {}  # the same object referenced twice is stored once

    def store(obj: Any, array: Callable[[], np.ndarray]) -> str:
        if id(obj) not in seen:
            key = f"t{len(arrays)}"
            arrays[key] = np.ascontiguousarray(array())
            seen[id(obj)] = key
        return seen[id(obj)]

    def walk(obj: Any) -> Any:
        if torch is not None and isinstance(obj, torch.Tensor):
            return {"__tensor__": store(obj, lambda: obj.detach().cpu().numpy())}
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind in "biuf":
                return {"__ndarray__": store(obj, lambda: obj)}
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
        if torch is not None and isinstance(obj, torch.device):
            return {"__device__": str(obj)}
        if obj is None or isinstance(obj, (str, bool, int, float)):
            return obj
        raise TypeError(f"Cannot save an object of type {type(obj).__name__}.")

    return walk(tree), arrays


def unpack(
    tree: Any, arrays: dict[str, np.ndarray], *, tensors: Literal["torch", "numpy"] = "torch"
) -> Any:
    """Inverse of :func:`pack`; raises :class:`ModelFileError` for anything :func:`pack` never
    writes (unknown markers, references to missing arrays, values of the wrong type).

    Saved tensors come back as torch tensors, or with ``tensors="numpy"`` as NumPy arrays (and
    devices as strings): then torch is not imported.
    """
    torch = None
    if tensors == "torch":
        import torch

    def walk(obj: Any) -> Any:
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        if not isinstance(obj, dict):
            return obj
        if len(obj) == 1 and "__tensor__" in obj:
            array = _tensor(arrays, obj["__tensor__"])
            return array if torch is None else torch.from_numpy(array)
        if len(obj) == 1 and "__ndarray__" in obj:
            return _tensor(arrays, obj["__ndarray__"])
        if set(obj) == {"__array__", "dtype"}:
            return _id_array(obj["__array__"], obj["dtype"])
        if len(obj) == 1 and "__dict__" in obj and isinstance(obj["__dict__"], dict):
            return {k: walk(v) for k, v in obj["__dict__"].items()}
        if len(obj) == 1 and "__items__" in obj and _pairs(obj["__items__"]):
            return {_key(walk(k)): walk(v) for k, v in obj["__items__"]}
        if len(obj) == 1 and "__tuple__" in obj and isinstance(obj["__tuple__"], list):
            return tuple(walk(v) for v in obj["__tuple__"])
        if len(obj) == 1 and "__device__" in obj and isinstance(obj["__device__"], str):
            if torch is None:
                return obj["__device__"]
            try:
                return torch.device(obj["__device__"])
            except RuntimeError:
                raise ModelFileError(f"Unknown device {obj['__device__']!r} in the file.") from None
        raise ModelFileError(f"Unknown entry in the model file: {sorted(map(str, obj))[:5]}.")

    return walk(tree)


def _tensor(arrays: dict[str, np.ndarray], key: Any) -> np.ndarray:
    if not isinstance(key, str) or key not in arrays:
        raise ModelFileError(f"The file refers to a tensor {key!r} that it does not hold.")
    return arrays[key]


def _id_array(values: Any, dtype: Any) -> np.ndarray:
    ok = isinstance(values, list) and all(
        isinstance(v, (str, int)) and not isinstance(v, bool) for v in values
    )
    if not ok or not (dtype == "O" or (isinstance(dtype, str) and _STR_DTYPE.match(dtype))):
        raise ModelFileError("An id array in the file is malformed.")
    if dtype != "O":
        if not all(isinstance(v, str) for v in values):
            raise ModelFileError("A string id array in the file holds other values.")
        return np.array(values, dtype=np.dtype(dtype))
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _pairs(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(p, list) and len(p) == 2 for p in items)


def _key(key: Any) -> Any:
    if isinstance(key, (list, dict)):
        raise ModelFileError("A mapping in the file has a key of the wrong type.")
    return key


# -- archives ----------------------------------------------------------------------------------


def write_archive(path: str | os.PathLike, tree: Any, *, kind: str) -> Path:
    """Write ``tree`` to ``path`` atomically (temporary file in the same folder, then rename).

    The file gets the permissions a new file gets under the process's umask (as ``open``
    gives), not ``mkstemp``'s 0600. Temporary files that an earlier save killed midway left
    behind (their process is gone) are removed.
    """
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
    _remove_stale_temporaries(folder, path.name)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=folder
    )
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(_JSON_NAME, json.dumps(header, allow_nan=True))
            archive.writestr(_TENSOR_NAME, save_arrays(tensors) if tensors else b"")
        with open(tmp_name, "rb") as done:
            os.fsync(done.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return path


def _umask() -> int:
    """The process's umask (read by setting it, so under a lock against other threads)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def _remove_stale_temporaries(folder: Path, name: str) -> None:
    """Delete ``.<name>.<pid>.*.tmp`` files whose writing process no longer exists."""
    for candidate in folder.glob(f".{glob.escape(name)}.*.tmp"):
        parts = candidate.name[len(name) + 2 :].split(".")
        if not parts[0].isdigit() or _alive(int(parts[0])):
            continue
        with contextlib.suppress(OSError):  # another process may have removed it first
            candidate.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # exists under another user, or cannot tell: leave its file alone
    return True


# What hostile or damaged bytes make the zip reader raise (beside ``BadZipFile``): unsupported
# compression or encryption flags, truncated structures, impossible offsets.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    OverflowError,
    struct.error,
)
_MAX_DEPTH = 64  # of the JSON tree; the package writes fewer than 10 levels


def read_archive(
    path: str | os.PathLike, *, kind: str, tensors: Literal["torch", "numpy"] = "torch"
) -> tuple[Any, dict[str, Any]]:
    """Read a file written by :func:`write_archive`; return ``(tree, header)``.

    Raises :class:`ModelFileError` for a corrupted or hostile file, another kind of file, or a
    format newer than this version of the package understands. Nothing larger than the file
    itself is read or allocated: members must be stored uncompressed (as the writer stores
    them), with sizes within the file's.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No diffmm {kind} file at {path}.")
    unreadable = f"{path} is not a readable diffmm {kind} file (corrupted or of another kind)"
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            for name in (_JSON_NAME, _TENSOR_NAME):
                info = members.get(name)
                if info is None:
                    raise ModelFileError(f"{unreadable}: it has no {name}.")
                if info.compress_type != zipfile.ZIP_STORED:
                    raise ModelFileError(f"{unreadable}: its {name} is compressed.")
                if info.file_size != info.compress_size or info.file_size > size:
                    raise ModelFileError(
                        f"{unreadable}: its {name} declares {info.file_size} bytes in a file "
                        f"of {size}."
                    )
            text = archive.read(_JSON_NAME)
            raw_tensors = archive.read(_TENSOR_NAME)
    except _ZIP_ERRORS as exc:
        raise ModelFileError(f"{unreadable}: {exc}") from None
    try:
        header = json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # also UnicodeDecodeError, JSONDecodeError
        raise ModelFileError(f"{unreadable}: its {_JSON_NAME} is not JSON ({exc}).") from None
    if _depth(header) > _MAX_DEPTH:
        raise ModelFileError(f"{unreadable}: its {_JSON_NAME} is nested too deeply.")
    if not isinstance(header, dict) or "format_version" not in header:
        raise ModelFileError(f"{path} is not a diffmm {kind} file (no format version).")
    version = header["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} uses file format {version!r}, newer than the format {FORMAT_VERSION} this "
            f"diffmm ({__version__}) reads; upgrade diffmm (it was written by diffmm "
            f"{header.get('diffmm_version')})."
        )
    if header.get("kind") != kind:
        raise ModelFileError(f"{path} holds a diffmm {header.get('kind')!r}, not a {kind!r}.")
    if "content" not in header:
        raise ModelFileError(f"{unreadable}: it has no content.")
    try:
        arrays = load_arrays(raw_tensors) if raw_tensors else {}
    except SafetensorError as exc:
        raise ModelFileError(f"{path} is corrupted: its tensors cannot be read ({exc}).") from None
    return unpack(header["content"], arrays, tensors=tensors), header


def _depth(tree: Any) -> int:
    """How deeply ``tree``'s lists and dicts nest (iteratively: no recursion limit)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (list, dict)):
            deepest = max(deepest, depth)
            if depth > _MAX_DEPTH:
                break
            stack.extend(
                (v, depth + 1) for v in (node.values() if isinstance(node, dict) else node)
            )
    return deepest


class FileState:
    """A fitted state read from a file, with checked access to its entries.

    Every getter checks the entry's presence, type, dimensions and values, and raises
    :class:`ModelFileError` naming the entry when the file does not hold what a model needs:
    a file can never reach the model's code with the wrong kind of value.
    """

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ModelFileError(f"{where} is not a mapping in the file.")
        self.data = data
        self.where = where

    def error(self, message: str) -> ModelFileError:
        return ModelFileError(f"The model file is inconsistent: {message}.")

    def _get(self, key: str) -> Any:
        if key not in self.data:
            raise self.error(f"{self.where} has no {key!r}")
        return self.data[key]

    def has(self, key: str) -> bool:
        return key in self.data

    def sub(self, key: str) -> FileState:
        return FileState(self._get(key), f"{self.where}[{key!r}]")

    def value(self, key: str, *types: type, allow_none: bool = False) -> Any:
        value = self._get(key)
        if value is None and allow_none:
            return None
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            names = " or ".join(t.__name__ for t in types)
            raise self.error(f"{self.where}[{key!r}] is not a {names}")
        return value

    def array(
        self,
        key: str,
        *,
        ndim: int,
        kinds: str = "iuf",
        shape: tuple[int | None, ...] | None = None,
        finite: bool = False,
        non_negative: bool = False,
    ) -> np.ndarray:
        """A NumPy array (tensors are converted) of ``ndim`` dims and a dtype kind in ``kinds``."""
        return check_array(
            self._get(key),
            f"{self.where}[{key!r}]",
            self.error,
            ndim=ndim,
            kinds=kinds,
            shape=shape,
            finite=finite,
            non_negative=non_negative,
        )

    def ints(self, key: str, length: int) -> list[int]:
        """A list (or tuple) of ``length`` plain integers."""
        value = self.value(key, list, tuple)
        if len(value) != length or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise self.error(f"{self.where}[{key!r}] is not {length} integers")
        return list(value)

    def strings(self, key: str) -> list[str]:
        """A non-empty list (or tuple) of distinct non-empty strings."""
        value = self.value(key, list, tuple)
        if not value or not all(isinstance(v, str) and v for v in value):
            raise self.error(f"{self.where}[{key!r}] is not a list of names")
        if len(set(value)) != len(value):
            raise self.error(f"{self.where}[{key!r}] repeats a name")
        return list(value)

    def tensor_dict(self, key: str) -> dict[str, Any]:
        """A module's state dict: a mapping of names to (torch) tensors."""
        value = self._get(key)
        torch = _torch()
        if not (
            torch is not None
            and isinstance(value, dict)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
        ):
            raise self.error(f"{self.where}[{key!r}] is not a module state")
        return dict(value)


def check_array(
    value: Any,
    what: str,
    error: Callable[[str], Exception],
    *,
    ndim: int,
    kinds: str = "iuf",
    shape: tuple[int | None, ...] | None = None,
    finite: bool = False,
    non_negative: bool = False,
) -> np.ndarray:
    """``value`` as a NumPy array of the given dimensions and dtype kinds, or ``error(...)``."""
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray) or value.ndim != ndim or value.dtype.kind not in kinds:
        raise error(f"{what} is not a {ndim}-D array of the expected kind")
    pairs = zip(shape or (), value.shape, strict=False)
    if shape is not None and any(s is not None and s != n for s, n in pairs):
        raise error(f"{what} has shape {value.shape}, expected {shape}")
    if finite and value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise error(f"{what} holds NaN or infinite values")
    if non_negative and value.size and value.dtype.kind in "if" and value.min() < 0:
        raise error(f"{what} holds negative values")
    return value
