"""``benchmarks/accuracy.py`` builds each configuration as its table row says.

Only construction is checked here (no training): the full benchmark runs by hand.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest


def _build(accuracy, config, epochs=None):
    kind, settings = accuracy.CONFIGS[config]
    return accuracy._build(kind, settings, 3, "cpu", epochs)


def test_patience_ten_unless_the_configuration_runs_the_whole_budget(accuracy):
    assert _build(accuracy, "spec").patience == 10
    assert _build(accuracy, "lightgcn").patience == 10
    whole_budget = [c for c, (_, s) in accuracy.CONFIGS.items() if "patience" in s]
    assert {"spec_full", "tuned_full", "lightgcn_tuned_full"} <= set(whole_budget)
    for config in whole_budget:
        model = _build(accuracy, config)
        assert model.patience is None, config
        assert model.random_state == 3
    # The configuration table itself is left as it was.
    assert accuracy.CONFIGS["spec_full"][1] == {"patience": None}


def test_full_budget_rows_match_their_patience_ten_counterparts(accuracy):
    from diffmm import DiffMMRecommender

    tuned = _build(accuracy, "tuned_full").get_params()
    preset = DiffMMRecommender.from_preset("tiktok-tuned").get_params()
    differing = {k for k in preset if preset[k] != tuned[k]}
    assert differing == {"patience", "random_state", "device"}
    spec = _build(accuracy, "spec_full").get_params()
    assert {k for k in spec if spec[k] != _build(accuracy, "spec").get_params()[k]} == {"patience"}
    lightgcn = _build(accuracy, "lightgcn_tuned_full").get_params()
    reference = _build(accuracy, "lightgcn_4layers_lr5e-3").get_params()
    assert {k for k in lightgcn if lightgcn[k] != reference[k]} == {"patience"}


def test_every_group_names_known_configurations(accuracy):
    for group, names in accuracy.GROUPS.items():
        assert names, group
        assert set(names) <= set(accuracy.CONFIGS), group
    assert set(accuracy.RESULT_GROUPS) <= set(accuracy.GROUPS)


def test_plot_curves_draws_the_mean_of_the_seeds(accuracy, tmp_path):
    pytest.importorskip("matplotlib")
    entries = [
        {"key": f"tiktok|spec_full|{seed}", "config": "spec_full", "curve": curve}
        for seed, curve in enumerate([[0.05, 0.08, 0.09], [0.06, 0.07, 0.10, 0.11]])
    ]
    (tmp_path / "accuracy_tiktok.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    args = argparse.Namespace(out=tmp_path, data="tiktok")
    out = tmp_path / "img" / "curves.png"
    accuracy.plot_curves(args, ["spec_full"], out)
    assert out.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(SystemExit, match="tuned_full"):
        accuracy.plot_curves(args, ["tuned_full"], out)


def test_late_level_only_for_rows_that_ran_every_epoch(accuracy, tmp_path):
    validation = {"recall@20": 0.1, "ndcg@20": 0.04}
    common = {"group": "x", "device": "cpu", "seconds": 1.0, "validation": validation}
    curve = [0.0] * 20 + [0.1, 0.2]  # epochs 21 and 22 average 0.15
    entries = [
        {"config": "full", "settings": {"patience": None}, "curve": curve, "seed": 0},
        {"config": "full", "settings": {"patience": None}, "curve": curve[::-1], "seed": 1},
        {"config": "patient", "settings": {}, "curve": curve, "seed": 0},
    ]
    lines = [
        json.dumps({**common, **e, "key": f"tiktok|{e['config']}|{e['seed']}", "best_epoch": 22})
        for e in entries
    ]
    (tmp_path / "accuracy_tiktok.jsonl").write_text("\n".join(lines) + "\n")
    page = tmp_path / "page.md"
    page.write_text("before\n<!-- late:start -->\nold\n<!-- late:end -->\nafter\n")
    args = argparse.Namespace(out=tmp_path, data="tiktok", docs=page)
    rows = accuracy.summarize(args)["results"]
    assert "late_recall@20" not in rows["patient"]
    mean, std = rows["full"]["late_recall@20"]
    assert mean == pytest.approx(0.075) and std == pytest.approx(0.1060660, rel=1e-6)
    text = page.read_text()
    assert "old" not in text and text.startswith("before\n") and text.endswith("after\n")
    assert "| full | 2 | 0.1000 ± 0.0000 |" in text and "patient" not in text


def test_options_are_compared_to_their_base_user_by_user(accuracy, tmp_path):
    rng = np.random.default_rng(0)
    common = {"group": "plus", "device": "cpu", "seconds": 1.0, "best_epoch": 30}
    base_hits = rng.random((2, 400)) < 0.10
    better_hits = base_hits | (rng.random((2, 400)) < 0.05)  # finds all the base finds, and more
    lines, per_user = [], []
    for config, hits in (("plus_base", base_hits), ("plus_ub1", better_hits)):
        for seed in (0, 1):
            key = f"tiktok|{config}|{seed}"
            recall = hits[seed].astype(float)
            validation = {"recall@20": recall.mean(), "ndcg@20": recall.mean() / 2}
            settings = accuracy.CONFIGS[config][1]
            curve = [0.05] * 20 + [recall.mean()] * 30
            lines.append(
                {
                    **common,
                    "key": key,
                    "config": config,
                    "seed": seed,
                    "curve": curve,
                    "settings": settings,
                    "validation": validation,
                }
            )
            per_user.append({"key": key, "recall@20": list(recall), "ndcg@20": list(recall / 2)})
    (tmp_path / "accuracy_tiktok.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    (tmp_path / "accuracy_tiktok_per_user.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in per_user)
    )
    page = tmp_path / "page.md"
    page.write_text("<!-- plus:start -->\n<!-- plus:end -->\n")
    args = argparse.Namespace(out=tmp_path, data="tiktok", docs=page)
    paired = accuracy.summarize(args)["paired"]["plus_ub1 vs plus_base"]
    assert paired["seeds"] == [0, 1]
    expected = (better_hits.astype(float) - base_hits).mean()
    assert paired["recall@20"]["mean"] == pytest.approx(expected)
    assert 0 < paired["recall@20"]["low"] < expected < paired["recall@20"]["high"]
    assert paired["late_difference"] == pytest.approx(expected)
    text = page.read_text()
    assert "| plus_base | 2 |" in text and "(base)" in text and "| plus_ub1 | 2 |" in text


def _write(tmp_path, entries, per_user=()):
    (tmp_path / "accuracy_tiktok.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    (tmp_path / "accuracy_tiktok_per_user.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in per_user)
    )


def _entry(config, seed, group="plus", **extra):
    validation = {"recall@20": 0.1, "ndcg@20": 0.05}
    return {
        "key": f"tiktok|{config}|{seed}",
        "config": config,
        "seed": seed,
        "group": group,
        "device": "cpu",
        "seconds": 1.0,
        "best_epoch": 30,
        "curve": [0.1] * 50,
        "settings": {"patience": None},
        "validation": validation,
        **extra,
    }


def test_options_rows_stay_out_of_the_late_table_and_face_lightgcn(accuracy, tmp_path):
    hits = {"plus_combo": [1.0, 1.0, 0.0, 1.0], "lgcn_plus_base": [0.0, 1.0, 0.0, 0.0]}
    groups = {"plus_combo": "plus", "lgcn_plus_base": "plus_lightgcn"}
    entries = [_entry(c, 0, groups[c]) for c in hits]
    per_user = [{"key": f"tiktok|{c}|0", "recall@20": h, "ndcg@20": h} for c, h in hits.items()]
    _write(tmp_path, entries, per_user)
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- late:start -->\n<!-- late:end -->\n<!-- versus:start -->\n<!-- versus:end -->\n"
    )
    args = argparse.Namespace(out=tmp_path, data="tiktok", docs=page)
    paired = accuracy.summarize(args)["paired"]["plus_combo vs lgcn_plus_base"]
    assert paired["recall@20"]["mean"] == pytest.approx(0.5)
    assert paired["recall@20"]["relative"] == pytest.approx(2.0)
    late, versus = page.read_text().split("<!-- versus:start -->")
    assert "plus_combo" not in late and "lgcn_plus_base" not in late
    assert "| plus_combo | lgcn_plus_base | 1 | +0.5000 (+200.0%)" in versus


def test_novelty_table_averages_the_generated_graphs_over_seeds(accuracy):
    def stats(share):
        return {
            "n_edges": 100,
            "training_share": share,
            "held_out_precision": 0.002,
            "chance_precision": 0.0001,
        }

    done = {
        f"k{seed}": _entry("plus_base", seed, generated_graphs={"image": stats(share)})
        for seed, share in ((0, 0.1), (1, 0.3))
    }
    done["none"] = _entry("lgcn_plus_base", 0, generated_graphs=None)
    table = accuracy.novelty_markdown(done)
    assert "| plus_base | image | 2 | 100 | 20.00% | 0.200% | 0.0100% |" in table
    assert "lgcn" not in table


def test_hit_rates_split_by_the_training_degree_of_the_held_out_items(accuracy):
    import scipy.sparse as sp

    # Items 0..3 have training degrees 0, 2, 5 and 40 (one per bucket).
    degree = np.array([0, 2, 5, 40])
    # Users 0-3 hold one validation item each, user 4 none, user 5 holds items 0 and 3.
    rows = [0, 1, 2, 3, 5, 5]
    cols = [0, 1, 2, 3, 0, 3]
    validation = sp.csr_matrix((np.ones(6), (rows, cols)), shape=(6, 4))
    # Per validation user (0, 1, 2, 3, 5): found, missed, found, missed, found half.
    recall = [1.0, 0.0, 1.0, 0.0, 0.5]
    done = {"k": _entry("plus_base", 0)}
    per_user = {"k": {"recall@20": recall}}
    table = accuracy.degree_markdown(done, per_user, (validation, degree))
    # Cold bucket: user 0 (weight 1, hit 1) and user 5 (weight 0.5, recall 0.5): 1.25 / 1.5.
    assert "| share of validation users | | 30.0% | 20.0% | 20.0% | 30.0% |" in table
    assert "| plus_base | 1 | 83.3% | 0.0% | 100.0% | 16.7% |" in table
    # Runs scored on other users (a different split) are left out.
    assert "short" not in accuracy.degree_markdown(
        {"k": _entry("short", 0)}, {"k": {"recall@20": [1.0]}}, (validation, degree)
    )
