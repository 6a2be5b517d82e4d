"""Trust under attack: a failed fit never changes a model, files are checked, outputs are safe.

Real faults where the operating system can make them: a real unwritable folder, a real full
disk, real SIGINT and SIGKILL sent to a real process. Each case that can only be made on some
machines (a read-only mount, an immutable folder) is skipped where it cannot be made.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from diffmm import (
    DiffMMRecommender,
    InvalidInputError,
    LightGCNRecommender,
    ModelFileError,
    NonFiniteLossError,
    PopularityRecommender,
    UnknownIdError,
    losses,
)
from diffmm.datasets import load_diffmm_format, load_mmrec_format, make_synthetic
from test_cli import run_cli

FAST = {"epochs": 1, "denoiser_hidden_dims": (16,), "embedding_dim": 8, "random_state": 0}
DATA = make_synthetic(n_users=60, n_items=40, random_state=0)
ROWS = DATA.interaction_rows("train")
ROOT = Path(__file__).resolve().parents[1]


def _fitted_state(model) -> dict:
    """The objects of every fitted attribute (identity tells whether any was replaced)."""
    return {k: v for k, v in vars(model).items() if k.endswith("_") or k in ("_users", "_items")}


def _assert_unchanged(model, state: dict, recommendations) -> None:
    now = _fitted_state(model)
    assert now.keys() == state.keys()
    assert all(now[k] is state[k] for k in state), [k for k in state if now[k] is not state[k]]
    ids, scores = model.recommend([0, 1, 2], n=5)
    np.testing.assert_array_equal(ids, recommendations[0])
    np.testing.assert_array_equal(scores, recommendations[1])


# -- 1. fit is all or nothing ------------------------------------------------------------------


def test_the_reported_refit_keeps_the_previous_model():
    model = DiffMMRecommender(**FAST).fit(DATA.train, DATA.features)
    state, before = _fitted_state(model), model.recommend([0, 1, 2], n=5)
    rows = [*DATA.interaction_rows("train")[:200].tolist(), [1000, 0]]
    with pytest.raises(ValueError):
        model.set_params(noise_min=0.5).fit(rows, DATA.features)
    with pytest.raises(UnknownIdError):  # user 1000 was never trained on
        model.recommend([1000], n=3)
    _assert_unchanged(model, state, before)


def _nan_bpr(monkeypatch, from_call: int = 1):
    real, calls = losses.bpr_loss, {"n": 0}

    def nan_after(*args):
        calls["n"] += 1
        value = real(*args)
        return value * float("nan") if calls["n"] >= from_call else value

    monkeypatch.setattr(losses, "bpr_loss", nan_after)


def _interrupt_first_epoch(monkeypatch):
    from diffmm._training import Trainer

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "recommender_epoch", interrupted)


FAILURES = {
    "a parameter constraint": ({"epochs": 0}, {}, ValueError, None),
    "a rule between parameters": ({"noise_min": 0.5}, {}, ValueError, None),
    "settings too large for memory": ({"embedding_dim": 10**12}, {}, MemoryError, None),
    "unknown validation users": ({}, {"validation_data": [[999, 0]]}, ValueError, None),
    "a checkpoint folder that is a file": ({"checkpoint_dir": __file__}, {}, ValueError, None),
    "a non-finite loss in epoch 2": ({"epochs": 3}, {}, NonFiniteLossError, "nan_epoch2"),
    "a non-finite loss in epoch 1": ({}, {}, NonFiniteLossError, "nan_epoch1"),
    "Ctrl-C before the first epoch ends": ({}, {}, KeyboardInterrupt, "interrupt"),
}


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("fitted_before", [True, False], ids=["refit", "first-fit"])
def test_a_failing_fit_leaves_the_estimator_as_it_was(failure, fitted_before, monkeypatch):
    params, fit_kwargs, error, fault = FAILURES[failure]
    model = DiffMMRecommender(**FAST)
    if fitted_before:
        model.fit(DATA.train, DATA.features)
        state, before = _fitted_state(model), model.recommend([0, 1, 2], n=5)
    if fault == "nan_epoch2":
        n_batches = -(-DATA.train.nnz // model.batch_size)
        _nan_bpr(monkeypatch, from_call=n_batches + 1)
    elif fault == "nan_epoch1":
        _nan_bpr(monkeypatch)
    elif fault == "interrupt":
        _interrupt_first_epoch(monkeypatch)
    with pytest.raises(error) as caught:
        model.set_params(**params).fit(DATA.train, DATA.features, **fit_kwargs)
    monkeypatch.undo()
    if fitted_before:
        _assert_unchanged(model, state, before)
    else:
        assert not _fitted_state(model)
    if fault == "nan_epoch2":  # the best weights so far travel with the error
        assert caught.value.model.best_epoch_ == 1
        assert caught.value.model.recommend([0], n=3)[0].shape == (1, 3)
    if fault == "nan_epoch1":
        assert caught.value.model is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: LightGCNRecommender(epochs=1, embedding_dim=8, random_state=0),
        lambda: PopularityRecommender(),
    ],
    ids=["lightgcn", "popularity"],
)
def test_baselines_are_all_or_nothing_too(make):
    model = make().fit(DATA.train)
    state, before = _fitted_state(model), model.recommend([0, 1, 2], n=5)
    with pytest.raises(ValueError):
        model.fit(np.array([[0, 0, -1.0]]))  # a negative weight
    _assert_unchanged(model, state, before)


# -- 2. checkpoints that cannot be written -------------------------------------------------


@pytest.fixture
def unwritable_dir(tmp_path):
    """A folder the process really cannot write to (as root too), or a skip."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    undo = [lambda: folder.chmod(stat.S_IRWXU)]
    if os.access(folder, os.W_OK) or _writable(folder):  # root ignores the mode
        if (
            shutil.which("chattr") is None
            or subprocess.run(
                ["chattr", "+i", str(folder)], capture_output=True, check=False
            ).returncode
        ):
            undo[0]()
            pytest.skip("cannot make a folder unwritable here")
        undo.insert(0, lambda: subprocess.run(["chattr", "-i", str(folder)], check=False))
    if _writable(folder):
        for step in undo:
            step()
        pytest.skip("cannot make a folder unwritable here")
    yield folder
    for step in undo:
        step()


def _writable(folder: Path) -> bool:
    try:
        (folder / ".probe").write_text("x")
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


def test_an_unwritable_checkpoint_folder_is_refused_before_training(unwritable_dir):
    model = DiffMMRecommender(**FAST, checkpoint_dir=unwritable_dir)
    with pytest.raises(InvalidInputError, match="Cannot write checkpoints to"):
        model.fit(DATA.train, DATA.features)
    assert not _fitted_state(model)


@pytest.fixture
def small_disk(tmp_path):
    """A real file system of 64 KiB (a tmpfs), or a skip where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode:
        pytest.skip("cannot mount a small file system here")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_warns_and_the_run_goes_on(small_disk):
    # The checkpoint of this model is larger than the disk: every write fails with ENOSPC.
    model = DiffMMRecommender(**{**FAST, "epochs": 2}, checkpoint_dir=small_disk)
    with pytest.warns(UserWarning, match="Could not write the checkpoint after epoch 1"):
        model.fit(DATA.train, DATA.features)
    assert model.best_epoch_ == 2 and len(model.history_) == 2
    assert not list(small_disk.glob(".*.tmp"))  # no half-written file is left


# -- 3. the command line never writes over its inputs ------------------------------------------


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dm")
    for name, matrix in (("trnMat.pkl", DATA.train), ("valMat.pkl", DATA.validation)):
        with open(folder / name, "wb") as fh:
            pickle.dump(sp.coo_matrix(matrix), fh)
    for modality, values in DATA.features.items():
        np.save(folder / f"{modality}_feat.npy", values)
    return folder


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.diffmm"
    return DiffMMRecommender(**FAST).fit(DATA.train, DATA.features).save(path)


TINY_CLI = ["--epochs", "1", "--set", "denoiser_hidden_dims=[8]", "--quiet", "--device", "cpu"]


def test_fit_refuses_a_report_on_the_model_file(data_folder, tmp_path):
    out = tmp_path / "m.json"
    result = run_cli("fit", data_folder, "--out", out, "--report", out, *TINY_CLI)
    assert result.returncode == 2 and "same file" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_fit_refuses_to_write_into_its_data(data_folder):
    before = (data_folder / "trnMat.pkl").read_bytes()
    result = run_cli("fit", data_folder, "--out", data_folder / "trnMat.pkl", *TINY_CLI)
    assert result.returncode == 2 and "input of this command" in result.stderr
    assert (data_folder / "trnMat.pkl").read_bytes() == before


@pytest.mark.parametrize("target", ["model", "data"])
def test_recommend_refuses_to_overwrite_a_model_or_data(model_file, data_folder, target):
    path = model_file if target == "model" else data_folder / "trnMat.pkl"
    before = path.read_bytes()
    result = run_cli("recommend", model_file, "--users", "0", "--output", path)
    assert result.returncode == 2, result.stderr
    assert path.read_bytes() == before
    DiffMMRecommender.load(model_file)  # still a model


def test_recommend_writes_its_list_atomically(model_file, tmp_path):
    out = tmp_path / "top.csv"
    out.write_text("an earlier list\n")
    assert run_cli("recommend", model_file, "--users", "0", "1", "--output", out).returncode == 0
    assert out.read_text().startswith("user,rank,item,score")
    assert [p.name for p in tmp_path.iterdir()] == ["top.csv"]  # no temporary file left


# -- 4.-6. hostile model files -------------------------------------------------------------


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rezip(path: Path, members: dict[str, bytes], compress=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compress) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _edit_json(model_file: Path, tmp_path: Path, edit) -> Path:
    members = _members(model_file)
    header = json.loads(members["diffmm.json"])
    edit(header)
    members["diffmm.json"] = json.dumps(header).encode()
    return _rezip(tmp_path / "edited.diffmm", members)


def test_a_compressed_member_is_refused_without_inflating_it(model_file, tmp_path):
    # 200 MB of JSON whitespace compress to about 200 KB: the reader must not inflate it.
    members = _members(model_file)
    members["diffmm.json"] = members["diffmm.json"] + b" " * (200 << 20)
    bomb = _rezip(tmp_path / "bomb.diffmm", members, zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 2 << 20
    script = textwrap.dedent(
        f"""
        import resource, sys
        from diffmm import DiffMMRecommender, ModelFileError
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            DiffMMRecommender.load({str(bomb)!r})
        except ModelFileError as exc:
            print("refused:", exc)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print("grew_kb", after - before)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert "refused:" in done.stdout and "compressed" in done.stdout
    grew = int(done.stdout.split("grew_kb")[1])
    assert grew < 50_000  # KiB: nowhere near the 200 MB the member would inflate to


def test_swapped_factors_are_refused(tmp_path):
    # Users and items of different counts: swapping their factors cannot pass as a model.
    model = DiffMMRecommender(**FAST).fit(DATA.train, DATA.features)
    path = model.save(tmp_path / "m.diffmm")

    def swap(header):
        fitted = header["content"]["__dict__"]["fitted"]["__dict__"]
        fitted["user_factors_"], fitted["item_factors_"] = (
            fitted["item_factors_"],
            fitted["user_factors_"],
        )

    with pytest.raises(ModelFileError, match="factors have shapes"):
        DiffMMRecommender.load(_edit_json(path, tmp_path, swap))


def test_settings_from_a_file_are_checked_and_checkpoint_dir_is_not_restored(tmp_path):
    model = DiffMMRecommender(**FAST, checkpoint_dir=tmp_path / "runs")
    path = model.fit(DATA.train, DATA.features).save(tmp_path / "m.diffmm")
    assert DiffMMRecommender.load(path).checkpoint_dir is None

    def bad_epochs(header):
        header["content"]["__dict__"]["params"]["__dict__"]["epochs"] = -3

    with pytest.raises(ModelFileError, match="'epochs' parameter"):
        DiffMMRecommender.load(_edit_json(path, tmp_path, bad_epochs))


def _hostile_files(model_file: Path, tmp_path: Path) -> dict[str, Path]:
    members = _members(model_file)
    out = {}
    deep = b"[" * 100_000 + b"]" * 100_000
    out["deeply nested JSON"] = _rezip(tmp_path / "deep.diffmm", {**members, "diffmm.json": deep})
    out["non-UTF-8 JSON"] = _rezip(
        tmp_path / "latin.diffmm", {**members, "diffmm.json": b'{"k": "\xe9"}'}
    )
    header = json.loads(members["diffmm.json"])
    for name, content in (("content a list", []), ("content a string", "x")):
        header_copy = {**header, "content": content}
        out[name] = _rezip(
            tmp_path / f"{name}.diffmm",
            {**members, "diffmm.json": json.dumps(header_copy).encode()},
        )
    raw = bytearray(model_file.read_bytes())
    flag = raw.index(b"PK\x03\x04") + 6  # general-purpose flags of the first local header
    encrypted = bytearray(raw)
    encrypted[flag] |= 0x01
    central = raw.index(b"PK\x01\x02") + 8
    encrypted[central] |= 0x01
    (tmp_path / "encrypted.diffmm").write_bytes(encrypted)
    out["encryption flag"] = tmp_path / "encrypted.diffmm"
    method = bytearray(raw)
    method[raw.index(b"PK\x01\x02") + 10] = 99  # an unknown compression method
    (tmp_path / "method.diffmm").write_bytes(method)
    out["compression byte"] = tmp_path / "method.diffmm"
    return out


@pytest.mark.parametrize(
    "case",
    [
        "deeply nested JSON",
        "non-UTF-8 JSON",
        "content a list",
        "content a string",
        "encryption flag",
        "compression byte",
    ],
)
def test_hostile_model_files_give_model_file_errors(model_file, tmp_path, case):
    with pytest.raises(ModelFileError):
        DiffMMRecommender.load(_hostile_files(model_file, tmp_path)[case])


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt")
    DiffMMRecommender(**FAST, checkpoint_dir=folder).fit(DATA.train, DATA.features)
    return folder / "checkpoint.diffmm"


def _damage_checkpoint(path: Path, tmp_path: Path, damage) -> Path:
    members = _members(path)
    header = json.loads(members["diffmm.json"])
    damage(header["content"]["__dict__"])
    members["diffmm.json"] = json.dumps(header).encode()
    return _rezip(tmp_path / "damaged.diffmm", members)


DAMAGES = {
    "no fingerprint": lambda c: c.pop("fingerprint"),
    "state a string": lambda c: c.update(state="x"),
    "result missing": lambda c: c["state"]["__dict__"].pop("result"),
    "optimizer a list": lambda c: c["state"]["__dict__"].update(optimizer=[1, 2]),
    "rng a number": lambda c: c["state"]["__dict__"].update(rng=3),
    "epoch a string": lambda c: c["state"]["__dict__"]["result"]["__dict__"].update(epoch="x"),
    "history a dict": lambda c: c["state"]["__dict__"]["result"]["__dict__"].update(
        history={"__dict__": {}}
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_checkpoints_give_model_file_errors(checkpoint_file, tmp_path, damage):
    damaged = _damage_checkpoint(checkpoint_file, tmp_path, DAMAGES[damage])
    model = DiffMMRecommender(**FAST)
    with pytest.raises(ModelFileError):
        model.fit(DATA.train, DATA.features, resume_from=damaged)
    assert not _fitted_state(model)


# -- 7. file modes and stale temporary files ------------------------------------------------


def test_saved_files_follow_the_umask(model_file, tmp_path):
    model = DiffMMRecommender.load(model_file)
    old = os.umask(0o022)
    try:
        path = model.save(tmp_path / "m.diffmm")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_save_killed_midway_leaves_the_target_intact_and_no_lasting_temporaries(tmp_path):
    # A real process saving a large model in a loop, killed with SIGKILL at some moment.
    target = tmp_path / "big.diffmm"
    script = textwrap.dedent(
        f"""
        import numpy as np, sys
        from diffmm import PopularityRecommender
        rng = np.random.default_rng(0)
        rows = np.stack([rng.integers(0, 20000, 400000), rng.integers(0, 30000, 400000)], 1)
        model = PopularityRecommender().fit(rows)
        model.save({str(target)!r})
        print("saved", flush=True)
        while True:
            model.save({str(target)!r})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "saved"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    model = PopularityRecommender.load(target)  # the last complete save, whole
    assert model.n_items_ > 20000
    leftovers = list(tmp_path.glob(".big.diffmm.*.tmp"))
    model.save(target)  # the next save in that folder removes what the killed one left
    assert not list(tmp_path.glob(".big.diffmm.*.tmp")), leftovers


# -- 8.-9. ids -----------------------------------------------------------------------------


def _mmrec(folder: Path, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "x.inter").write_text("userID\titemID\tx_label\n" + "\n".join(lines) + "\n")
    return folder


def test_mmrec_ids_are_mapped_not_used_as_sizes(tmp_path):
    huge = 10**11
    folder = _mmrec(tmp_path / "a", [f"{huge}\t5\t0", "7\t5\t0", f"{2 * 10**8}\t9\t1"])
    data = load_mmrec_format(folder)
    assert data.train.shape == (3, 2)  # three users, two items: not 10**11 rows
    assert data.info["user_ids"].tolist() == [7, 2 * 10**8, huge]
    exact = _mmrec(tmp_path / "b", [f"{2**60}\t1\t0", f"{2**60 + 1}\t1\t0"])
    assert load_mmrec_format(exact).info["user_ids"].tolist() == [2**60, 2**60 + 1]
    words = _mmrec(tmp_path / "c", ["ann\tx1\t0", "bob\tx2\t0"])
    assert load_mmrec_format(words).info["item_ids"].tolist() == ["x1", "x2"]
    with pytest.raises(ValueError, match="not a path"):
        load_mmrec_format(folder, name="../x")


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([["a", 0], ["a\0", 1]], "NUL"),
        ([[2.0**53, 0], [2.0**53 + 2, 1]], r"beyond 2\*\*53"),
        ([["", 0]], "empty string"),
    ],
)
def test_ids_that_would_merge_are_refused(rows, match):
    with pytest.raises(InvalidInputError, match=match):
        PopularityRecommender().fit(np.array(rows, dtype=object))


# -- 10.-11. outputs and fold-in input -----------------------------------------------------


@pytest.mark.parametrize("kind", ["int", "str"])
def test_short_lists_are_padded_with_an_id_that_is_never_an_item(kind):
    rows = [[0, 0], [0, 1], [1, 1], [1, 2]]
    if kind == "str":
        rows = [[f"u{u}", f"i{i}"] for u, i in rows]
    model = PopularityRecommender().fit(np.array(rows, dtype=object))
    with pytest.warns(UserWarning):
        ids, scores = model.recommend([model.user_ids_[0]], n=5)
    padding = -1 if kind == "int" else ""
    assert ids[0].tolist()[1:] == [padding] * 2  # one candidate left, then padding
    assert padding not in model.item_ids_.tolist() and np.all(np.isinf(scores[0, 1:]))


@pytest.mark.parametrize(
    "histories",
    [
        sp.csr_matrix(np.array([[np.nan, 1.0] + [0.0] * 38])),
        sp.csr_matrix(np.array([[-1.0, 1.0] + [0.0] * 38])),
        {0: [1, 2]},
    ],
    ids=["nan", "negative", "dict"],
)
def test_fold_in_checks_histories_as_fit_checks_data(histories):
    model = DiffMMRecommender(**FAST).fit(DATA.train, DATA.features)
    with pytest.raises(InvalidInputError):
        model.recommend_new_users(histories)


# -- 12. silent oddities -------------------------------------------------------------------


def test_validation_data_equal_to_the_training_data_warns():
    with pytest.warns(UserWarning, match="validation_data holds only training interactions"):
        LightGCNRecommender(epochs=1, random_state=0).fit(DATA.train, validation_data=DATA.train)


def test_negative_entries_in_a_pickled_matrix_are_refused(tmp_path):
    with open(tmp_path / "trnMat.pkl", "wb") as fh:
        pickle.dump(sp.csr_matrix(np.array([[1.0, -1.0], [0.0, 1.0]])), fh)
    with pytest.raises(ValueError, match="negative values"):
        load_diffmm_format(tmp_path)


def test_cli_reports_impossible_sizes_and_odd_config_paths(data_folder, tmp_path):
    result = run_cli(
        "fit", data_folder, "--out", tmp_path / "m.diffmm", "--set", "embedding_dim=1000000000000"
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "parameters" in result.stderr and "GB" in result.stderr
    result = run_cli("fit", data_folder, "--out", tmp_path / "m.diffmm", "--config", os.devnull)
    assert result.returncode == 2 and "not found" not in result.stderr
    assert ".toml or .json" in result.stderr


# -- real signals ----------------------------------------------------------------------------


def test_a_real_sigint_mid_fit_keeps_the_best_epoch(tmp_path):
    out = tmp_path / "m.diffmm"
    script = textwrap.dedent(
        f"""
        import logging, sys, warnings
        import diffmm
        from diffmm import DiffMMRecommender
        from diffmm.datasets import make_synthetic
        logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
        data = make_synthetic(n_users=300, n_items=200, random_state=0)
        model = DiffMMRecommender(epochs=10_000, random_state=0, denoiser_hidden_dims=(64,))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(data.train, data.features, validation_data=data.validation)
        model.save({str(out)!r})
        print("DONE", model.interrupted_, model.best_epoch_, len(model.history_), flush=True)
        print("WARNED", any("interrupted" in str(w.message) for w in caught), flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    for line in proc.stdout:
        if line.startswith("epoch 2:"):
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, rest
    done = next(line for line in rest.splitlines() if line.startswith("DONE")).split()
    assert done[1] == "True" and int(done[2]) >= 1 and int(done[3]) >= 2
    assert "WARNED True" in rest
    model = DiffMMRecommender.load(out)
    assert model.interrupted_ and model.best_epoch_ == int(done[2])


# -- 13. the documented messages are the real ones -----------------------------------------


def _doc_examples() -> list[tuple[str, str]]:
    """(code, quoted message) pairs of docs/bad-input.md's checked table."""
    text = (ROOT / "docs" / "bad-input.md").read_text()
    block = text.split("<!-- checked:start -->")[1].split("<!-- checked:end -->")[0]
    pairs = []
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`") and cells[2].startswith("`"):
            pairs.append((cells[1].strip("`"), cells[2].strip("`")))
    return pairs


def test_bad_input_page_quotes_the_real_messages():
    examples = _doc_examples()
    assert len(examples) >= 10
    fitted = DiffMMRecommender(**FAST).fit(DATA.train, DATA.features)
    namespace = {
        "np": np,
        "sp": sp,
        "DATA": DATA,
        "model": fitted,
        "DiffMMRecommender": DiffMMRecommender,
        "PopularityRecommender": PopularityRecommender,
    }
    for code, quoted in examples:
        with contextlib.redirect_stderr(io.StringIO()), pytest.raises(Exception) as caught:
            exec(code, dict(namespace))
        assert quoted in str(caught.value), (code, str(caught.value))
