"""The light serving model: same recommendations as the estimator, no torch, small files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from diffmm import DiffMMRecommender, LightGCNRecommender, ModelFileError, serving
from diffmm.datasets import make_synthetic

DATA = make_synthetic(n_users=200, n_items=120, random_state=0)


@pytest.fixture(scope="module")
def fitted():
    diffmm = DiffMMRecommender(epochs=2, denoiser_hidden_dims=(64,), random_state=0)
    lightgcn = LightGCNRecommender(epochs=3, random_state=0)
    return {
        "diffmm": diffmm.fit(DATA.train, DATA.features),
        "lightgcn": lightgcn.fit(DATA.train),
    }


@pytest.mark.parametrize("name", ["diffmm", "lightgcn"])
def test_serving_recommendations_equal_the_estimators(fitted, tmp_path, name):
    model = fitted[name]
    light = serving.load(model.export_serving(tmp_path / "m.serving"))
    users = np.arange(DATA.n_users)
    for kwargs in ({}, {"exclude_seen": False}, {"items": np.arange(50), "exclude_items": [3]}):
        ids, scores = model.recommend(users, n=10, **kwargs)
        got_ids, got_scores = light.recommend(users, n=10, **kwargs)
        np.testing.assert_array_equal(got_ids, ids)
        np.testing.assert_allclose(got_scores, scores, rtol=1e-6)
    queries = np.arange(DATA.n_items)
    np.testing.assert_array_equal(
        light.similar_items(queries, n=5)[0], model.similar_items(queries, n=5)[0]
    )
    np.testing.assert_array_equal(
        light.similar_users([0, 5], n=5)[0], model.similar_users([0, 5], n=5)[0]
    )
    frame = light.recommend([0, 1], n=3, as_frame=True)
    expected = model.recommend([0, 1], n=3, as_frame=True)
    assert frame[["user", "item", "rank"]].equals(expected[["user", "item", "rank"]])
    np.testing.assert_allclose(frame["score"], expected["score"], rtol=1e-6)


def test_serving_fold_in_equals_the_estimators_propagation(fitted, tmp_path):
    model = fitted["diffmm"]
    light = serving.load(model.export_serving(tmp_path / "m.serving"))
    histories = [[0, 3, 7], [11], [5, 6, 8, 9]]
    expected = model.recommend_new_users(histories, n=8)
    got = light.recommend_new_users(histories, n=8)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)
    with pytest.raises(ValueError, match="propagation"):
        light.recommend_new_users(histories, method="denoiser")


def test_serving_imports_no_torch(fitted, tmp_path):
    path = fitted["diffmm"].export_serving(tmp_path / "m.serving")
    script = textwrap.dedent(
        f"""
        import json, sys
        from diffmm import serving
        light = serving.load({str(path)!r})
        ids, _ = light.recommend([0, 1], n=5)
        light.similar_items([0], n=3)
        light.recommend_new_users([[1, 2]], n=3)
        print(json.dumps({{"torch": "torch" in sys.modules, "ids": ids.tolist()}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout)
    assert report["torch"] is False
    assert report["ids"] == fitted["diffmm"].recommend([0, 1], n=5)[0].tolist()


def test_serving_file_is_a_fraction_of_the_model_file(fitted, tmp_path):
    model = fitted["diffmm"]
    full = model.save(tmp_path / "m.diffmm").stat().st_size
    light = model.export_serving(tmp_path / "m.serving").stat().st_size
    assert light < 0.25 * full, (light, full)  # TikTok's ratio is in the docs


def test_serving_refuses_model_files_and_damaged_files(fitted, tmp_path):
    model = fitted["lightgcn"]
    with pytest.raises(ModelFileError, match="serving"):
        serving.load(model.save(tmp_path / "m.diffmm"))
    path = model.export_serving(tmp_path / "m.serving")
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    header = json.loads(members["diffmm.json"])
    content = header["content"]["__dict__"]
    content["user_factors"], content["item_factors"] = (
        content["item_factors"],
        content["user_factors"],
    )
    members["diffmm.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(tmp_path / "swapped.serving", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ModelFileError):
        serving.load(tmp_path / "swapped.serving")
