"""``examples/quickstart.ipynb`` runs top to bottom in a real Jupyter kernel without an error."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
TIMEOUT_PER_CELL = 240  # seconds; the whole notebook takes well under a minute


def _kernel_manager(tmp_path: Path):
    """A kernel manager whose "python3" kernel is *this* interpreter (the project's venv).

    A "python3" kernelspec installed system-wide or in the user's Jupyter folder may point at
    another Python without diffmm; a private kernelspec folder rules that out.
    """
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = tmp_path / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (this test's interpreter)",
        "language": "python",
        "env": {
            "IPYTHONDIR": str(tmp_path / "ipython"),
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "OMP_NUM_THREADS": "1",  # tiny data: threads only contend on a small CI machine
        },
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    for module in ("nbclient", "nbformat", "ipykernel", "matplotlib", "pandas"):
        pytest.importorskip(module, reason=f"the notebook test needs {module} (the 'test' extra)")
    import nbformat
    from nbclient import NotebookClient

    tmp_path = tmp_path_factory.mktemp("notebook")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        km=_kernel_manager(tmp_path),
        kernel_name="python3",
        timeout=TIMEOUT_PER_CELL,
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    )
    client.execute()  # raises CellExecutionError, with the traceback, on any failing cell
    return notebook


def _outputs(notebook):
    for cell in notebook.cells:
        if cell.cell_type == "code":
            yield from cell.get("outputs", [])


def test_no_cell_errors(executed):
    errors = [out for out in _outputs(executed) if out.get("output_type") == "error"]
    assert not errors, errors
    stderr = "".join(
        out.get("text", "")
        for out in _outputs(executed)
        if out.get("output_type") == "stream" and out.get("name") == "stderr"
    )
    assert "Traceback" not in stderr, stderr


def test_shows_the_estimator_as_html(executed):
    html = [
        out["data"]["text/html"] for out in _outputs(executed) if "text/html" in out.get("data", {})
    ]
    assert any("DiffMMRecommender" in text for text in html)


def test_shows_a_plot(executed):
    assert any("image/png" in out.get("data", {}) for out in _outputs(executed))


def test_shows_recommendations_with_raw_ids(executed):
    text = "".join(out.get("data", {}).get("text/plain", "") for out in _outputs(executed))
    assert "user_000" in text and "item_" in text
