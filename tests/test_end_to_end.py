"""A real (tiny) sweep of two methods, then its Pareto analysis and the notebook on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from mlflow.tracking import MlflowClient
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "pareto_fronts.ipynb"
EXPERIMENT = "e2e_two_methods"

SPEC = {
    "name": EXPERIMENT,
    "method": "none",
    "dataset": {"name": "synthetic", "task": "shape", "private": "color",
                "options": {"train_size": 320, "test_size": 96, "image_size": 16}},
    "model": {"backbone": "small_cnn", "split": 2},
    "train": {"epochs": 1, "batch_size": 64},
    "search_space": {"method": {"choice": ["none", "noisy_arl"]},
                     "by_method": {"noisy_arl": {"sigma": {"uniform": [0.1, 3.0]}}}},
    "search": {"sampler": "random", "num_samples": 5, "max_concurrent": 2, "seed": 1},
    "attacks": {"epochs": 1, "batch_size": 128, "gallery": 3, "whitebox": {"images": 8, "steps": 10, "selection_images": 8}},
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "PRIVSWEEP_HOME": str(root), "PRIVSWEEP_DATA": str(root / "data")}
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    result = subprocess.run([sys.executable, "-m", "sweeps", "run", str(spec)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return root, f"sqlite:///{root / 'mlflow.db'}", env, result.stderr


def test_sweep_prints_the_front_and_where_to_look(sweep):
    _, uri, _, stderr = sweep
    assert "5 of 5 planned trial(s) finished, 0 failed" in stderr
    assert f"python -m analysis pareto --experiment {EXPERIMENT}" in stderr
    assert uri in stderr


def test_conditional_space_runs_both_methods(sweep):
    _, uri, _, _ = sweep
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    trials = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags["privsweep.role"] == "trial"]
    methods = {r.data.tags["privsweep.method"] for r in trials}
    assert methods == {"none", "noisy_arl"}
    for run in trials:  # the sampled method's own params, never the other's
        assert ("params.sigma" in run.data.params) == (run.data.tags["privsweep.method"] == "noisy_arl")


def test_analysis_cli_on_the_sweep(sweep, tmp_path):
    _, uri, env, _ = sweep
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "analysis", "pareto", "--experiment", EXPERIMENT,
                             "--tracking-uri", uri, "--out", str(out)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"front.parquet", "front.csv", "pareto.png", "summary.md"} <= {p.name for p in out.iterdir()}
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (out / "summary.md").read_text()
    assert "none" in summary and "noisy_arl" in summary
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    tagged = {r.info.run_id for r in runs if r.data.tags.get("privsweep.pareto") == "true"}
    front_rows = (out / "front.csv").read_text().strip().splitlines()[1:]
    assert len(tagged) == len(front_rows) >= 1
    [parent] = [r for r in runs if r.data.tags["privsweep.role"] == "sweep"]
    assert "pareto.png" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def test_notebook_runs_headless_on_the_sweep(sweep, monkeypatch):
    """With only the store chosen (here by PRIVSWEEP_HOME, as `make notebook` after `make demo`
    chooses the repo's), the notebook opens the store's most recently launched sweep."""
    root, _, _, _ = sweep
    monkeypatch.setenv("PRIVSWEEP_HOME", str(root))
    for name in ("PRIVSWEEP_EXPERIMENT", "MLFLOW_TRACKING_URI", "MPLBACKEND"):
        monkeypatch.delenv(name, raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.output_type == "error"], cell.source
    shown = "".join(o.get("text", "") for o in notebook.cells[1].outputs)
    assert f"experiment '{EXPERIMENT}' (the most recently launched in this store)" in shown
    for tag in ("pareto-plot", "hypervolume-plot"):
        [plot] = [c for c in notebook.cells if tag in c.get("metadata", {}).get("tags", [])]
        assert any("image/png" in output.get("data", {}) for output in plot.outputs), tag
