"""The command line end to end: ``python -m diffmm fit | evaluate | recommend | demo``.

The main flow runs in subprocesses, exactly as a user would run it, on tiny data sets written by
the tests in both supported folder formats. Help texts and the error cases run in-process
through :func:`diffmm.cli.main`, which is what the entry point calls, to keep the suite fast; two
error cases also run in a subprocess to check that no traceback reaches the user.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import diffmm
from diffmm import cli
from diffmm.datasets import make_synthetic

TINY = [
    "--epochs",
    "1",
    "--set",
    "denoiser_hidden_dims=[16]",
    "--set",
    "embedding_dim=8",
    "--set",
    "batch_size=64",
    "--device",
    "cpu",
    "--seed",
    "0",
]


def run_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # One thread per process: the data are tiny and the test machine has few cores.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "diffmm", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
        check=False,
    )


def run_main(capsys, *args: str | Path) -> tuple[int, str, str]:
    """``diffmm.cli.main`` in-process: (exit status, stdout, stderr)."""
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exc:  # argparse: --help, --version and usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr


# -- data in both folder formats -------------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_users=60, n_items=40, test_fraction=0.1, random_state=0)


def write_diffmm_folder(folder: Path, data) -> Path:
    """The DiffMM authors' layout: pickled scipy matrices and ``<modality>_feat.npy``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, matrix in (("trnMat.pkl", data.train), ("valMat.pkl", data.validation)):
        with open(folder / name, "wb") as fh:
            pickle.dump(sp.coo_matrix(matrix), fh)
    for modality, values in data.features.items():
        np.save(folder / f"{modality}_feat.npy", values.astype(np.float16))
    return folder


def write_mmrec_folder(folder: Path, data) -> Path:
    """The MMRec layout: a tab-separated ``.inter`` file, ``image_feat``/``text_feat`` files."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["userID\titemID\trating\tx_label"]
    for label, matrix in enumerate((data.train, data.validation, data.test)):
        coo = matrix.tocoo()
        lines += [f"{u}\t{i}\t5\t{label}" for u, i in zip(coo.row, coo.col, strict=True)]
    (folder / "tiny.inter").write_text("\n".join(lines) + "\n")
    visual, acoustic = data.features.values()
    np.save(folder / "image_feat.npy", visual)
    np.save(folder / "text_feat.npy", acoustic)
    return folder


@pytest.fixture(scope="module")
def diffmm_dir(tmp_path_factory, data) -> Path:
    return write_diffmm_folder(tmp_path_factory.mktemp("diffmm_format"), data)


@pytest.fixture(scope="module")
def mmrec_dir(tmp_path_factory, data) -> Path:
    return write_mmrec_folder(tmp_path_factory.mktemp("mmrec_format"), data)


# -- fit: once per format, shared by the tests below -----------------------------------------


@pytest.fixture(scope="module")
def fitted_diffmm(tmp_path_factory, diffmm_dir):
    """Fit from a TOML config overridden by --set and --epochs (precedence is checked below)."""
    work = tmp_path_factory.mktemp("fit_diffmm")
    config = work / "settings.toml"
    config.write_text("embedding_dim = 4\nlearning_rate = 0.005\nepochs = 3\n")
    model, report = work / "model.diffmm", work / "report.json"
    result = run_cli(
        "fit", diffmm_dir, "--out", model, "--config", config, *TINY, "--report", report
    )
    return model, report, result


@pytest.fixture(scope="module")
def fitted_mmrec(tmp_path_factory, mmrec_dir):
    work = tmp_path_factory.mktemp("fit_mmrec")
    model, report = work / "model.diffmm", work / "report.json"
    result = run_cli("fit", mmrec_dir, "--out", model, *TINY, "--report", report, "--quiet")
    return model, report, result


def test_fit_diffmm_format_saves_model_and_reports(fitted_diffmm, data):
    model, report, result = fitted_diffmm
    assert_ok(result)
    assert model.is_file()
    assert "diffmm format" in result.stdout
    assert "recall@10" in result.stdout and "validation" in result.stdout
    # The folder has no test split, as with the real TikTok data: a warning, not an error.
    assert "diffmm: warning:" in result.stderr and "test" in result.stderr
    content = json.loads(report.read_text())
    assert content["data"]["format"] == "diffmm"
    assert content["data"]["n_users"] == data.n_users
    assert set(content["metrics"]) == {"validation"}
    assert 0.0 <= content["metrics"]["validation"]["recall@20"] <= 1.0
    assert content["epochs_run"] == 1


def test_settings_precedence_config_then_set_then_flags(fitted_diffmm):
    _, report, result = fitted_diffmm
    assert_ok(result)
    params = json.loads(report.read_text())["params"]
    assert params["learning_rate"] == 0.005  # from the config file
    assert params["embedding_dim"] == 8  # --set beats the config file
    assert params["epochs"] == 1  # --epochs beats the config file
    assert params["denoiser_hidden_dims"] == [16]  # a list from --set becomes the tuple
    assert params["device"] == "cpu" and params["random_state"] == 0


def test_fit_mmrec_format_autodetected_with_test_split(fitted_mmrec):
    model, report, result = fitted_mmrec
    assert_ok(result)
    assert model.is_file()
    assert "Data (" not in result.stdout  # --quiet
    content = json.loads(report.read_text())
    assert content["data"]["format"] == "mmrec"
    assert set(content["metrics"]) == {"validation", "test"}
    table = result.stdout.splitlines()
    assert any(line.startswith("validation") for line in table)
    assert any(line.startswith("test") for line in table)


def test_evaluate_prints_metrics_table(fitted_diffmm, diffmm_dir):
    model, report, _ = fitted_diffmm
    result = run_cli("evaluate", model, diffmm_dir, "--k", "5", "10", "--metrics", "recall", "mrr")
    assert_ok(result)
    header, row = result.stdout.strip().splitlines()
    assert header.split() == ["split", "users", "recall@5", "recall@10", "mrr@5", "mrr@10"]
    assert row.split()[0] == "validation"
    reported = json.loads(report.read_text())["metrics"]["validation"]["recall@10"]
    assert float(row.split()[3]) == pytest.approx(reported, abs=1e-4)


def test_evaluate_json_matches_the_fit_report(capsys, fitted_mmrec, mmrec_dir):
    model, report, _ = fitted_mmrec
    code, out, _ = run_main(capsys, "evaluate", model, mmrec_dir, "--split", "test", "--json")
    assert code == 0
    printed = json.loads(out)
    assert printed["split"] == "test"
    expected = json.loads(report.read_text())["metrics"]["test"]
    for key in ("recall@10", "ndcg@20", "precision@20", "n_users_evaluated"):
        assert printed[key] == pytest.approx(expected[key])


def test_recommend_writes_csv(fitted_diffmm, data, tmp_path):
    model, _, _ = fitted_diffmm
    out = tmp_path / "top.csv"
    result = run_cli("recommend", model, "--users", "0", "5", "7", "--n", "5", "--output", out)
    assert_ok(result)
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["user", "rank", "item", "score"]
    assert len(rows) == 15
    for user in (0, 5, 7):
        mine = [r for r in rows if int(r["user"]) == user]
        assert [int(r["rank"]) for r in mine] == [1, 2, 3, 4, 5]
        scores = [float(r["score"]) for r in mine]
        assert scores == sorted(scores, reverse=True)
        seen = set(data.train[user].indices.tolist())
        assert not seen & {int(r["item"]) for r in mine}  # training items are excluded


def test_recommend_writes_json_from_users_file(capsys, fitted_mmrec, tmp_path):
    model, _, _ = fitted_mmrec
    users = tmp_path / "users.txt"
    users.write_text("# users to serve\n3\n\n11\n3\n")
    out = tmp_path / "top.json"
    code, _, _ = run_main(
        capsys, "recommend", model, "--users-file", users, "--n", "4", "--output", out
    )
    assert code == 0
    records = json.loads(out.read_text())
    assert [r["user"] for r in records] == [3, 11]  # file order, duplicates once
    for record in records:
        assert [x["rank"] for x in record["recommendations"]] == [1, 2, 3, 4]
        assert all(isinstance(x["item"], int) for x in record["recommendations"])


def test_recommend_to_stdout_json_and_include_seen(fitted_diffmm, data, capsys):
    model, _, _ = fitted_diffmm
    code, out, _ = run_main(
        capsys,
        "recommend",
        model,
        "--users",
        "2",
        "--n",
        "40",
        "--include-seen",
        "--format",
        "json",
    )
    assert code == 0
    (record,) = json.loads(out)
    assert len(record["recommendations"]) == data.n_items  # the whole catalogue, seen included


# -- demo --------------------------------------------------------------------------------------


def test_demo_prints_metrics_and_recommendations():
    result = run_cli("demo", "--users", "60", "--items", "40", "--epochs", "1")
    assert_ok(result)
    assert "recall@10" in result.stdout and "ndcg@20" in result.stdout
    assert any(line.startswith("popularity") for line in result.stdout.splitlines())
    assert any(line.startswith("diffmm") for line in result.stdout.splitlines())
    assert "Sample recommendations" in result.stdout
    assert result.stdout.count("  user ") == 3


# -- help and version ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["demo"], ["fit"], ["evaluate"], ["recommend"]])
def test_help(capsys, command):
    code, out, _ = run_main(capsys, *command, "--help")
    assert code == 0
    assert out.startswith(f"usage: {' '.join(['diffmm', *command])}")


def test_version(capsys):
    code, out, _ = run_main(capsys, "--version")
    assert code == 0
    assert out.strip() == f"diffmm {diffmm.__version__}"


# -- errors: message on stderr, exit status 2 (input) or 1 (other failures) -----------------------


def assert_error(code: int, err: str, expected_code: int, *fragments: str) -> None:
    assert code == expected_code, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_error_missing_data_folder(capsys, tmp_path):
    code, _, err = run_main(capsys, "fit", tmp_path / "nope", "--out", tmp_path / "m.diffmm")
    assert_error(code, err, 2, "diffmm: error: data folder not found", "nope")


def test_error_unknown_format_choice(capsys, diffmm_dir, tmp_path):
    code, _, err = run_main(
        capsys, "fit", diffmm_dir, "--out", tmp_path / "m.diffmm", "--format", "csv"
    )
    assert_error(code, err, 2, "error:", "invalid choice: 'csv'")


def test_error_format_not_detected(capsys, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("hello")
    code, _, err = run_main(capsys, "fit", tmp_path / "data", "--out", tmp_path / "m.diffmm")
    assert_error(code, err, 2, "diffmm: error: cannot tell the data format", "*.inter")


def test_error_wrong_format_forced(capsys, diffmm_dir, tmp_path):
    code, _, err = run_main(
        capsys, "fit", diffmm_dir, "--out", tmp_path / "m.diffmm", "--format", "mmrec"
    )
    assert_error(code, err, 2, "diffmm: error: cannot read", "mmrec-format", "no *.inter file")


def test_error_out_folder_missing_fails_before_training(capsys, diffmm_dir, tmp_path):
    code, _, err = run_main(capsys, "fit", diffmm_dir, "--out", tmp_path / "no" / "m.diffmm")
    assert_error(code, err, 2, "diffmm: error: cannot write model file", "does not exist")


def test_error_unknown_parameter(capsys, diffmm_dir, tmp_path):
    code, _, err = run_main(
        capsys, "fit", diffmm_dir, "--out", tmp_path / "m.diffmm", "--set", "embeding_dim=8"
    )
    assert_error(
        code,
        err,
        2,
        "unknown parameter(s) in --set: 'embeding_dim'",
        "did you mean 'embedding_dim'",
        "Valid parameters:",
        "learning_rate",
    )


def test_error_unknown_parameter_in_config(capsys, diffmm_dir, tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"layers": 2}))
    code, _, err = run_main(
        capsys, "fit", diffmm_dir, "--out", tmp_path / "m.diffmm", "--config", config
    )
    assert_error(code, err, 2, f"unknown parameter(s) in config file {config}: 'layers'")


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("bad.toml", "embedding_dim = = 3\n", "bad config file"),
        ("bad.json", "{embedding_dim: 3}", "bad config file"),
        ("list.json", "[1, 2]", "expected a table"),
        ("settings.yaml", "embedding_dim: 3\n", "must end in .toml or .json"),
    ],
)
def test_error_bad_config_file(capsys, diffmm_dir, tmp_path, name, text, fragment):
    config = tmp_path / name
    config.write_text(text)
    code, _, err = run_main(
        capsys, "fit", diffmm_dir, "--out", tmp_path / "m.diffmm", "--config", config
    )
    assert_error(code, err, 2, "diffmm: error:", fragment)


def test_error_missing_config_file(capsys, diffmm_dir, tmp_path):
    code, _, err = run_main(
        capsys, "fit", diffmm_dir, "--out", tmp_path / "m.diffmm", "--config", tmp_path / "x.toml"
    )
    assert_error(code, err, 2, "diffmm: error: config file not found")


def test_error_bad_parameter_value(capsys, diffmm_dir, tmp_path):
    code, _, err = run_main(
        capsys, "fit", diffmm_dir, "--out", tmp_path / "m.diffmm", "--set", "embedding_dim=-1"
    )
    assert_error(code, err, 2, "diffmm: error: cannot fit:", "'embedding_dim' parameter")
    assert not (tmp_path / "m.diffmm").exists()


def test_error_set_without_equals(capsys, diffmm_dir, tmp_path):
    code, _, err = run_main(
        capsys, "fit", diffmm_dir, "--out", tmp_path / "m.diffmm", "--set", "embedding_dim"
    )
    assert_error(code, err, 2, "--set expects name=value")


def test_error_training_diverged_exits_1(capsys, diffmm_dir, tmp_path, monkeypatch):
    def diverge(self, *args, **kwargs):
        raise diffmm.NonFiniteLossError("loss_bpr became nan at epoch 1")

    monkeypatch.setattr(diffmm.DiffMMRecommender, "fit", diverge)
    code, _, err = run_main(capsys, "fit", diffmm_dir, "--out", tmp_path / "m.diffmm", "--quiet")
    assert_error(code, err, 1, "diffmm: error: training diverged", "loss_bpr")


def test_error_unknown_user(capsys, fitted_diffmm):
    model, _, _ = fitted_diffmm
    code, _, err = run_main(capsys, "recommend", model, "--users", "0", "999")
    assert_error(code, err, 2, "diffmm: error:", "unknown user", "999")


def test_error_user_id_of_the_wrong_type(capsys, fitted_diffmm):
    model, _, _ = fitted_diffmm
    code, _, err = run_main(capsys, "recommend", model, "--users", "alice")
    assert_error(code, err, 2, "diffmm: error: no such user 'alice'", "integers")


def test_error_users_and_users_file_are_exclusive(capsys, fitted_diffmm, tmp_path):
    model, _, _ = fitted_diffmm
    code, _, err = run_main(
        capsys, "recommend", model, "--users", "1", "--users-file", tmp_path / "u"
    )
    assert_error(code, err, 2, "not allowed with argument")


def test_error_empty_users_file(capsys, fitted_diffmm, tmp_path):
    model, _, _ = fitted_diffmm
    users = tmp_path / "users.txt"
    users.write_text("\n# nobody\n")
    code, _, err = run_main(capsys, "recommend", model, "--users-file", users)
    assert_error(code, err, 2, "holds no user ids")


def test_error_missing_model_file(capsys, diffmm_dir, tmp_path):
    code, _, err = run_main(capsys, "evaluate", tmp_path / "none.diffmm", diffmm_dir)
    assert_error(code, err, 2, "diffmm: error: model file not found")


def test_error_missing_split(capsys, fitted_diffmm, diffmm_dir):
    model, _, _ = fitted_diffmm
    code, _, err = run_main(capsys, "evaluate", model, diffmm_dir, "--split", "test")
    assert_error(code, err, 2, "has no test split", "it has: validation")


def test_error_evaluate_on_other_data(capsys, fitted_diffmm, tmp_path):
    model, _, _ = fitted_diffmm
    other = write_diffmm_folder(
        tmp_path / "other", make_synthetic(n_users=30, n_items=20, random_state=1)
    )
    code, _, err = run_main(capsys, "evaluate", model, other)
    assert_error(code, err, 2, "has 30 users x 20 items", "60 x 40")


def test_error_corrupted_model_file_in_a_subprocess(fitted_diffmm, tmp_path):
    model, _, _ = fitted_diffmm
    broken = tmp_path / "broken.diffmm"
    broken.write_bytes(model.read_bytes()[:200])
    result = run_cli("recommend", broken, "--users", "0")
    assert result.returncode == 2
    assert result.stderr.startswith("diffmm: error:")
    assert "not a readable diffmm model file" in result.stderr
    assert "Traceback" not in result.stderr


def test_error_toml_without_a_toml_reader(capsys, diffmm_dir, tmp_path, monkeypatch):
    # Python 3.10 without tomli: a clear message instead of an ImportError.
    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", None)
    config = tmp_path / "settings.toml"
    config.write_text("embedding_dim = 8\n")
    code, _, err = run_main(
        capsys, "fit", diffmm_dir, "--out", tmp_path / "m.diffmm", "--config", config
    )
    assert_error(code, err, 2, "TOML config files need Python >= 3.11 or the 'tomli' package")


# -- in-process variations -----------------------------------------------------------------------


def test_fit_preset_then_json_config_then_set(capsys, mmrec_dir, tmp_path):
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"temperature": 0.3, "l2_weight": 1e-3}))
    report = tmp_path / "report.json"
    code, out, err = run_main(
        capsys,
        "fit",
        mmrec_dir,
        "--out",
        tmp_path / "m.diffmm",
        "--preset",
        "tiktok",
        "--config",
        config,
        "--set",
        "l2_weight=1e-2",
        "--set",
        "contrastive=null",
        *TINY,
        "--report",
        report,
        "--quiet",
    )
    assert code == 0, err
    params = json.loads(report.read_text())["params"]
    assert params["projection"] == "linear"  # from the preset
    assert params["temperature"] == 0.3  # config over the default
    assert params["l2_weight"] == 1e-2  # --set over the config and the preset
    assert params["contrastive"] is None  # JSON null
    assert "test" in out


def test_recommend_maps_string_ids(capsys, data, tmp_path):
    rows = data.interaction_rows("train")
    X = np.array([[f"u{u}", i] for u, i in rows], dtype=object)
    model = diffmm.DiffMMRecommender(
        epochs=1, denoiser_hidden_dims=(8,), embedding_dim=4, random_state=0
    ).fit(X, data.features)
    path = model.save(tmp_path / "strings.diffmm")
    code, out, err = run_main(capsys, "recommend", path, "--users", "u3", "u10", "--n", "2")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "user,rank,item,score"
    assert [line.split(",")[0] for line in lines[1:]] == ["u3", "u3", "u10", "u10"]
    code, _, err = run_main(capsys, "recommend", path, "--users", "3")
    assert_error(code, err, 2, "unknown user", "'3'")


def test_demo_shows_progress_on_a_terminal_and_not_in_a_pipe():
    import fcntl
    import pty
    import select
    import struct
    import termios

    main_fd, terminal = pty.openpty()
    # A terminal of 24 x 120 (a new pseudo-terminal has no size, and tqdm would draw nothing).
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    args = [sys.executable, "-m", "diffmm", "demo", "--users", "60", "--items", "40"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [*args, "--epochs", "1"], stdout=subprocess.DEVNULL, stderr=terminal, env=env
    )
    os.close(terminal)
    shown = b""
    while select.select([main_fd], [], [], 120)[0]:  # read as it comes: the buffer is small
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(main_fd)
    assert proc.wait(timeout=120) == 0
    assert b"DiffMM" in shown and b"recommender" in shown  # the bars, on the terminal
    piped = run_cli("demo", "--users", "60", "--items", "40", "--epochs", "1")
    assert "DiffMM:" not in piped.stderr and "it/s" not in piped.stderr


def test_help_and_argument_errors_do_not_import_torch():
    script = (
        "import sys\n"
        "from diffmm import cli\n"
        "for argv in (['--help'], ['fit', '--help'], ['fit']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "False"
