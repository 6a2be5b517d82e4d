"""Train on data folders in the DiffMM authors' format and in the MMRec toolbox's format.

Two folder layouts are common for multi-modal recommendation data:

* **DiffMM** (the paper's reference code): pickled ``scipy.sparse`` users x items matrices
  ``trnMat.pkl``, ``valMat.pkl`` (and ``tstMat.pkl``), plus one ``<modality>_feat.npy`` per
  modality whose row ``i`` describes item ``i``. Read with
  :func:`diffmm.datasets.load_diffmm_format` (or :func:`~diffmm.datasets.load_tiktok`). The
  pickles are read with ``pickle.load``, which can execute code: load only files you trust.
* **MMRec**: a tab-separated ``<name>.inter`` file with ``userID``, ``itemID`` and ``x_label``
  columns (0 train, 1 validation, 2 test) plus ``image_feat.npy`` / ``text_feat.npy``. Read with
  :func:`diffmm.datasets.load_mmrec_format`.

When the real TikTok data is present at ``../shared/data/tiktok`` (relative to the repository
root) the script trains on it; otherwise, or with ``--synthetic``, it writes a synthetic data
set to a temporary folder in both formats, loads each back and trains on it. The same folders
work from the command line: ``diffmm fit FOLDER --out model.diffmm``. Examples::

    python examples/real_data_formats.py                       # TikTok if present
    python examples/real_data_formats.py --max-users 1000      # a quicker try on TikTok
    python examples/real_data_formats.py --synthetic --users 60 --items 40 --epochs 1

The full TikTok set (9,308 users x 6,710 items) takes minutes per epoch on a CPU; use a GPU
(``--device auto`` picks one) or ``--max-users`` for a first look.
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from diffmm import DiffMMRecommender
from diffmm.datasets import (
    MultiModalDataset,
    load_diffmm_format,
    load_mmrec_format,
    load_tiktok,
    make_synthetic,
)

# examples/ sits in the repository root, the shared data next to the repository.
TIKTOK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tiktok"


def write_diffmm_format(data: MultiModalDataset, folder: Path) -> Path:
    """Write ``data`` as the DiffMM reference code expects it."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"trnMat.pkl": data.train, "valMat.pkl": data.validation, "tstMat.pkl": data.test}
    for name, matrix in files.items():
        if matrix is not None:
            with open(folder / name, "wb") as fh:
                pickle.dump(sp.coo_matrix(matrix), fh)
    for modality, values in data.features.items():
        np.save(folder / f"{modality}_feat.npy", values)
    return folder


def write_mmrec_format(data: MultiModalDataset, folder: Path, name: str = "synthetic") -> Path:
    """Write ``data`` as MMRec expects it: one ``.inter`` table, image and text features."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["userID\titemID\tx_label"]
    for label, matrix in enumerate((data.train, data.validation, data.test)):
        if matrix is not None:
            coo = matrix.tocoo()
            lines += [f"{u}\t{i}\t{label}" for u, i in zip(coo.row, coo.col, strict=True)]
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    # MMRec names its two modalities image and text.
    for modality, values in zip(("image", "text"), data.features.values(), strict=False):
        np.save(folder / f"{modality}_feat.npy", values)
    return folder


def sample_users(data: MultiModalDataset, n: int, seed: int) -> MultiModalDataset:
    """``n`` random users' rows (all items kept): a smaller problem for a quick try."""
    rows = np.sort(np.random.default_rng(seed).choice(data.n_users, n, replace=False))
    return MultiModalDataset(
        train=data.train[rows],
        features=data.features,
        validation=None if data.validation is None else data.validation[rows],
        test=None if data.test is None else data.test[rows],
        name=f"{data.name} ({n} random users)",
    )


def fit_and_report(data: MultiModalDataset, model: DiffMMRecommender) -> dict[str, float]:
    start = time.perf_counter()
    model.fit(data.train, data.features, validation_data=data.validation)
    scores = model.evaluate(data.validation, metrics=("recall", "ndcg"), ks=(20,))
    print(
        f"  fitted in {time.perf_counter() - start:.1f} s on {model.device_} (kept epoch "
        f"{model.best_epoch_}): validation recall@20 {scores['recall@20']:.4f}, "
        f"ndcg@20 {scores['ndcg@20']:.4f}"
    )
    return scores


def run_tiktok(path: Path, args: argparse.Namespace) -> None:
    # load_tiktok reads the DiffMM layout (same as load_diffmm_format(path)); this copy has no
    # test split on purpose: tune on the validation split only.
    data = load_tiktok(path)
    print(f"DiffMM-format folder {path}:\n  {data}")
    if 0 < args.max_users < data.n_users:
        data = sample_users(data, args.max_users, args.seed)
        print(f"  using {args.max_users} random users: {data}")
    # The published TikTok settings, with fewer epochs than the paper's 50.
    model = DiffMMRecommender.from_preset(
        "tiktok", epochs=args.epochs, device=args.device, random_state=args.seed
    )
    fit_and_report(data, model)


def run_synthetic(args: argparse.Namespace) -> None:
    data = make_synthetic(
        n_users=args.users,
        n_items=args.items,
        test_fraction=0.1,
        random_state=args.seed,
    )
    with tempfile.TemporaryDirectory() as tmp:
        folders = {
            "DiffMM": write_diffmm_format(data, Path(tmp) / "diffmm"),
            "MMRec": write_mmrec_format(data, Path(tmp) / "mmrec"),
        }
        loaders = {"DiffMM": load_diffmm_format, "MMRec": load_mmrec_format}
        for fmt, folder in folders.items():
            files = ", ".join(sorted(p.name for p in folder.iterdir()))
            loaded = loaders[fmt](folder)
            print(f"{fmt}-format folder ({files}):\n  {loaded}")
            # Both formats carry the same interactions.
            assert (loaded.train != data.train).nnz == 0
            assert (loaded.validation != data.validation).nnz == 0
            model = DiffMMRecommender(
                epochs=args.epochs,
                denoiser_hidden_dims=(256,),
                device=args.device,
                random_state=args.seed,
            )
            fit_and_report(loaded, model)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Train DiffMM on DiffMM-format and MMRec-format data folders."
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=TIKTOK,
        help=f"the TikTok folder (default: {TIKTOK}); used when it exists",
    )
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="use the synthetic data written in both formats even when the real data exists",
    )
    parser.add_argument(
        "--epochs", type=int, default=10, help="training epochs (default 10; the paper uses 50)"
    )
    parser.add_argument(
        "--max-users",
        type=int,
        default=0,
        help="real data only: train on N random users (default 0: all)",
    )
    parser.add_argument("--users", type=int, default=600, help="synthetic users (default 600)")
    parser.add_argument("--items", type=int, default=400, help="synthetic items (default 400)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="auto", help="'auto' (default), 'cpu' or 'cuda'")
    args = parser.parse_args(argv)

    if not args.synthetic and (args.data / "trnMat.pkl").is_file():
        run_tiktok(args.data, args)
    else:
        if not args.synthetic:
            print(f"No real data at {args.data}; using synthetic data instead.")
        run_synthetic(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
