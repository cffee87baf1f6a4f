"""An installed privsweep (a wheel, `pip install .` rather than `-e`) runs a sweep from a folder
that is not the checkout: the specs and search spaces ship as package data, and the store goes
to the user's data folder, not into site-packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from trainables.tracking import tracking_client

REPO = Path(__file__).resolve().parent.parent
# what a source tree holds that a build must not see: environments, stores, outputs
NOT_SOURCE = (".git", ".venv", "out", "mlruns", "mlartifacts", "ray_results", "*.db", "build", "*.egg-info", "__pycache__",
              ".pytest_cache", ".ruff_cache")


def test_a_wheel_installed_elsewhere_runs_the_packaged_quickstart_smoke_from_another_folder(tmp_path):
    source, wheels, site = tmp_path / "source", tmp_path / "wheels", tmp_path / "site"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)], check=True, timeout=300)
    [wheel] = wheels.glob("privsweep-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, timeout=300)
    shutil.rmtree(source)  # nothing may read the source tree from here on

    elsewhere, user_data = tmp_path / "elsewhere", tmp_path / "xdg"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PRIVSWEEP_HOME", "PYTHONPATH")}
    # the installed copy first on the path, ahead of the checkout's editable install
    env.update(PYTHONPATH=str(site), XDG_DATA_HOME=str(user_data), OMP_NUM_THREADS="1")

    def python(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=timeout)

    located = python("-c", "import sweeps, search_spaces, trainables.tracking as t; print(sweeps.__file__); "
                           "print(search_spaces.__file__); print(t.home())")
    assert located.returncode == 0, located.stderr
    sweeps_file, spaces_file, home = (Path(line) for line in located.stdout.split())
    assert sweeps_file.is_relative_to(site) and spaces_file.is_relative_to(site)
    assert home == (user_data / "privsweep").resolve()
    assert (home.stat().st_mode & 0o777) == 0o700

    spec = site / "sweeps" / "quickstart.yaml"  # the packaged spec, with a packaged search space by name
    result = python("-m", "sweeps", "run", str(spec), "--smoke", "--set", "search_space=noisy_arl", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(path.name for path in elsewhere.iterdir()) == []  # nothing written where it ran
    assert {"mlflow.db", "optuna.db", "mlartifacts", "ray_results", "out"} <= {path.name for path in home.iterdir()}
    client = tracking_client(f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("quickstart_noisy_arl/smoke")
    trials = [run for run in client.search_runs([experiment.experiment_id]) if run.data.tags.get("privsweep.role") == "trial"]
    assert len(trials) == 2 and all(run.info.status == "FINISHED" and "privacy/leak_acc" in run.data.metrics for run in trials)
