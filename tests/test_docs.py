"""The documentation site builds with ``mkdocs build --strict``, without a warning."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Pages that must come out of the build (relative to the site folder).
PAGES = [
    "index.html",
    "data/index.html",
    "model/index.html",
    "model-selection/index.html",
    "performance/index.html",
    "persistence/index.html",
    "bad-input/index.html",
    "distributed/index.html",
    "changelog/index.html",
    "api/diffmm/index.html",
    "api/estimator/index.html",
    "api/baselines/index.html",
    "api/datasets/index.html",
    "api/model_selection/index.html",
    "api/metrics/index.html",
    "api/diffusion/index.html",
    "api/losses/index.html",
    "api/plotting/index.html",
    "api/distributed/index.html",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, str]:
    missing = [m for m in ("mkdocs", "material", "mkdocstrings_handlers.python") if not _has(m)]
    if missing:
        pytest.skip(
            f"the docs toolchain is not installed ({', '.join(missing)}; see the 'docs' extra)"
        )
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # a banner of mkdocs-material, not ours
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{log}"
    return out, log


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def test_build_has_no_warnings(site):
    _, log = site
    warnings = [line for line in log.splitlines() if re.match(r"\s*(WARNING|ERROR)\b", line)]
    assert not warnings, "\n".join(warnings)


@pytest.mark.parametrize("page", PAGES)
def test_page_exists(site, page):
    out, _ = site
    assert (out / page).is_file(), f"{page} is missing from the built site"


def test_api_pages_render_the_docstrings(site):
    out, _ = site
    estimator = (out / "api/estimator/index.html").read_text(encoding="utf-8")
    for text in ("DiffMMRecommender", "recommend", "fit", "from_preset", "embedding_dim"):
        assert text in estimator, f"the estimator's API page does not mention {text!r}"
    baselines = (out / "api/baselines/index.html").read_text(encoding="utf-8")
    assert "PopularityRecommender" in baselines and "recommend" in baselines
    plotting = (out / "api/plotting/index.html").read_text(encoding="utf-8")
    assert "plot_history" in plotting and "plot_generated_graphs" in plotting


def test_math_and_changelog_are_rendered(site):
    out, _ = site
    model = (out / "model/index.html").read_text(encoding="utf-8")
    # Rendered to MathML at build time: readable offline, no script from a CDN.
    assert model.count("<math") > 50 and 'class="arithmatex"' not in model
    assert "cdn.jsdelivr" not in model and "mathjax" not in model.lower()
    assert "<msub>" in model and "<mfrac>" in model
    changelog = (out / "changelog/index.html").read_text(encoding="utf-8")
    assert "Keep a Changelog" in changelog and "--8&lt;--" not in changelog


@pytest.mark.parametrize(
    "path", sorted([*ROOT.glob("docs/**/*.md"), ROOT / "README.md", ROOT / "CHANGELOG.md"])
)
def test_pages_hold_no_control_characters(path):
    # A page written from a Python string without r"..." turns "\\beta" into a backspace and
    # "eta", "\\rho" into a line break and "ho": the maths still renders, but wrong.
    text = path.read_bytes().decode("utf-8")  # as stored: no newline translation
    bad = sorted({f"{ord(c):#04x}" for c in text if ord(c) < 32 and c != "\n"})
    assert not bad, f"{path.name} holds control characters {bad}"


PUBLIC_MODULES = [
    "diffmm",
    "diffmm.estimator",
    "diffmm.baselines",
    "diffmm.datasets",
    "diffmm.model_selection",
    "diffmm.metrics",
    "diffmm.diffusion",
    "diffmm.losses",
    "diffmm.plotting",
    "diffmm.distributed",
    "diffmm.serving",
    "diffmm.callbacks",
]


def _public_names() -> list[tuple[str, str, list[str]]]:
    """(module, name, public methods) of every name the public modules export."""
    import importlib
    import inspect

    found = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            methods = []
            if inspect.isclass(obj):
                for klass in obj.__mro__:  # methods written in diffmm, inherited ones too
                    if not klass.__module__.startswith("diffmm"):
                        continue
                    methods += [
                        m
                        for m, v in vars(klass).items()
                        if not m.startswith("_") and (callable(v) or isinstance(v, property))
                    ]
            found.append((module_name, name, sorted(set(methods))))
    return found


def test_every_public_name_and_method_is_in_the_api_reference(site):
    out, _ = site
    pages = "".join(p.read_text(encoding="utf-8") for p in (out / "api").glob("*/index.html"))
    anchors = set(re.findall(r'id="(diffmm\.[\w.]+)"', pages))
    missing = []
    for module_name, name, methods in _public_names():
        if name in ("__version__",):
            continue
        owners = {a.rsplit(".", 1)[0] for a in anchors if a.rsplit(".", 1)[-1] == name}
        if not owners:
            missing.append(f"{module_name}.{name}")
            continue
        for method in methods:
            if not any(f"{owner}.{name}.{method}" in anchors for owner in owners):
                missing.append(f"{module_name}.{name}.{method}")
    assert not missing, f"not in the API reference: {missing}"
