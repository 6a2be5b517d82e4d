"""Accuracy benchmark: DiffMM against baselines, its ablations and a tuning search (issue 4).

Every model trains on the training split and is evaluated on the validation split after each
epoch; the best epoch on validation is kept (early stopping, patience 10) and its validation
Recall/NDCG/Precision@10 and @20 are reported, mean ± std over seeds. The test split is kept
aside and never read: every choice here (epochs, settings) is made on validation.

Configurations (``CONFIGS``): ``popularity``, ``lightgcn`` (same training loop, BPR + L2, no
modalities) and its search (``--groups baselines``), ``spec`` (the SPEC's TikTok settings:
``DiffMMRecommender.from_preset("tiktok")``), ablations through the estimator's switches
(``no_diffusion``, ``no_contrastive``, ``no_alignment``, ``image_only``, ``audio_only``,
``modal_modal``), ``spec_bf16`` (``precision="bf16"``) and ``tuned`` (the ``tiktok-tuned``
preset found by the search below, the same settings as ``ggw_0.5``).

Tuning, in rounds of one-at-a-time changes (``sklearn.model_selection.ParameterGrid`` per
setting) with the first seed, then the promising ones with every seed:
``--groups tuning`` (around the SPEC settings; the settings that beat ``spec`` on seed 0 are
combined and rerun with every seed automatically), ``retune`` (around two layers, the first
round's pick), ``explore`` (around the SPEC settings, what the other rounds left out) and
``explore2`` (the best of ``explore`` and their combinations, every seed). All selection is on
validation.

Run (one command; jobs run in parallel worker processes, results stream to a JSON-lines file so
an interrupted run keeps what finished and a rerun skips it)::

    python benchmarks/accuracy.py --data tiktok --groups main,ablations --seeds 0,1,2
    python benchmarks/accuracy.py --data synthetic --groups main,ablations

and ``--summarize`` rebuilds the JSON and markdown tables from the JSON-lines file
(``--docs docs/accuracy.md`` also writes them into that page). ``--stop-minutes`` gives every
job a common training time limit (each keeps its best epoch so far; marked ``*``), for
fitting a search into a lent GPU's time.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import platform
import signal
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# Early stopping of every row unless its settings give their own ``patience`` (None: every
# epoch of the budget runs, the authors' protocol).
PATIENCE = 10
# The level of a curve that ran every epoch: its mean validation Recall@20 after this epoch.
LATE_FROM = 20
# The authors' code on this data (best validation Recall@20 of 50 epochs) and issue 4's goal.
AUTHORS_RECALL20 = 0.1016
GOAL_RECALL20 = 1.05 * AUTHORS_RECALL20
# ``tiktok-tuned`` with every epoch run (fp32, three seeds) and the options' goal over it.
TUNED_RECALL20 = 0.1052
PLUS_GOAL_RECALL20 = 1.05 * TUNED_RECALL20

# name -> (kind, settings); DiffMM settings are overrides of the "tiktok" preset.
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "popularity": ("popularity", {}),
    "lightgcn": ("lightgcn", {"n_layers": 3, "epochs": 200}),
    "lightgcn_2layers": ("lightgcn", {"n_layers": 2, "epochs": 200}),
    "lightgcn_4layers": ("lightgcn", {"n_layers": 4, "epochs": 200}),
    "lightgcn_lr5e-3": ("lightgcn", {"n_layers": 3, "epochs": 200, "learning_rate": 5e-3}),
    "lightgcn_l2_1e-3": ("lightgcn", {"n_layers": 3, "epochs": 200, "l2_weight": 1e-3}),
    "lightgcn_4layers_lr5e-3": (
        "lightgcn",
        {"n_layers": 4, "epochs": 200, "learning_rate": 5e-3},
    ),
    "spec": ("diffmm", {}),
    "no_diffusion": ("diffmm", {"generate_graphs": False}),
    "no_contrastive": ("diffmm", {"contrastive": None}),
    "no_alignment": ("diffmm", {"alignment_weight": 0.0}),
    "image_only": ("diffmm", {"modalities": ["image"]}),
    "audio_only": ("diffmm", {"modalities": ["audio"]}),
    "modal_modal": ("diffmm", {"contrastive": "modal_modal"}),
    "spec_bf16": ("diffmm", {"precision": "bf16"}),
    "layers2_bf16": ("diffmm", {"n_layers": 2, "precision": "bf16"}),
    "layers2": ("diffmm", {"n_layers": 2}),  # the first round's pick, the base of the second
    # The ``tiktok-tuned`` preset: the same settings as ``ggw_0.5`` below.
    "tuned": ("diffmm_preset", {"preset": "tiktok-tuned"}),
    # Stage two of the third round: its best single changes and their combinations, every seed.
    "l2_1e-5": ("diffmm", {"l2_weight": 1e-5}),
    "ggw_0.5": ("diffmm", {"generated_graph_weight": 0.5}),
    "l2_1e-5+ggw_0.5": ("diffmm", {"l2_weight": 1e-5, "generated_graph_weight": 0.5}),
    # A step further along the one setting that held up, checked on the CPU in bf16 (compare
    # with spec_bf16).
    "ggw_0.8_bf16": ("diffmm", {"generated_graph_weight": 0.8, "precision": "bf16"}),
    "l2_1e-5+ggw_0.5+res_0.8": (
        "diffmm",
        {"l2_weight": 1e-5, "generated_graph_weight": 0.5, "residual_weight": 0.8},
    ),
    # The authors' protocol: every epoch of the budget is run (no early stopping) and the best
    # one on validation is kept. Their 0.1016 is the best of 50 epochs, so this is the like-for-
    # like comparison; patience 10 (everything above) stops a wandering curve earlier.
    "tuned_full": ("diffmm_preset", {"preset": "tiktok-tuned", "patience": None}),
    "spec_full": ("diffmm", {"patience": None}),
    "lightgcn_tuned_full": (
        "lightgcn",
        {"n_layers": 4, "epochs": 200, "learning_rate": 5e-3, "patience": None},
    ),
}
# Issue 20: options beyond the reference model, each on top of ``tiktok-tuned``, every epoch of
# the budget (best on validation), in bf16 for the search; the final preset is confirmed in
# fp32. LightGCN gets the options that apply to it (sampling, hard negatives).
_PLUS_BASE = {"preset": "tiktok-tuned", "patience": None, "precision": "bf16"}
_LIGHTGCN_BASE = {"n_layers": 4, "epochs": 200, "learning_rate": 5e-3, "patience": None}
PLUS_OPTIONS: dict[str, dict[str, Any]] = {
    "ub1": {"user_balance": 1.0},
    "ub0.5": {"user_balance": 0.5},
    "neg4": {"negative_candidates": 4},
    "undropped": {"score_undropped_graphs": True},
    "newedges": {"generation_excludes_seen": True},
    "knn10": {"item_knn": 10},
    "cold": {"cold_items": "features"},
    # The options that helped on the first seed, together.
    "combo": {
        "negative_candidates": 4,
        "generation_excludes_seen": True,
        "score_undropped_graphs": True,
    },
    # Second stage: a decaying learning rate, more candidates, and both with the combination.
    "cos": {"learning_rate_schedule": "cosine"},
    "neg8": {"negative_candidates": 8},
    "combo_cos": {
        "negative_candidates": 4,
        "generation_excludes_seen": True,
        "score_undropped_graphs": True,
        "learning_rate_schedule": "cosine",
    },
}
LIGHTGCN_PLUS_OPTIONS = ("ub1", "ub0.5", "neg4", "cos", "neg8")
CONFIGS["plus_base"] = ("diffmm_preset", _PLUS_BASE)
CONFIGS.update(
    {f"plus_{name}": ("diffmm_preset", {**_PLUS_BASE, **s}) for name, s in PLUS_OPTIONS.items()}
)
CONFIGS["lgcn_plus_base"] = ("lightgcn", _LIGHTGCN_BASE)
CONFIGS.update(
    {
        f"lgcn_plus_{name}": ("lightgcn", {**_LIGHTGCN_BASE, **PLUS_OPTIONS[name]})
        for name in LIGHTGCN_PLUS_OPTIONS
    }
)
GROUPS = {
    "plus": ["plus_base", *(f"plus_{name}" for name in PLUS_OPTIONS)],
    "plus_lightgcn": ["lgcn_plus_base", *(f"lgcn_plus_{n}" for n in LIGHTGCN_PLUS_OPTIONS)],
    "main": ["popularity", "lightgcn", "spec"],
    "ablations": [
        "no_diffusion",
        "no_contrastive",
        "no_alignment",
        "image_only",
        "audio_only",
        "modal_modal",
    ],
    "precision": ["spec_bf16"],
    "probe": ["layers2_bf16"],
    "baselines": [
        "lightgcn_2layers",
        "lightgcn_4layers",
        "lightgcn_lr5e-3",
        "lightgcn_l2_1e-3",
        "lightgcn_4layers_lr5e-3",
    ],
    "tuned": ["tuned"],
    "explore2": ["l2_1e-5", "ggw_0.5", "l2_1e-5+ggw_0.5", "l2_1e-5+ggw_0.5+res_0.8"],
    "explore_cpu": ["ggw_0.8_bf16"],
    # The whole epoch budget, best epoch on validation (the authors' protocol).
    "full_budget": ["tuned_full", "spec_full", "lightgcn_tuned_full"],
    # Next round, around the tuned preset, every seed (not run yet: sized for one GPU wave).
    "round4": [],
    # Second round of the search, around the first round's pick (``layers2``); seed 0 only.
    "retune": [],
    # Third round, around the SPEC settings: what the first two rounds left out; seed 0 only.
    "explore": [],
}
# Groups whose configurations run with the first seed only (search stages).
FIRST_SEED_ONLY = {"retune", "explore"}
# One-at-a-time sweeps around the SPEC TikTok settings (the list of what matters).
SWEEPS: dict[str, list[Any]] = {
    "contrastive_weight": [1e-3, 3e-2, 1e-1],
    "temperature": [0.2, 1.0],
    "l2_weight": [1e-5, 1e-3],
    "alignment_weight": [0.01, 0.5],
    "edge_keep_rate": [0.8, 1.0],
    "graph_top_k": [3, 10],
    "diffusion_steps": [10],
    "noise_scale": [0.5],
    "projection": ["matrix"],
    "n_layers": [2, 3],
    "learning_rate": [5e-4, 2e-3],
}
# Second round: one-at-a-time changes around ``layers2`` (the first round's pick, two layers;
# the preset ``tiktok-tuned`` at the time), plus one pair.
RETUNE_SWEEPS: dict[str, list[Any]] = {
    "n_layers": [3],
    "learning_rate": [2e-3, 5e-3],
    "temperature": [0.2],
    "contrastive_weight": [3e-2, 1e-1],
    "l2_weight": [1e-5],
    "graph_top_k": [10],
    "edge_keep_rate": [1.0],
}
RETUNE_PAIRS: list[dict[str, Any]] = [{"n_layers": 3, "learning_rate": 2e-3}]
EXPLORE_SWEEPS: dict[str, list[Any]] = {
    "diffusion_steps": [10],
    "noise_scale": [0.5],
    "projection": ["matrix"],
    "embedding_dim": [128],
    "batch_size": [512],
    "learning_rate": [5e-4],
    "residual_weight": [0.2, 0.8],
    "generated_graph_weight": [0.5],
    "edge_keep_rate": [1.0],
    "l2_weight": [1e-5],
    "temperature": [1.0],
    "graph_top_k": [3],
    "denoiser_dropout": [0.2],
}
# Around ``tiktok-tuned`` (generated-graph weight 0.5): the diffusion side, now that the
# generated graphs weigh more. Run with the whole epoch budget, like the ``full_budget`` rows.
ROUND4_SWEEPS: dict[str, list[Any]] = {
    "diffusion_steps": [10],
    "noise_scale": [0.5],
    "graph_top_k": [3],
    "edge_keep_rate": [1.0],
    "generated_graph_weight": [0.35],
}
LIGHTGCN_SWEEPS: dict[str, list[Any]] = {"n_layers": [1, 2], "l2_weight": [1e-3]}


def _register_sweeps() -> None:
    """Name the search rounds' configurations and fill their groups."""
    from sklearn.model_selection import ParameterGrid

    rounds = [  # group, one-at-a-time sweeps, extra combinations, kind, base settings
        ("retune", RETUNE_SWEEPS, RETUNE_PAIRS, "diffmm", {"n_layers": 2}),
        # Compared with ``tuned_full``: the whole 50 epochs, best on validation.
        (
            "round4",
            ROUND4_SWEEPS,
            [],
            "diffmm_preset",
            {"preset": "tiktok-tuned", "patience": None},
        ),
        ("explore", EXPLORE_SWEEPS, [], "diffmm", {}),
    ]
    for group, sweeps, pairs, kind, base in rounds:
        grid = ParameterGrid([{name: values} for name, values in sweeps.items()])
        for params in [*grid, *pairs]:
            label = f"{group}:" + ",".join(f"{k}={v}" for k, v in params.items())
            CONFIGS[label] = (kind, {**base, **params})
            GROUPS[group].append(label)


_register_sweeps()
METRICS = ("recall", "ndcg", "precision")
KS = (10, 20)

_DATA_CACHE: dict[tuple, Any] = {}


def _load(data: str, tiktok_path: str | None):
    key = (data, tiktok_path)
    if key not in _DATA_CACHE:
        if data == "tiktok":
            from diffmm.datasets import load_tiktok

            _DATA_CACHE[key] = load_tiktok(tiktok_path)
        else:
            from diffmm.datasets import make_synthetic

            _DATA_CACHE[key] = make_synthetic(
                n_users=3000,
                n_items=1500,
                modality_dims={"image": 128, "audio": 64},
                interactions_per_user=15,
                validation_fraction=0.1,
                random_state=0,
            )
    return _DATA_CACHE[key]


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _build(kind: str, settings: dict[str, Any], seed: int, device: str, epochs: int | None):
    from diffmm import DiffMMRecommender
    from diffmm.baselines import LightGCNRecommender, PopularityRecommender

    settings = {k: v for k, v in settings.items() if k != "modalities"}  # a copy, popped below
    patience = settings.pop("patience", PATIENCE)
    common = {"random_state": seed, "device": device, "patience": patience}
    if kind == "popularity":
        return PopularityRecommender()
    if kind == "lightgcn":
        if epochs is not None:
            settings = {**settings, "epochs": min(settings.get("epochs", epochs), 4 * epochs)}
        return LightGCNRecommender(**{**common, **settings})
    if epochs is not None:
        settings = {**settings, "epochs": epochs}
    if kind == "diffmm_preset":
        return DiffMMRecommender.from_preset(settings.pop("preset"), **common, **settings)
    return DiffMMRecommender.from_preset("tiktok", **common, **settings)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Fit one configuration with one seed and evaluate its best epoch on validation."""
    data = _load(job["data"], job.get("tiktok_path"))
    kind, settings = job["kind"], job["settings"]
    features = data.features
    if "modalities" in settings:
        features = {name: features[name] for name in settings["modalities"]}
    model = _build(kind, settings, job["seed"], job["device"], job.get("epochs"))
    start = time.perf_counter()
    stop_at = job.get("stop_at")  # wall-clock time (time.time()) after which training stops
    if stop_at is not None:
        # Ctrl-C semantics: the trainer keeps the best epoch so far and returns normally.
        signal.signal(signal.SIGALRM, _interrupt)
        signal.alarm(max(1, int(stop_at - time.time())))
    try:
        if kind == "popularity":
            model.fit(data.train, features)
        else:
            model.fit(data.train, features, validation_data=data.validation)
    except KeyboardInterrupt:  # the time limit came before the first epoch ended
        raise RuntimeError("stopped by --stop-minutes before its first epoch") from None
    finally:
        if stop_at is not None:
            signal.alarm(0)
    seconds = time.perf_counter() - start
    metrics = model.evaluate(data.validation, metrics=METRICS, ks=KS)
    history = getattr(model, "history_", [])
    per_user = _per_user(model, data.validation)
    graphs = None
    if getattr(model, "generated_graphs_", None) is not None:
        from diffmm.plotting import generated_graph_stats

        graphs = generated_graph_stats(model, data.validation)
    if job.get("save_models"):
        folder = Path(job["save_models"])
        folder.mkdir(parents=True, exist_ok=True)
        model.save(folder / f"{job['config']}_{job['seed']}.diffmm")
    return {
        "key": job["key"],
        "config": job["config"],
        "group": job["group"],
        "kind": kind,
        "settings": settings,
        "seed": job["seed"],
        "data": job["data"],
        "device": str(getattr(model, "device_", "cpu")),
        "seconds": seconds,
        "best_epoch": getattr(model, "best_epoch_", None),
        "epochs_run": len(history),
        "interrupted": bool(getattr(model, "interrupted_", False)),
        "curve": [r.get("validation_score") for r in history],
        "validation": {k: float(v) for k, v in metrics.items() if "@" in k},
        "generated_graphs": graphs,
        "per_user": per_user,
    }


def _per_user(model, held_out) -> dict[str, list[float]]:
    """Recall@20 and NDCG@20 of each validation user (in user order), for paired comparisons."""
    from diffmm.metrics import ndcg_at_k, recall_at_k

    held_out = held_out.tocsr()
    users = np.flatnonzero(held_out.getnnz(axis=1))
    top, _ = model.recommend(users, n=20)
    rows = held_out[users]
    return {
        "recall@20": [round(v, 6) for v in recall_at_k(top, rows, 20, return_per_user=True)[1]],
        "ndcg@20": [round(v, 6) for v in ndcg_at_k(top, rows, 20, return_per_user=True)[1]],
    }


def _job(config: str, group: str, kind: str, settings: dict, seed: int, args) -> dict[str, Any]:
    return {
        "key": f"{args.data}|{config}|{seed}",
        "config": config,
        "group": group,
        "kind": kind,
        "settings": settings,
        "seed": seed,
        "data": args.data,
        "device": args.device,
        "epochs": args.epochs,
        "tiktok_path": args.tiktok_path,
        "save_models": str(args.save_models) if args.save_models else None,
    }


def _sweep_jobs(args) -> list[dict[str, Any]]:
    from sklearn.model_selection import ParameterGrid

    jobs = []
    for name, values in SWEEPS.items():
        for params in ParameterGrid({name: values}):
            label = f"sweep:{name}={params[name]}"
            jobs.append(_job(label, "tuning", "diffmm", params, args.seeds[0], args))
    base = CONFIGS["lightgcn"][1]
    for name, values in LIGHTGCN_SWEEPS.items():
        for params in ParameterGrid({name: values}):
            label = f"lightgcn:{name}={params[name]}"
            jobs.append(_job(label, "tuning", "lightgcn", {**base, **params}, args.seeds[0], args))
    return jobs


def _stage_two(done: dict[str, dict], args) -> list[dict[str, Any]]:
    """Combine the sweep settings that beat ``spec`` on the first seed; rerun with every seed."""
    seed = args.seeds[0]
    reference = done.get(f"{args.data}|spec|{seed}")
    if reference is None:
        return []
    base = reference["validation"]["recall@20"]
    best_per_setting: dict[str, tuple[float, Any]] = {}
    for result in done.values():
        if not result["config"].startswith("sweep:") or result["seed"] != seed:
            continue
        ((name, value),) = result["settings"].items()
        score = result["validation"]["recall@20"]
        if score > base and score > best_per_setting.get(name, (-1.0, None))[0]:
            best_per_setting[name] = (score, value)
    ranked = sorted(best_per_setting.items(), key=lambda kv: -kv[1][0])
    candidates: dict[str, dict[str, Any]] = {}
    for name, (_, value) in ranked[:3]:
        candidates[f"single:{name}={value}"] = {name: value}
    if len(ranked) >= 2:
        candidates["combo:top2"] = {name: value for name, (_, value) in ranked[:2]}
    if len(ranked) >= 3:
        candidates["combo:all"] = {name: value for name, (_, value) in ranked}
    jobs = []
    for label, settings in candidates.items():
        for s in args.seeds:
            jobs.append(_job(label, "tuning", "diffmm", settings, s, args))
    return jobs


def _per_user_path(path: Path) -> Path:
    """Where each run's per-user validation metrics go: beside ``path``, ignored by git.

    They are derived from the validation split, whose licence does not allow redistribution,
    so only their summaries (the paired intervals) are committed.
    """
    return path.with_name(path.stem + "_per_user.jsonl")


def _read_per_user(path: Path) -> dict[str, dict[str, list[float]]]:
    per_user_path = _per_user_path(path)
    if not per_user_path.exists():
        return {}
    entries = (json.loads(line) for line in per_user_path.read_text().splitlines() if line)
    return {e.pop("key"): e for e in entries}


def _read_results(path: Path) -> dict[str, dict]:
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                if "error" not in entry:
                    done[entry["key"]] = entry
    return done


def run(args) -> None:
    path = args.out / f"accuracy_{args.data}.jsonl"
    args.out.mkdir(parents=True, exist_ok=True)
    done = _read_results(path)
    queue: list[dict[str, Any]] = []
    for group in args.groups:
        if group == "tuning":
            queue += _sweep_jobs(args)
            continue
        for config in GROUPS[group]:
            kind, settings = CONFIGS[config]
            first_only = kind == "popularity" or group in FIRST_SEED_ONLY
            seeds = args.seeds[:1] if first_only else args.seeds
            queue += [_job(config, group, kind, settings, s, args) for s in seeds]
    for config in args.configs:
        kind, settings = CONFIGS[config]
        group = next((g for g, names in GROUPS.items() if config in names), "main")
        queue += [_job(config, group, kind, settings, s, args) for s in args.seeds]
    queue = [j for j in queue if j["key"] not in done]
    if args.by_seed:  # every configuration's first seed before any second seed
        queue.sort(key=lambda j: j["seed"])
    if args.stop_minutes:
        stop_at = time.time() + args.stop_minutes * 60
        for j in queue:
            j["stop_at"] = stop_at
    stage_two_added = "tuning" not in args.groups
    deadline = time.monotonic() + args.deadline_minutes * 60 if args.deadline_minutes else None
    context = mp.get_context("spawn")
    print(f"{len(queue)} jobs, {args.jobs} at a time -> {path}", flush=True)
    with cf.ProcessPoolExecutor(
        args.jobs, mp_context=context, initializer=_init_worker, initargs=(args.threads,)
    ) as pool:
        running: dict[cf.Future, dict] = {}
        while queue or running:
            while queue and len(running) < args.jobs:
                late = queue[0].get("stop_at", float("inf")) < time.time() + 60
                if late or (deadline is not None and time.monotonic() > deadline):
                    print(f"deadline reached: {len(queue)} jobs not started", flush=True)
                    queue.clear()
                    break
                job = queue.pop(0)
                running[pool.submit(run_job, job)] = job
            if not running:
                break
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    entry = future.result()
                    done[entry["key"]] = entry
                    r = entry["validation"]
                    print(
                        f"{entry['config']:<32} seed {entry['seed']}  R@20 {r['recall@20']:.4f}"
                        f"  N@20 {r['ndcg@20']:.4f}  best epoch {entry['best_epoch']}"
                        f"  {entry['seconds']:.0f}s",
                        flush=True,
                    )
                except Exception as exc:  # one failed job must not lose the others
                    entry = {"key": job["key"], "config": job["config"], "error": repr(exc)}
                    print(f"{job['config']} seed {job['seed']} FAILED: {exc!r}", flush=True)
                per_user = entry.pop("per_user", None)
                if per_user is not None:  # kept apart, out of git (see _per_user_path)
                    with _per_user_path(path).open("a") as out:
                        out.write(json.dumps({"key": entry["key"], **per_user}) + "\n")
                with path.open("a") as out:
                    out.write(json.dumps(entry) + "\n")
            sweeps_left = any(j["config"].startswith("sweep:") for j in queue) or any(
                j["config"].startswith("sweep:") for j in running.values()
            )
            if not stage_two_added and not sweeps_left:
                stage_two_added = True
                extra = [j for j in _stage_two(done, args) if j["key"] not in done]
                print(f"tuning stage two: {len(extra)} jobs", flush=True)
                queue = extra + queue
    summarize(args)


def _mean_std(values: list[float]) -> tuple[float, float]:
    if len(values) == 1:
        return values[0], 0.0
    return statistics.fmean(values), statistics.stdev(values)


def summarize(args) -> dict[str, Any]:
    """Aggregate the JSON-lines results into mean ± std per configuration (JSON + markdown)."""
    path = args.out / f"accuracy_{args.data}.jsonl"
    done = _read_results(path)
    by_config: dict[str, list[dict]] = {}
    for entry in done.values():
        by_config.setdefault(entry["config"], []).append(entry)
    rows = {}
    for config, entries in by_config.items():
        entries.sort(key=lambda e: e["seed"])
        row: dict[str, Any] = {
            "group": entries[0]["group"],
            "settings": entries[0]["settings"],
            "seeds": [e["seed"] for e in entries],
            "device": entries[0]["device"],
        }
        for metric in entries[0]["validation"]:
            row[metric] = _mean_std([e["validation"][metric] for e in entries])
        row["best_epoch"] = [e["best_epoch"] for e in entries]
        row["interrupted"] = [bool(e.get("interrupted")) for e in entries]
        row["seconds"] = _mean_std([e["seconds"] for e in entries])
        every_epoch = entries[0]["settings"].get("patience", PATIENCE) is None
        if every_epoch and all(len(e["curve"]) > LATE_FROM for e in entries):
            # The level of the curve after its first LATE_FROM epochs.
            late = [statistics.fmean(e["curve"][LATE_FROM:]) for e in entries]
            row["late_recall@20"] = _mean_std(late)
        rows[config] = row
    summary = {
        "data": args.data,
        "protocol": (
            "best epoch on the validation split (patience 10; the full_budget rows run every"
            " epoch); test split never read"
        ),
        "machine": platform.platform(),
        "results": rows,
    }
    (args.out / f"accuracy_{args.data}.json").write_text(json.dumps(summary, indent=1))
    per_user = _read_per_user(path)
    comparisons = compare_to_bases(done, per_user)
    summary["paired"] = comparisons
    (args.out / f"accuracy_{args.data}.json").write_text(json.dumps(summary, indent=1))
    degrees = _validation_degrees(args) if args.data == "tiktok" else None
    extra = {
        "novelty": novelty_markdown(done),
        "versus": versus_markdown(comparisons),
        "degree": degree_markdown(done, per_user, degrees),
    }
    table = markdown(rows)
    (args.out / f"accuracy_{args.data}.md").write_text(table)
    if args.docs is not None:
        inject_docs(rows, args.docs, comparisons, extra)
    print(table)
    return summary


# The docs' two tables: the results (three seeds each) and the search's single-seed stages.
RESULT_GROUPS = [
    "main",
    "baselines",
    "ablations",
    "precision",
    "probe",
    "tuned",
    "explore2",
    "explore_cpu",
    "full_budget",
]
SEARCH_GROUPS = ["tuning", "retune", "explore", "round4"]


# Paired comparisons: each configuration of a group against its group's base.
PAIRED_BASES = {"plus": "plus_base", "plus_lightgcn": "lgcn_plus_base"}
PAIRED_METRICS = ("recall@20", "ndcg@20")
# DiffMM's options against LightGCN's: both bases, and each model's best option on seed 0.
CROSS_PAIRS = [
    ("plus_base", "lgcn_plus_base"),
    ("plus_combo", "lgcn_plus_base"),
    ("plus_combo", "lgcn_plus_neg4"),
    ("plus_neg4", "lgcn_plus_neg4"),
]


def compare_to_bases(
    done: dict[str, dict], per_user: dict[str, dict[str, list[float]]]
) -> dict[str, dict]:
    """Per configuration: the paired per-user difference to its base, over their common seeds.

    For every seed both ran, the per-user validation Recall@20 and NDCG@20 of the two runs
    are subtracted user by user; each user's differences are averaged over the seeds and the
    users resampled (``diffmm.metrics.paired_bootstrap``): a 95% interval of the mean
    difference. Also the difference of the curves' levels (mean Recall@20 after epoch 20).
    """
    from diffmm.metrics import paired_bootstrap

    by_config: dict[str, dict[int, dict]] = {}
    for key, entry in done.items():
        if key in per_user:
            by_config.setdefault(entry["config"], {})[entry["seed"]] = {**entry, **per_user[key]}
    pairs = [
        (config, base)
        for group, base in PAIRED_BASES.items()
        for config in GROUPS.get(group, [])
        if config != base
    ]
    out = {}
    for config, base in [*pairs, *CROSS_PAIRS]:
        if config not in by_config or base not in by_config:
            continue
        seeds = sorted(set(by_config[config]) & set(by_config[base]))
        if not seeds:
            continue
        row: dict[str, Any] = {"config": config, "base": base, "seeds": seeds}
        for metric in PAIRED_METRICS:
            a = np.array([by_config[config][s][metric] for s in seeds])
            b = np.array([by_config[base][s][metric] for s in seeds])
            result = paired_bootstrap(a, b, random_state=0)
            result["relative"] = result["mean"] / float(np.nanmean(b))
            row[metric] = result
        late = [
            statistics.fmean(by_config[c][s]["curve"][LATE_FROM:])
            for c in (config, base)
            for s in seeds
        ]
        row["late_difference"] = statistics.fmean(late[: len(seeds)]) - statistics.fmean(
            late[len(seeds) :]
        )
        out[f"{config} vs {base}"] = row
    return out


def versus_markdown(comparisons: dict[str, dict]) -> str:
    """DiffMM with the options against LightGCN with its options, paired by seed and user."""
    lines = [
        "| DiffMM | LightGCN | seeds | Δ Recall@20 [95% CI] | Δ NDCG@20 [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for config, base in CROSS_PAIRS:
        row = comparisons.get(f"{config} vs {base}")
        if row is None:
            continue
        cells = [config, base, str(len(row["seeds"]))]
        for metric in PAIRED_METRICS:
            r = row[metric]
            cells.append(
                f"{r['mean']:+.4f} ({r['relative']:+.1%}) [{r['low']:+.4f}, {r['high']:+.4f}]"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_markdown(rows: dict[str, dict], comparisons: dict[str, dict]) -> str:
    """The options' table: results, and the paired differences to the base (95% intervals)."""
    lines = [
        "| configuration | seeds | Recall@20 | NDCG@20 | Δ Recall@20 vs base [95% CI] "
        f"| Δ NDCG@20 vs base [95% CI] | Δ mean Recall@20 after epoch {LATE_FROM} |",
        "|---|---|---|---|---|---|---|",
    ]
    for group, base in PAIRED_BASES.items():
        for config in GROUPS.get(group, []):
            if config not in rows:
                continue
            row = rows[config]
            cells = [config, str(len(row["seeds"])), _pm(row["recall@20"]), _pm(row["ndcg@20"])]
            paired = comparisons.get(f"{config} vs {base}")
            if paired is None:
                cells += ["(base)" if config == base else "-"] * 3
            else:
                for metric in PAIRED_METRICS:
                    r = paired[metric]
                    interval = f"[{r['low']:+.4f}, {r['high']:+.4f}]"
                    cells.append(f"{r['mean']:+.4f} ({r['relative']:+.1%}) {interval}")
                cells.append(f"{paired['late_difference']:+.4f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def inject_docs(
    rows: dict[str, dict],
    page: Path,
    comparisons: dict | None = None,
    extra: dict[str, str] | None = None,
) -> None:
    """Replace the tables between ``<!-- results:start/end -->`` (``search:``, ``late:``, ...)."""
    text = page.read_text()
    tables = {
        "results": markdown(rows, RESULT_GROUPS),
        "search": markdown(rows, SEARCH_GROUPS),
        "late": late_markdown(rows),
        "plus": paired_markdown(rows, comparisons or {}),
        **(extra or {}),
    }
    for marker, table in tables.items():
        start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
        if start in text and end in text:
            head, rest = text.split(start, 1)
            text = head + start + "\n" + table + end + rest.split(end, 1)[1]
    page.write_text(text)


def late_markdown(rows: dict[str, dict]) -> str:
    """The rows that ran every epoch: best epoch against the curve's level after epoch 20."""
    lines = [
        f"| configuration | seeds | Recall@20, best epoch | NDCG@20, best epoch | best epochs "
        f"| mean Recall@20 after epoch {LATE_FROM} |",
        "|---|---|---|---|---|---|",
    ]
    for config, row in rows.items():
        # The options' rows have their own table, with the level's paired difference.
        if "late_recall@20" not in row or row["group"] in PAIRED_BASES:
            continue
        best, ndcg, late = (_pm(row[m]) for m in ("recall@20", "ndcg@20", "late_recall@20"))
        epochs = ",".join(str(e) for e in row["best_epoch"])
        lines.append(f"| {config} | {len(row['seeds'])} | {best} | {ndcg} | {epochs} | {late} |")
    return "\n".join(lines) + "\n"


def novelty_markdown(done: dict[str, dict]) -> str:
    """Per configuration and modality: what the kept epoch's generated edges are, over seeds.

    From ``diffmm.plotting.generated_graph_stats``: the share of generated user→item edges that
    are training interactions (the denoiser gave back an item the user has), and their
    precision against validation next to a random unseen pair's chance of being a validation
    interaction.
    """
    by_config: dict[tuple[str, str], list[dict]] = {}
    for entry in done.values():
        for modality, stats in (entry.get("generated_graphs") or {}).items():
            by_config.setdefault((entry["config"], modality), []).append(stats)
    lines = [
        "| configuration | modality | seeds | generated edges | training interactions "
        "| validation precision | chance |",
        "|---|---|---|---|---|---|---|",
    ]
    for (config, modality), stats in sorted(by_config.items()):
        mean = {k: statistics.fmean(s[k] for s in stats) for k in stats[0]}
        lines.append(
            f"| {config} | {modality} | {len(stats)} | {mean['n_edges']:,.0f} "
            f"| {mean['training_share']:.2%} | {mean['held_out_precision']:.3%} "
            f"| {mean['chance_precision']:.4%} |"
        )
    return "\n".join(lines) + "\n"


# Buckets of a validation item's number of training interactions (its training degree).
DEGREE_BUCKETS = (
    ("no training interaction", 0, 0),
    ("1-2", 1, 2),
    ("3-10", 3, 10),
    ("more than 10", 11, None),
)


def _validation_degrees(args) -> tuple[Any, np.ndarray] | None:
    """The validation matrix and the items' training degrees; None without the data."""
    if getattr(args, "tiktok_path", None) is None:
        return None
    try:
        from diffmm.datasets import load_tiktok

        data = load_tiktok(args.tiktok_path)
    except OSError as error:  # no data folder, or files missing from it
        print(f"no hit rates by item degree: {error}")
        return None
    return data.validation.tocsr(), np.asarray(data.train.tocsr().getnnz(axis=0)).ravel()


def degree_markdown(
    done: dict[str, dict], per_user: dict[str, dict], degrees: tuple[Any, np.ndarray] | None
) -> str:
    """Recall@20 of the validation users split by the training degree of their held-out items.

    Each user's Recall@20 is shared among the buckets of their validation items in proportion
    to how many of them fall in each (nearly every user has exactly one), so a bucket's figure
    is the share of its validation items' users that found them; mean over seeds.
    """
    if degrees is None:
        return "(needs the TikTok data)\n"
    validation, degree = degrees
    users = np.flatnonzero(validation.getnnz(axis=1))
    rows = validation[users].tocoo()
    share = np.zeros((len(users), len(DEGREE_BUCKETS)))
    item_degree = degree[rows.col]
    for b, (_, low, high) in enumerate(DEGREE_BUCKETS):
        inside = (item_degree >= low) & (item_degree <= (np.inf if high is None else high))
        np.add.at(share[:, b], rows.row[inside], 1.0)
    share /= share.sum(axis=1, keepdims=True)
    weight = share.sum(axis=0)
    names = [name for name, _, _ in DEGREE_BUCKETS]
    lines = [
        "| configuration | seeds | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
        "| share of validation users | | "
        + " | ".join(f"{w / len(users):.1%}" for w in weight)
        + " |",
    ]
    by_config: dict[str, list[np.ndarray]] = {}
    for key, entry in done.items():
        recall = per_user.get(key, {}).get("recall@20")
        if recall is not None and len(recall) == len(users):
            hits = (share * np.asarray(recall)[:, None]).sum(axis=0) / weight
            by_config.setdefault(entry["config"], []).append(hits)
    for config, hits in by_config.items():
        mean = np.mean(hits, axis=0)
        lines.append(f"| {config} | {len(hits)} | " + " | ".join(f"{h:.1%}" for h in mean) + " |")
    return "\n".join(lines) + "\n"


def _pm(stat: tuple[float, float]) -> str:
    """A table cell ``mean ± std``."""
    return f"{stat[0]:.4f} ± {stat[1]:.4f}"


def plot_curves(args, configs: list[str], out: Path) -> None:
    """Per-epoch validation Recall@20 of ``configs``: mean over seeds, band from min to max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    done = _read_results(args.out / f"accuracy_{args.data}.jsonl")
    fig, ax = plt.subplots(figsize=(7, 4))
    for config in configs:
        curves = [e["curve"] for e in done.values() if e["config"] == config and e["curve"]]
        if not curves:
            raise SystemExit(f"no per-epoch results for {config!r} in the results file")
        length = min(len(c) for c in curves)  # runs stopped early are cut to the shortest
        values = np.array([c[:length] for c in curves], dtype=float)
        epochs = np.arange(1, length + 1)
        seeds = f"{len(curves)} seed" + "s" * (len(curves) > 1)
        (line,) = ax.plot(epochs, values.mean(0), label=f"{config} (mean of {seeds})")
        ax.fill_between(epochs, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)
    options = any(c in GROUPS["plus"] + GROUPS["plus_lightgcn"] for c in configs)
    if args.data == "tiktok" and options:
        ax.axhline(TUNED_RECALL20, color="grey", ls="--", lw=1, label="tiktok-tuned, best (fp32)")
        ax.axhline(PLUS_GOAL_RECALL20, color="black", ls=":", lw=1, label="+5% over tiktok-tuned")
    elif args.data == "tiktok":
        ax.axhline(AUTHORS_RECALL20, color="grey", ls="--", lw=1, label="authors' code, best")
        ax.axhline(GOAL_RECALL20, color="black", ls=":", lw=1, label="+5% over the authors")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation Recall@20")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")


def markdown(rows: dict[str, dict], order: list[str] | None = None) -> str:
    order = order or RESULT_GROUPS + SEARCH_GROUPS
    header = (
        "| configuration | seeds | Recall@10 | Recall@20 | NDCG@10 | NDCG@20 | Precision@20 "
        "| best epochs | train s | device |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for group in order:
        for config, row in rows.items():
            if row["group"] != group:
                continue
            metrics = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "precision@20")
            cells = [_pm(row[m]) for m in metrics]
            stops = row.get("interrupted") or [False] * len(row["best_epoch"])
            pairs = zip(row["best_epoch"], stops, strict=True)
            marked = [f"{e}{'*' if cut else ''}" for e, cut in pairs]
            epochs = ",".join(marked) if any(e is not None for e in row["best_epoch"]) else "-"
            lines.append(
                f"| {config} | {len(row['seeds'])} | " + " | ".join(cells) + f" | {epochs} "
                f"| {row['seconds'][0]:.0f} | {row['device'].split(':')[0]} |"
            )
    return header + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["tiktok", "synthetic"], default="tiktok")
    parser.add_argument("--tiktok-path", default=str(ROOT.parent / "shared" / "data" / "tiktok"))
    parser.add_argument(
        "--groups", default="main,ablations", help="main,ablations,precision,tuning,tuned"
    )
    parser.add_argument("--configs", default="", help="extra configurations by name")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=None, help="override the 50 epochs")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--jobs", type=int, default=1, help="models trained in parallel")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per job")
    parser.add_argument(
        "--deadline-minutes",
        type=float,
        default=None,
        help="start no new job after this many minutes",
    )
    parser.add_argument(
        "--stop-minutes",
        type=float,
        default=None,
        help="stop every job's training this many minutes after the start, keeping its best "
        "epoch so far (marked * in the table)",
    )
    parser.add_argument(
        "--by-seed", action="store_true", help="run every configuration's first seed first"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--save-models", type=Path, default=None, help="save every fitted model into this folder"
    )
    parser.add_argument("--summarize", action="store_true")
    parser.add_argument(
        "--docs", type=Path, default=None, help="also write the tables into this page"
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="with --summarize: draw the per-epoch validation Recall@20 of --plot-configs here",
    )
    parser.add_argument("--plot-configs", default="spec_full,tuned_full")
    args = parser.parse_args(argv)
    args.groups = [g for g in args.groups.split(",") if g]
    args.configs = [c for c in args.configs.split(",") if c]
    if set(args.configs) - set(CONFIGS):
        parser.error(f"unknown configuration(s); choose from {sorted(CONFIGS)}")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    if args.threads is None:
        args.threads = max(1, (os.cpu_count() or 1) // args.jobs)
    unknown = set(args.groups) - set(GROUPS) - {"tuning"}
    if unknown:
        parser.error(f"unknown group(s) {sorted(unknown)}; choose from {[*GROUPS, 'tuning']}")
    if args.summarize:
        summarize(args)
        if args.plot is not None:
            plot_curves(args, [c for c in args.plot_configs.split(",") if c], args.plot)
    else:
        run(args)


if __name__ == "__main__":
    main()
