"""Count the operators one training epoch dispatches, per phase (what bounds a GPU epoch).

On a GPU every dispatched operator is (at least) one kernel launch, a few microseconds of host
time each whatever its size; an epoch of many small operators is launch-bound. This script
trains one epoch of a preset under ``torch.profiler`` and counts, inside each phase's profiler
range (``diffmm.denoiser``, ``diffmm.generation``, ``diffmm.recommender``, the documented
labels), the ATen operators called directly from Python or from autograd (an operator that
another one calls, and views, which launch nothing, are not counted). The count does not
depend on the machine's speed or load.

Two counts per phase: ``dispatched`` (every such operator: each costs host time on any
device, a few microseconds on a GPU even when it does nothing) and ``kernels`` (those that
do work on the data: less the conversions that return their input unchanged, such as
``x.to(x.dtype)``, and bare allocations such as ``new_empty``, which launch no kernel).

Run::

    python benchmarks/op_count.py --preset tiktok --out benchmarks/results/op_count.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from diffmm import DiffMMRecommender
from diffmm.datasets import load_tiktok, make_synthetic

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("diffmm.denoiser", "diffmm.generation", "diffmm.recommender")
# Operators that only make views or change metadata: no kernel.
VIEWS = {
    "aten::view",
    "aten::_unsafe_view",
    "aten::as_strided",
    "aten::t",
    "aten::transpose",
    "aten::permute",
    "aten::expand",
    "aten::slice",
    "aten::select",
    "aten::alias",
    "aten::detach",
    "aten::lift_fresh",
    "aten::unsqueeze",
    "aten::squeeze",
    "aten::split",
    "aten::split_with_sizes",
    "aten::narrow",
    "aten::reshape",
    "aten::resolve_conj",
    "aten::resolve_neg",
    "aten::empty",
    "aten::empty_strided",
    "aten::result_type",
    "aten::values",
    "aten::crow_indices",
    "aten::col_indices",
}
# Conversions that launch a kernel only when they copy (then they call one in turn).
CONVERSIONS = {"aten::to", "aten::contiguous", "aten::type_as"}
# Allocations without a fill, a transpose view and a metadata query: no kernel.
NO_KERNEL = {
    "aten::new_empty",
    "aten::empty_like",
    "aten::new_empty_strided",
    "aten::numpy_T",
    "aten::dense_dim",
}


def _does_work(event) -> bool:
    if event.name in NO_KERNEL:
        return False
    if event.name in CONVERSIONS:
        return any(child.name.startswith("aten::") for child in event.cpu_children)
    return True


def count(events, by_name: dict[str, Counter] | None = None) -> dict[str, dict[str, int]]:
    """Top-level, non-view ATen operators inside each phase's range, in one walk.

    Returns ``{"dispatched": {phase: n, ..., "epoch": n}, "kernels": {...}}``, the second
    counting only those that do work on the data (see the module docstring). ``by_name``,
    when given, receives each phase's dispatched counts per operator name.
    """
    counts: dict[str, dict[str, int]] = {"dispatched": {}, "kernels": {}}
    for phase in PHASES:
        tops = [e for e in events if e.name == phase]
        names: Counter = Counter()
        kernels = 0
        for top in tops:
            stack = list(top.cpu_children)
            while stack:
                event = stack.pop()
                if event.name.startswith("aten::"):
                    if event.name not in VIEWS:
                        names[event.name] += 1
                        kernels += _does_work(event)
                    continue  # what it calls in turn is part of this operator
                stack.extend(event.cpu_children)
        key = phase.removeprefix("diffmm.")
        counts["dispatched"][key], counts["kernels"][key] = sum(names.values()), kernels
        if by_name is not None:
            by_name[key] = names
    for per_phase in counts.values():
        per_phase["epoch"] = sum(per_phase.values())
    return counts


def main(argv: list[str] | None = None) -> dict[str, dict[str, int]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiktok")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--data", choices=["tiktok", "synthetic"], default="tiktok")
    parser.add_argument("--path", default=str(ROOT.parent / "shared" / "data" / "tiktok"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--top", type=int, default=0, help="print each phase's N commonest ops")
    args = parser.parse_args(argv)
    if args.data == "tiktok":
        data = load_tiktok(args.path)
    else:
        data = make_synthetic(n_users=500, n_items=300, random_state=0)
    model = DiffMMRecommender.from_preset(
        args.preset, epochs=1, device="cpu", random_state=0, precision=args.precision
    )
    torch.set_num_threads(1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.fit(data.train, data.features)
    by_name: dict[str, Counter] = {}
    counts = count(prof.events(), by_name)
    print(json.dumps(counts, indent=1))
    for phase, names in by_name.items() if args.top else ():
        print(f"{phase}: " + ", ".join(f"{n[6:]} {c}" for n, c in names.most_common(args.top)))
    if args.out is not None:
        record = {"preset": args.preset, "data": args.data, "precision": args.precision}
        args.out.write_text(json.dumps({**record, **counts}) + "\n")
    return counts


if __name__ == "__main__":
    main()
