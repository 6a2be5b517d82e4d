"""The scripts in ``examples/`` run (small) and print what they promise."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SMALL = ["--users", "60", "--items", "40", "--epochs", "1"]


def run_example(name: str, *args: str | Path, cwd: Path | None = None) -> str:
    # One thread per process: the data are tiny and the test machine has few cores.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_examples_have_a_docstring_and_main(path):
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"{path.name} needs a module docstring"
    assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)


def test_quickstart(tmp_path):
    out = run_example("quickstart.py", *SMALL, "--device", "cpu", cwd=tmp_path)
    assert "Fitted in" in out
    assert any(line.startswith("popularity") for line in out.splitlines())
    assert any(line.startswith("diffmm") for line in out.splitlines())
    assert out.count("  user ") == 3


def test_grid_search(tmp_path):
    out = run_example("grid_search.py", *SMALL, "--folds", "2", "--device", "cpu", cwd=tmp_path)
    assert "Best parameters: {" in out
    assert "contrastive_weight" in out and "n_layers" in out
    table = out[out.index("ndcg@20  rank") :].splitlines()
    assert len(table) >= 1 + 4  # header and the 2 x 2 candidates
    assert "untouched validation split" in out


def test_real_data_formats_falls_back_to_synthetic(tmp_path):
    out = run_example(
        "real_data_formats.py", *SMALL, "--data", tmp_path / "absent", "--device", "cpu"
    )
    assert "No real data at" in out
    assert "DiffMM-format folder (acoustic_feat.npy, trnMat.pkl" in out
    assert "MMRec-format folder (image_feat.npy, synthetic.inter, text_feat.npy)" in out
    assert out.count("validation recall@20") == 2


@pytest.mark.realdata
def test_real_data_formats_on_tiktok(tiktok_path):
    out = run_example(
        "real_data_formats.py",
        "--data",
        tiktok_path,
        "--max-users",
        "300",
        "--epochs",
        "1",
        "--device",
        "cpu",
    )
    assert "name='tiktok'" in out and "300 random users" in out
    assert "validation recall@20" in out


def test_serve_recommendations_self_test(tmp_path):
    out = run_example("serve_recommendations.py", "--self-test", *SMALL, cwd=tmp_path)
    assert "Serving on http://127.0.0.1:" in out
    assert "GET /recommend?user=0&n=5 -> 200" in out
    assert "-> 404" in out and "-> 400" in out
    assert "Self-test passed" in out


def test_fastapi_service_answers_through_the_test_client(tmp_path):
    testclient = pytest.importorskip("fastapi.testclient")
    import importlib.util

    from diffmm import DiffMMRecommender
    from diffmm.datasets import make_synthetic

    spec = importlib.util.spec_from_file_location(
        "fastapi_service", EXAMPLES / "fastapi_service.py"
    )
    service = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(service)
    data = make_synthetic(n_users=60, n_items=40, random_state=0)
    model = DiffMMRecommender(epochs=1, denoiser_hidden_dims=(16,), random_state=0)
    model.fit(data.train, data.features)
    client = testclient.TestClient(service.create_app(model.export_serving(tmp_path / "m.serving")))

    assert client.get("/health").json() == {
        "users": 60,
        "items": 40,
        "model": "DiffMMRecommender",
    }
    answer = client.get("/recommend", params={"user": 3, "n": 4}).json()
    expected_ids, expected_scores = model.recommend([3], n=4)
    assert answer["user"] == 3 and answer["items"] == expected_ids[0].tolist()
    np.testing.assert_allclose(answer["scores"], expected_scores[0], rtol=1e-6)
    similar = client.get("/similar", params={"item": 5, "n": 3}).json()
    assert similar["items"] == model.similar_items([5], n=3)[0][0].tolist()
    new = client.post("/recommend_new", json={"history": [0, 1, 2], "n": 5}).json()
    assert new["items"] == model.recommend_new_users([[0, 1, 2]], n=5)[0][0].tolist()
    assert client.get("/recommend", params={"user": 999}).status_code == 404
    assert client.get("/recommend", params={"user": "x"}).status_code == 404
    assert client.get("/recommend", params={"user": 0, "n": 0}).status_code == 422
    assert client.post("/recommend_new", json={"history": [999]}).status_code == 404
