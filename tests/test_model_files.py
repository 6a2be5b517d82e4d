"""A campaign over mutated model files: ``load`` never fails in an undocumented way.

Two properties, over more than 10,000 mutations of one saved model per run:

* **Damaged bytes** (bits flipped, bytes overwritten, cut, inserted, deleted or moved anywhere
  in the file, zip structure, JSON, safetensors header and tensors alike): ``load`` raises
  :class:`ModelFileError`, or (where the damage missed every byte the model is made of, e.g. a
  timestamp) returns a model equal to the original.
* **Hostile content**, re-zipped so that every checksum is right (a JSON tree with values
  replaced, removed or swapped; a safetensors header with other dtypes, shapes or offsets;
  tensors with other bytes): ``load`` raises :class:`ModelFileError`, or returns a model
  whose parts agree, which then recommends without error.

The campaign runs in its own process. The memory a load takes is measured load by load (the
process's peak resident memory is reset before each): at most twice the file's tensor bytes
plus 200 MB over what the process held when the load began.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import traceback
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

N_DAMAGED = int(os.environ.get("N_DAMAGED", 7_000))
N_HOSTILE = int(os.environ.get("N_HOSTILE", 3_500))
OUTCOMES: dict[str, dict[str, int]] = {"damaged": {}, "hostile": {}}
UNEXPECTED: list[str] = []


def _model_bytes() -> tuple[bytes, object]:
    from diffmm import DiffMMRecommender
    from diffmm.datasets import make_synthetic

    data = make_synthetic(n_users=30, n_items=20, interactions_per_user=4, random_state=0)
    model = DiffMMRecommender(
        epochs=1, denoiser_hidden_dims=(8,), embedding_dim=4, batch_size=64, random_state=0
    ).fit(data.train, data.features, validation_data=data.validation)
    with tempfile.TemporaryDirectory() as folder:
        path = model.save(Path(folder) / "m.diffmm")
        return path.read_bytes(), model


ORIGINAL_BYTES, ORIGINAL = (None, None)
FOLDER: Path | None = None  # the campaign's own temporary folder, made and removed by run()
SETTINGS = dict(
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    derandomize=False,
)


def _same(a, b) -> bool:
    """Two DiffMM models with the same settings and fitted state."""
    if a.get_params() != b.get_params():
        return False
    arrays = ("user_factors_", "item_factors_", "user_ids_", "item_ids_")
    if not all(np.array_equal(getattr(a, k), getattr(b, k)) for k in arrays):
        return False
    for attr in ("indptr", "indices", "data"):
        if not np.array_equal(getattr(a.interactions_, attr), getattr(b.interactions_, attr)):
            return False
    if not np.array_equal(a.interaction_weights_.data, b.interaction_weights_.data):
        return False
    modules = [(a.network_, b.network_), *zip(a.denoisers_, b.denoisers_, strict=True)]
    for x, y in modules:
        sx, sy = x.state_dict(), y.state_dict()
        if sx.keys() != sy.keys() or not all(torch.equal(sx[k], sy[k]) for k in sx):
            return False
    return a.history_ == b.history_ and a.best_epoch_ == b.best_epoch_


PEAK = {"growth_kb": 0}


def _status_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def _reset_peak() -> int | None:
    """Reset the process's peak RSS (Linux); return the RSS now in KiB, or None if it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _status_kb("VmRSS")


def _load(data: bytes, kind: str):
    """Load ``data`` as a model file; record the outcome and the load's peak memory."""
    from diffmm import DiffMMRecommender, ModelFileError

    path = FOLDER / "mutated.diffmm"
    path.write_bytes(data)
    before = _reset_peak()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = DiffMMRecommender.load(path)
    except ModelFileError:
        _record_peak(before)
        OUTCOMES[kind]["ModelFileError"] = OUTCOMES[kind].get("ModelFileError", 0) + 1
        return None
    except Exception as exc:  # the property's failure: reported, not raised here
        where = traceback.extract_tb(exc.__traceback__)[-3:]
        lines = "; ".join(f"{Path(f.filename).name}:{f.lineno}" for f in where)
        UNEXPECTED.append(f"{kind}: {type(exc).__name__}: {exc} at {lines}"[:400])
        return None
    _record_peak(before)
    OUTCOMES[kind]["loaded"] = OUTCOMES[kind].get("loaded", 0) + 1
    return model


def _record_peak(before: int | None) -> None:
    if before is not None:
        PEAK["growth_kb"] = max(PEAK["growth_kb"], _status_kb("VmHWM") - before)


# -- damaged bytes -------------------------------------------------------------------------


@st.composite
def damaged(draw) -> bytes:
    data = bytearray(ORIGINAL_BYTES)
    n = len(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "overwrite", "cut", "insert", "delete", "move"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            data[at : at + 4] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "move":
            length = draw(st.integers(1, 64))
            chunk = bytes(data[at : at + length])
            del data[at : at + length]
            target = draw(st.integers(0, len(data)))
            data[target:target] = chunk
        if not data:
            break
    assert n > 0
    return bytes(data)


@settings(max_examples=N_DAMAGED, **SETTINGS)
@given(damaged())
def campaign_damaged(data: bytes) -> None:
    model = _load(data, "damaged")
    if model is not None and not _same(model, ORIGINAL):
        UNEXPECTED.append("damaged: loaded a model that differs from the original")


# -- hostile content -----------------------------------------------------------------------


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, value in members.items():
            archive.writestr(name, value)
    return out.getvalue()


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
        st.sampled_from(["__tensor__", "__ndarray__", "__dict__", "t0", "t1", "<U3", "O"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(tree, prefix=()):
    """Every path (a tuple of keys and indices) to a node of a JSON tree."""
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from _paths(value, (*prefix, index))


def _set(tree, path, value):
    if not path:
        return value
    node = tree
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return tree


@st.composite
def hostile(draw) -> bytes:
    members = _members(ORIGINAL_BYTES)
    target = draw(st.sampled_from(["json", "json", "safetensors header", "tensor bytes"]))
    if target == "json":
        tree = json.loads(members["diffmm.json"])
        for _ in range(draw(st.integers(1, 3))):
            paths = list(_paths(tree))
            path = draw(st.sampled_from(paths))
            action = draw(st.sampled_from(["replace", "delete", "swap"]))
            if action == "replace" or not path:
                tree = _set(tree, path, draw(json_values))
            elif action == "delete":
                parent = tree
                for step in path[:-1]:
                    parent = parent[step]
                del parent[path[-1]]
            else:
                other = draw(st.sampled_from(paths))
                if other[: len(path)] != path and path[: len(other)] != other:
                    a, b = _get(tree, path), _get(tree, other)
                    tree = _set(_set(tree, path, b), other, a)
        members["diffmm.json"] = json.dumps(tree).encode()
    else:
        raw = members["tensors.safetensors"]
        (length,) = struct.unpack("<Q", raw[:8])
        header, body = json.loads(raw[8 : 8 + length]), bytearray(raw[8 + length :])
        if target == "safetensors header":
            name = draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
            field = draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
            header[name][field] = draw(
                {
                    "dtype": st.sampled_from(["F32", "F16", "I64", "U8", "BOOL", "F64", "X"]),
                    "shape": st.lists(st.integers(-2, 10**6), max_size=3),
                    "data_offsets": st.lists(
                        st.integers(-5, len(body) + 5), min_size=2, max_size=2
                    ),
                }[field]
            )
        else:
            for _ in range(draw(st.integers(1, 8))):
                at = draw(st.integers(0, len(body) - 1))
                body[at] = draw(st.integers(0, 255))
        text = json.dumps(header).encode()
        members["tensors.safetensors"] = struct.pack("<Q", len(text)) + text + bytes(body)
    return _zip(members)


def _get(tree, path):
    for step in path:
        tree = tree[step]
    return tree


@settings(max_examples=N_HOSTILE, **SETTINGS)
@given(hostile())
def campaign_hostile(data: bytes) -> None:
    from diffmm import InvalidInputError

    model = _load(data, "hostile")
    if model is None:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.recommend(model.user_ids_[:2], n=3)
    except InvalidInputError:
        pass  # e.g. settings that now make n larger than anything left: a clear refusal
    except Exception as exc:
        UNEXPECTED.append(f"hostile, loaded then recommend: {type(exc).__name__}: {exc}"[:300])


def run(kinds: list[str]) -> dict:
    global ORIGINAL_BYTES, ORIGINAL, FOLDER
    ORIGINAL_BYTES, ORIGINAL = _model_bytes()
    measurable = _reset_peak() is not None
    with tempfile.TemporaryDirectory(prefix="diffmm-campaign-") as folder:
        FOLDER = Path(folder)
        if "damaged" in kinds:
            campaign_damaged()
        if "hostile" in kinds:
            campaign_hostile()
    raw = _members(ORIGINAL_BYTES)["tensors.safetensors"]
    (length,) = struct.unpack("<Q", raw[:8])
    return {
        "outcomes": OUTCOMES,
        "unexpected": UNEXPECTED[:20],
        "n_unexpected": len(UNEXPECTED),
        # The largest growth of the resident memory during one load, over its start.
        "peak_growth_bytes": PEAK["growth_kb"] * 1024 if measurable else None,
        "tensor_bytes": len(raw) - 8 - length,
    }


def _campaign(kind: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, kind],
        capture_output=True,
        text=True,
        timeout=1500,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["n_unexpected"] == 0, report["unexpected"]
    if report["peak_growth_bytes"] is not None:
        assert report["peak_growth_bytes"] <= 2 * report["tensor_bytes"] + 200 * 2**20, report
    return report["outcomes"][kind]


# The two campaigns run in two processes (in parallel under pytest-xdist): 10,500 mutated
# files in all.
def test_damaged_model_files():
    outcomes = _campaign("damaged")
    assert sum(outcomes.values()) >= N_DAMAGED
    assert outcomes.get("ModelFileError", 0) > N_DAMAGED // 2  # refusals, and intact loads
    assert N_DAMAGED + N_HOSTILE >= 10_000


def test_hostile_model_files():
    outcomes = _campaign("hostile")
    assert sum(outcomes.values()) >= N_HOSTILE
    assert outcomes.get("ModelFileError", 0) > 0 and outcomes.get("loaded", 0) > 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(json.dumps(run(sys.argv[1:] or ["damaged", "hostile"])))
