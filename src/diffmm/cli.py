"""Command line: ``diffmm demo | fit | evaluate | recommend``.

Run ``diffmm --help`` (or ``python -m diffmm --help``) and ``diffmm COMMAND --help``. The
commands only parse arguments, call the package's public API and format its output.

Expected failures (a missing folder, an unreadable data set or model file, bad settings, an
unknown user id) print ``diffmm: error: <message>`` on stderr and exit with status 2; other
failures that the package reports (training diverged, an output file that cannot be written)
exit with status 1. Warnings print as ``diffmm: warning: <message>``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import difflib
import io
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import (
    PRESETS,
    InvalidInputError,
    ModelFileError,
    NonFiniteLossError,
    UnknownIdError,
    __version__,
)
from .datasets import MultiModalDataset, load_diffmm_format, load_mmrec_format, make_synthetic
from .metrics import METRICS

if TYPE_CHECKING:  # the estimators (and torch) are imported by the commands that use them
    from .estimator import DiffMMRecommender

__all__ = ["main"]

_SPLITS = ("validation", "test")
_DEFAULT_METRICS = ("recall", "ndcg", "precision")
_DEFAULT_KS = (10, 20)


class CommandError(Exception):
    """An expected failure: printed as ``diffmm: error: <message>``, exit status ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


# -- demo (the README's main job) ------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from .baselines import PopularityRecommender
    from .estimator import DiffMMRecommender

    data = make_synthetic(
        n_users=args.users, n_items=args.items, random_state=args.seed, validation_fraction=0.2
    )
    print(f"Data: {data}")
    models = {
        "popularity": PopularityRecommender(),
        "diffmm": DiffMMRecommender(
            epochs=args.epochs,
            denoiser_hidden_dims=(256,),
            batch_size=256,
            random_state=args.seed,
            verbose=args.verbose or (sys.stderr.isatty() and not args.quiet),
        ),
    }
    ks = (10, 20)
    print(
        f"\n{'model':<12} {'seconds':>8} "
        + " ".join(f"{m + '@' + str(k):>12}" for m in ("recall", "ndcg") for k in ks)
    )
    fitted = {}
    for name, model in models.items():
        start = time.perf_counter()
        if name == "diffmm":
            model.fit(data.train, data.features, validation_data=data.validation)
        else:
            model.fit(data.train, data.features)
        seconds = time.perf_counter() - start
        result = model.evaluate(data.validation, metrics=("recall", "ndcg"), ks=ks)
        fitted[name] = model
        values = " ".join(f"{result[f'{m}@{k}']:>12.4f}" for m in ("recall", "ndcg") for k in ks)
        print(f"{name:<12} {seconds:>8.1f} {values}")
    model = fitted["diffmm"]
    print(f"\nBest epoch {model.best_epoch_}; fusion weights {model.fusion_weights_}")
    users = model.user_ids_[:3]
    ids, scores = model.recommend(users, n=5)
    print("\nSample recommendations (top 5, training items excluded):")
    for user, row, row_scores in zip(users, ids, scores, strict=True):
        shown = ", ".join(f"{i} ({s:.2f})" for i, s in zip(row, row_scores, strict=True))
        print(f"  user {user}: {shown}")
    return 0


# -- shared helpers ----------------------------------------------------------------------------


def _detect_format(folder: Path) -> str:
    has_inter = any(p.is_file() for p in folder.glob("*.inter"))
    has_pickles = any(p.is_file() for p in folder.glob("*.pkl"))
    if has_inter and has_pickles:
        raise CommandError(
            f"{folder} holds both a *.inter file (MMRec format) and *.pkl matrices (DiffMM "
            "format); choose one with --format mmrec or --format diffmm"
        )
    if has_inter:
        return "mmrec"
    if has_pickles:
        return "diffmm"
    raise CommandError(
        f"cannot tell the data format of {folder}: it holds no *.inter file (MMRec format) and "
        "no pickled interaction matrices such as trnMat.pkl (DiffMM format)"
    )


def _load_data(folder_arg: str, fmt: str) -> tuple[MultiModalDataset, str]:
    """Read a data folder (``fmt`` "auto", "diffmm" or "mmrec"); return it and its format."""
    folder = Path(folder_arg)
    if not folder.exists():
        raise CommandError(f"data folder not found: {folder}")
    if not folder.is_dir():
        raise CommandError(f"not a folder: {folder} (pass the folder that holds the data files)")
    if fmt == "auto":
        fmt = _detect_format(folder)
    loader = load_mmrec_format if fmt == "mmrec" else load_diffmm_format
    try:
        return loader(folder), fmt
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read {folder} as {fmt}-format data: {exc}") from None


def _load_model(path_arg: str) -> DiffMMRecommender:
    from .estimator import DiffMMRecommender

    path = Path(path_arg)
    if not path.exists():
        raise CommandError(f"model file not found: {path}")
    if path.is_dir():
        raise CommandError(f"{path} is a folder, not a model file")
    return DiffMMRecommender.load(path)  # ModelFileError -> exit 2 in main


def _check_writable(path_arg: str | None, what: str) -> Path | None:
    """Fail before any long work if ``path`` cannot be a new file."""
    if path_arg is None:
        return None
    path = Path(path_arg)
    if path.is_dir():
        raise CommandError(f"{what} {path} is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CommandError(f"cannot write {what} {path}: the folder {parent} does not exist")
    return path


# The first bytes of files the command line reads (and must never overwrite with another kind).
_SIGNATURES = {b"PK\x03\x04": "a zip archive (a model file?)", b"\x93NUMPY": "a NumPy array"}


def _check_outputs(outputs: dict[str, tuple[Path | None, str]], inputs: Sequence[Path]) -> None:
    """Refuse outputs that are an input, another output, or an existing file of another kind.

    Each output comes with the kind it holds: "model" (may replace a model file) or "text"
    (reports and recommendation lists: may replace a text file only).
    """
    named = [(what, path, kind) for what, (path, kind) in outputs.items() if path is not None]
    for i, (what, path, kind) in enumerate(named):
        for other_what, other, _ in named[:i]:
            if _same_file(path, other):
                raise CommandError(f"the {what} and the {other_what} are the same file {path}")
        for source in inputs:
            if _same_file(path, source):
                raise CommandError(
                    f"the {what} {path} is also an input of this command; writing it would "
                    "destroy the input. Give another file name."
                )
        found = _file_kind(path)
        allowed = {"model": (None, "a zip archive (a model file?)"), "text": (None,)}[kind]
        if found not in allowed:
            raise CommandError(
                f"the {what} {path} exists and is {found}, not a {kind} file this command "
                "writes; refusing to overwrite it. Give another file name."
            )


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _file_kind(path: Path) -> str | None:
    """What an existing file is, from its first bytes (None: absent, or text)."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    for signature, kind in _SIGNATURES.items():
        if head.startswith(signature):
            return kind
    if head[:1] == b"\x80" or path.suffix.lower() in (".pkl", ".pickle", ".npy", ".inter"):
        return "a data file"
    return None


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically: a temporary file beside ``path``, then a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        mask = os.umask(0o022)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _int_at_least(lower: int, description: str):
    """An argparse type: an integer >= ``lower``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = lower - 1
        if value < lower:
            raise argparse.ArgumentTypeError(f"expected {description}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "an integer >= 0")


def _jsonable(value: Any) -> Any:
    """Plain JSON values from numpy scalars/arrays, tuples, paths and devices."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return str(value)


def _metrics_table(results: dict[str, dict[str, float]]) -> str:
    """One row per split: evaluated users and every ``metric@k`` column."""
    columns: list[str] = []
    for result in results.values():
        columns += [c for c in result if "@" in c and c not in columns]
    width = max([10, *(len(c) + 2 for c in columns)])
    lines = [f"{'split':<12}{'users':>8}" + "".join(f"{c:>{width}}" for c in columns)]
    for split, result in results.items():
        users = result.get("n_users_evaluated", "")
        values = "".join(
            f"{result[c]:>{width}.4f}" if c in result else f"{'-':>{width}}" for c in columns
        )
        lines.append(f"{split:<12}{users!s:>8}{values}")
    return "\n".join(lines)


# -- fit -----------------------------------------------------------------------------------------


def _read_config(path_arg: str) -> dict[str, Any]:
    path = Path(path_arg)
    if not path.exists():
        raise CommandError(f"config file not found: {path}")
    if path.is_dir():
        raise CommandError(f"config file {path} is a folder; give a .toml or .json file")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            import tomllib as toml  # Python >= 3.11
        except ModuleNotFoundError:  # Python 3.10
            try:
                import tomli as toml
            except ModuleNotFoundError:
                raise CommandError(
                    f"cannot read {path}: TOML config files need Python >= 3.11 or the 'tomli' "
                    "package (pip install tomli); or write the settings as a .json file"
                ) from None
        try:
            config = toml.loads(path.read_text(encoding="utf-8"))
        except (toml.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise CommandError(f"bad config file {path}: {exc}") from None
    elif suffix == ".json":
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CommandError(f"bad config file {path}: {exc}") from None
    else:
        raise CommandError(f"config file {path} must end in .toml or .json")
    if not isinstance(config, dict):
        raise CommandError(
            f"bad config file {path}: expected a table of parameter = value, got "
            f"{type(config).__name__}"
        )
    return config


def _parse_assignment(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise CommandError(f"--set expects name=value, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a bare string such as device=cpu or contrastive=main_modal
    return name, value


def _check_names(names: Sequence[str], valid: Sequence[str], source: str) -> None:
    unknown = [n for n in names if n not in valid]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise CommandError(
        f"unknown parameter(s) in {source}: {', '.join(hints)}. Valid parameters: "
        f"{', '.join(sorted(valid))}"
    )


def _model_params(args: argparse.Namespace) -> dict[str, Any]:
    """Settings, lowest precedence first: --config, then --set, then the dedicated flags."""
    from .estimator import DiffMMRecommender

    defaults = DiffMMRecommender().get_params(deep=False)
    valid = sorted(defaults)
    params: dict[str, Any] = {}
    if args.config is not None:
        config = _read_config(args.config)
        _check_names(list(config), valid, f"config file {args.config}")
        params.update(config)
    assignments = [_parse_assignment(text) for text in args.set]
    _check_names([name for name, _ in assignments], valid, "--set")
    params.update(assignments)
    for flag, name in (("epochs", "epochs"), ("device", "device"), ("seed", "random_state")):
        if getattr(args, flag) is not None:
            params[name] = getattr(args, flag)
    params.setdefault("verbose", sys.stderr.isatty())  # progress bars on a terminal
    if args.quiet:
        params["verbose"] = False
    for name, value in params.items():
        # JSON and TOML have arrays, not tuples (denoiser_hidden_dims=[256, 256]).
        if isinstance(value, list) and isinstance(defaults[name], tuple):
            params[name] = tuple(value)
    return params


def _evaluate_splits(
    model: DiffMMRecommender, data: MultiModalDataset
) -> dict[str, dict[str, float]]:
    return {
        split: model.evaluate(getattr(data, split), metrics=_DEFAULT_METRICS, ks=_DEFAULT_KS)
        for split in _SPLITS
        if getattr(data, split) is not None
    }


def _data_files(folder_arg: str) -> list[Path]:
    folder = Path(folder_arg)
    return [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []


def _fit(args: argparse.Namespace) -> int:
    out = _check_writable(args.out, "model file")
    report_path = _check_writable(args.report, "report")
    inputs = _data_files(args.data_dir) + ([Path(args.config)] if args.config else [])
    _check_outputs({"model file": (out, "model"), "report": (report_path, "text")}, inputs)
    from .estimator import DiffMMRecommender

    params = _model_params(args)
    model = (
        DiffMMRecommender.from_preset(args.preset, **params)
        if args.preset is not None
        else DiffMMRecommender(**params)
    )
    try:  # the settings are checked before any data is read
        model._validate_params()
        model._schedule()
    except InvalidInputError as exc:
        raise CommandError(f"cannot fit: {exc}") from None
    data, fmt = _load_data(args.data_dir, args.format)
    if not args.quiet:
        print(f"Data ({fmt} format): {data}")
    start = time.perf_counter()
    try:
        model.fit(data.train, data.features, validation_data=data.validation)
    except NonFiniteLossError as exc:
        raise CommandError(
            f"training diverged: {exc} (try a smaller learning_rate or denoiser_learning_rate)",
            code=1,
        ) from None
    except InvalidInputError as exc:  # parameter constraints and data checks of fit
        raise CommandError(f"cannot fit: {exc}") from None
    except MemoryError as exc:
        raise CommandError(f"cannot fit: {exc}", code=1) from None
    seconds = time.perf_counter() - start
    model.save(out)
    results = _evaluate_splits(model, data)
    stopped = ", stopped early" if model.stopped_early_ else ""
    print(
        f"Fitted DiffMM in {seconds:.1f} s: {len(model.history_)} epoch(s), kept epoch "
        f"{model.best_epoch_}{stopped}. Saved the model to {out}"
    )
    if results:
        print(_metrics_table(results))
    else:
        print("The data has no validation or test split: no metrics to report.")
    if report_path is not None:
        report = {
            "diffmm_version": __version__,
            "data": {
                "path": str(args.data_dir),
                "format": fmt,
                "name": data.name,
                "n_users": data.n_users,
                "n_items": data.n_items,
                "modalities": list(data.modalities),
                "interactions": {
                    split: (None if getattr(data, split) is None else getattr(data, split).nnz)
                    for split in ("train", *_SPLITS)
                },
            },
            "model": str(out),
            "preset": args.preset,
            "params": model.get_params(deep=False),
            "seconds": seconds,
            "epochs_run": len(model.history_),
            "best_epoch": model.best_epoch_,
            "stopped_early": model.stopped_early_,
            "fusion_weights": model.fusion_weights_,
            "metrics": results,
        }
        try:
            _write_text(report_path, json.dumps(_jsonable(report), indent=2) + "\n")
        except OSError as exc:
            raise CommandError(f"cannot write the report {report_path}: {exc}", code=1) from None
        if not args.quiet:
            print(f"Wrote the report to {report_path}")
    return 0


# -- evaluate ------------------------------------------------------------------------------------


def _evaluate(args: argparse.Namespace) -> int:
    model = _load_model(args.model)
    data, _ = _load_data(args.data_dir, args.format)
    held_out = getattr(data, args.split)
    if held_out is None:
        present = [s for s in _SPLITS if getattr(data, s) is not None]
        raise CommandError(
            f"{args.data_dir} has no {args.split} split"
            + (f" (it has: {', '.join(present)}; use --split)" if present else "")
        )
    if held_out.shape != (model.n_users_, model.n_items_):
        raise CommandError(
            f"{args.data_dir} has {held_out.shape[0]} users x {held_out.shape[1]} items but the "
            f"model was fitted on {model.n_users_} x {model.n_items_}: evaluate it on the data "
            "it was trained on"
        )
    metrics = tuple(dict.fromkeys(args.metrics))
    ks = tuple(dict.fromkeys(args.k))
    try:
        result = model.evaluate(held_out, metrics=metrics, ks=ks)
    except InvalidInputError as exc:
        raise CommandError(f"cannot evaluate: {exc}") from None
    if args.json:
        print(json.dumps(_jsonable({"split": args.split, **result}), indent=2))
    else:
        print(_metrics_table({args.split: result}))
    return 0


# -- recommend -----------------------------------------------------------------------------------


def _read_users_file(path_arg: str) -> list[str]:
    path = Path(path_arg)
    if not path.is_file():
        raise CommandError(f"users file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read the users file {path}: {exc}") from None
    users = [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
    if not users:
        raise CommandError(f"the users file {path} holds no user ids (one id per line)")
    return users


def _as_model_ids(raw: Sequence[str], known: np.ndarray) -> list[Any]:
    """Command-line ids are strings; give them the type of the model's user ids."""
    if known.dtype.kind in "iu":
        out = []
        for text in raw:
            try:
                out.append(int(text))
            except ValueError:
                raise UnknownIdError(
                    f"no such user {text!r}: this model's user ids are integers"
                ) from None
        return out
    if known.dtype.kind in "US":
        return list(raw)
    by_text = {str(v): v for v in known.tolist()}  # mixed or object ids
    return [by_text.get(text, text) for text in raw]


def _recommend(args: argparse.Namespace) -> int:
    output = _check_writable(args.output, "output file")
    inputs = [Path(args.model)] + ([Path(args.users_file)] if args.users_file else [])
    _check_outputs({"output file": (output, "text")}, inputs)
    fmt = args.format
    if fmt is None:
        fmt = "json" if output is not None and output.suffix.lower() == ".json" else "csv"
    model = _load_model(args.model)
    raw = args.users if args.users is not None else _read_users_file(args.users_file)
    users = list(dict.fromkeys(_as_model_ids(raw, model.user_ids_)))
    item_ids, scores = model.recommend(users, n=args.n, exclude_seen=not args.include_seen)
    records = []
    for user, row, row_scores in zip(users, item_ids.tolist(), scores.tolist(), strict=True):
        # A -inf score is padding: fewer than n candidate items were left for this user.
        kept = [(i, s) for i, s in zip(row, row_scores, strict=True) if np.isfinite(s)]
        records.append((user, kept))
    if fmt == "json":
        text = (
            json.dumps(
                [
                    {
                        "user": _jsonable(user),
                        "recommendations": [
                            {"rank": rank, "item": _jsonable(item), "score": score}
                            for rank, (item, score) in enumerate(kept, start=1)
                        ],
                    }
                    for user, kept in records
                ],
                indent=2,
            )
            + "\n"
        )
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["user", "rank", "item", "score"])
        for user, kept in records:
            for rank, (item, score) in enumerate(kept, start=1):
                writer.writerow([user, rank, item, score])
        text = buffer.getvalue()
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            _write_text(output, text)
        except OSError as exc:
            raise CommandError(f"cannot write {output}: {exc}", code=1) from None
    return 0


# -- parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffmm",
        description="DiffMM multi-modal diffusion recommender: fit on a data folder, evaluate "
        "a saved model, write top-n recommendations, or run the synthetic demo.",
        epilog="Run 'diffmm COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    formats = ("auto", "diffmm", "mmrec")
    format_help = (
        "data folder format: 'diffmm' (pickled scipy matrices trnMat.pkl/valMat.pkl/"
        "tstMat.pkl + <modality>_feat.npy; pickles can execute code, load only files you "
        "trust), 'mmrec' (a tab-separated <name>.inter file with userID, itemID, x_label + "
        "<modality>_feat.npy) or 'auto' (default: detect from the files)"
    )

    demo = sub.add_parser(
        "demo",
        help="fit, evaluate and recommend on the embedded synthetic data set",
        description="Fit DiffMM and a popularity baseline on synthetic multi-modal data, "
        "print validation metrics and sample recommendations.",
    )
    demo.add_argument("--users", type=int, default=600, help="number of users (default 600)")
    demo.add_argument("--items", type=int, default=400, help="number of items (default 400)")
    demo.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument(
        "--verbose", action="store_true", help="show progress bars (the default on a terminal)"
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_demo)

    fit = sub.add_parser(
        "fit",
        help="fit DiffMM on a data folder and save the model",
        description="Fit DiffMM on the training split of DATA_DIR (its validation split, when "
        "present, selects the best epoch and stops training early), save the model to --out, "
        "and report metrics on the validation and test splits that are present. Settings, "
        "from lowest to highest precedence: the model defaults, --preset, --config, --set, "
        "then --epochs/--device/--seed.",
    )
    fit.add_argument("data_dir", metavar="DATA_DIR", help="the data folder")
    fit.add_argument(
        "--out", required=True, metavar="MODEL_PATH", help="where to save the model (*.diffmm)"
    )
    fit.add_argument("--format", choices=formats, default="auto", help=format_help)
    fit.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="start from the published settings for a data set",
    )
    fit.add_argument(
        "--config",
        metavar="FILE",
        help="a .toml or .json file of parameter = value settings "
        "(e.g. embedding_dim = 64, denoiser_hidden_dims = [1000])",
    )
    fit.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set one parameter (repeatable); VALUE is read as JSON when it parses "
        "(8, 1e-3, true, null, [256, 256]) and as a string otherwise (cpu, main_modal)",
    )
    fit.add_argument("--epochs", type=_positive_int, metavar="N", help="training epochs")
    fit.add_argument("--device", metavar="D", help="'auto' (default), 'cpu', 'cuda', 'cuda:1' ...")
    fit.add_argument("--seed", type=_non_negative_int, metavar="N", help="random seed")
    fit.add_argument(
        "--report", metavar="REPORT.json", help="also write settings and metrics as JSON"
    )
    fit.add_argument("--quiet", action="store_true", help="no progress bar or chatter")
    fit.set_defaults(func=_fit)

    evaluate = sub.add_parser(
        "evaluate",
        help="evaluate a saved model on a split of a data folder",
        description="Rank the catalogue for every user with held-out items in the chosen "
        "split (training items excluded) and print ranking metrics.",
    )
    evaluate.add_argument("model", metavar="MODEL_PATH", help="a model saved by 'diffmm fit'")
    evaluate.add_argument("data_dir", metavar="DATA_DIR", help="the data folder it was fitted on")
    evaluate.add_argument(
        "--split", choices=_SPLITS, default="validation", help="default: validation"
    )
    evaluate.add_argument(
        "--k",
        type=_positive_int,
        nargs="+",
        default=list(_DEFAULT_KS),
        metavar="K",
        help="cut-offs (default: 10 20)",
    )
    evaluate.add_argument(
        "--metrics",
        nargs="+",
        choices=list(METRICS),
        default=list(_DEFAULT_METRICS),
        metavar="METRIC",
        help=f"any of {', '.join(METRICS)} (default: {' '.join(_DEFAULT_METRICS)})",
    )
    evaluate.add_argument("--format", choices=formats, default="auto", help=format_help)
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate.set_defaults(func=_evaluate)

    recommend = sub.add_parser(
        "recommend",
        help="write top-n recommendations of a saved model",
        description="Write each user's top-n items, best first, as CSV (user,rank,item,score) "
        "or JSON, to stdout or to --output. Users' training items are left out unless "
        "--include-seen is given.",
    )
    recommend.add_argument("model", metavar="MODEL_PATH", help="a model saved by 'diffmm fit'")
    who = recommend.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", nargs="+", metavar="ID", help="user ids")
    who.add_argument("--users-file", metavar="FILE", help="a file with one user id per line")
    recommend.add_argument(
        "--n", type=_positive_int, default=10, help="items per user (default 10)"
    )
    recommend.add_argument(
        "--output", metavar="FILE", help="write to FILE (.csv or .json) instead of stdout"
    )
    recommend.add_argument(
        "--format",
        choices=("csv", "json"),
        help="output format (default: from the --output suffix, else csv)",
    )
    recommend.add_argument(
        "--include-seen", action="store_true", help="also recommend users' training items"
    )
    recommend.set_defaults(func=_recommend)
    return parser


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    print(f"diffmm: warning: {message}", file=sys.stderr)


def _fail(message: str, code: int) -> int:
    print(f"diffmm: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (argparse exits itself on usage errors)."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return int(func(args))
        except CommandError as exc:
            return _fail(str(exc), exc.code)
        except (UnknownIdError, ModelFileError, FileNotFoundError) as exc:
            return _fail(str(exc), 2)
        except OSError as exc:
            return _fail(str(exc), 1)
        except KeyboardInterrupt:
            return _fail("interrupted", 130)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
