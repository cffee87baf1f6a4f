"""notebooks/pareto_fronts.ipynb runs headless on a synthetic sweep and its plot cell draws a PNG."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from analysis.synthetic import write_synthetic_sweep

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "pareto_fronts.ipynb"


def cell_tagged(notebook, tag):
    return next(cell for cell in notebook.cells if tag in cell.get("metadata", {}).get("tags", []))


def test_notebook_runs_headless(tmp_path, monkeypatch):
    root = tmp_path.resolve()
    uri = f"sqlite:///{root / 'mlflow.db'}"
    write_synthetic_sweep(uri, "notebook_sweep", artifact_location=(root / "mlartifacts").as_uri())
    monkeypatch.setenv("PRIVSWEEP_EXPERIMENT", "notebook_sweep")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("MPLBACKEND", raising=False)

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO / "notebooks")}})
    try:
        client.execute()
    except Exception as error:  # show the failing cell's output, not only the kernel error
        pytest.fail(f"notebook failed: {error}")

    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.output_type == "error"], cell.source
    plot = cell_tagged(notebook, "pareto-plot")
    assert any("image/png" in output.get("data", {}) for output in plot.outputs), plot.outputs
    gallery = cell_tagged(notebook, "gallery")
    assert any("image/png" in output.get("data", {}) for output in gallery.outputs)
    table = cell_tagged(notebook, "table")
    assert any("noisy_arl" in output.get("data", {}).get("text/plain", "") for output in table.outputs)
