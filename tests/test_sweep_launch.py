"""The sweep platform end to end: real Ray Tune, Optuna and MLflow on tiny synthetic data."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from conftest import free_port, program_env
from fixture_data import write_smoke_dataset
from mlflow.tracking import MlflowClient
from pyarrow.fs import FileSelector

from sweeps.spec import load_spec
from trainables.schema import STARTS_TAG, parse_starts
from trainables.storage import Location
from trainables.tracking import tracking_client

REPO = Path(__file__).resolve().parent.parent

TINY_SPEC = {
    "name": "tiny",
    "method": "noisy_arl",
    "dataset": {"name": "synthetic", "task": "shape", "private": "color",
                "options": {"train_size": 320, "test_size": 96, "image_size": 16}},
    "model": {"backbone": "small_cnn", "split": 2},
    "train": {"epochs": 2, "batch_size": 64},
    "params": {"sigma": 0.5, "lambda": 0.01},
    "search_space": {"sigma": {"uniform": [0.1, 2.0]}},
    "search": {"sampler": "random", "num_samples": 4, "max_concurrent": 2, "seed": 0},
    "attacks": {"epochs": 1, "batch_size": 128, "gallery": 2, "whitebox": {"images": 8, "steps": 10, "selection_images": 8}},
}

# The grid sampler's order is fixed by its seed: under this one it proposes split 1, then 3,
# so the second trial is dominated (the test checks that some trial is screened).
SCREEN_GRID_SEED = 1


def write_spec(tmp_path: Path, name: str, **changes) -> Path:
    spec = json.loads(json.dumps(TINY_SPEC))
    spec["name"] = name
    for key, value in changes.items():
        spec[key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def sweeps(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweeps", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def client(home: Path) -> MlflowClient:
    """The store as a second privsweep command sees it: the tests poll it while a launch opens
    it, which crashed one of them on MLflow's table creation before tracking_client's lock."""
    return tracking_client(f"sqlite:///{home / 'mlflow.db'}")


def runs(home: Path, experiment: str, role: str):
    c = client(home)
    found = c.get_experiment_by_name(experiment)
    if found is None:
        return []
    return [r for r in c.search_runs([found.experiment_id], max_results=1000) if r.data.tags.get("privsweep.role") == role]


def study(home: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{home / 'optuna.db'}")


def launch_record(home: Path, experiment: str) -> dict:
    [path] = (home / "ray_results" / experiment).glob("*/launch.json")
    return json.loads(path.read_text())


def test_resume_after_sigkill_finishes_every_trial_once(home, tmp_path):
    spec = write_spec(tmp_path, "resume", search={"sampler": "random", "num_samples": 6, "max_concurrent": 2, "seed": 0})
    driver = subprocess.Popen([sys.executable, "-m", "sweeps", "run", str(spec)], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if len([r for r in runs(home, "resume", "trial") if r.info.status == "FINISHED"]) >= 2:
                break
            assert driver.poll() is None, driver.stderr.read()
            time.sleep(0.5)
        else:
            pytest.fail("no trial finished in time")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
        driver.wait()
    finished_before = {r.data.tags["privsweep.trial_id"] for r in runs(home, "resume", "trial") if r.info.status == "FINISHED"}
    assert 2 <= len(finished_before) < 6

    result = sweeps("run", str(spec), "--resume")
    assert result.returncode == 0, result.stderr

    children = runs(home, "resume", "trial")
    finished = [r for r in children if r.info.status == "FINISHED"]
    trial_ids = [r.data.tags["privsweep.trial_id"] for r in finished]
    assert len(finished) == 6 and len(set(trial_ids)) == 6  # exactly one finished child per trial
    # a trial the killed driver had started but its Tune snapshot had not yet recorded is never
    # resumed: the finished launch ends its run KILLED rather than leaving it RUNNING
    assert {r.info.status for r in children} <= {"FINISHED", "KILLED"}
    assert finished_before <= set(trial_ids)
    for run in finished:  # no trial trained twice: each epoch logged once
        steps = [m.step for m in client(home).get_metric_history(run.info.run_id, "train/task_loss")]
        assert sorted(steps) == [1, 2], (run.info.run_name, steps)
    parents = runs(home, "resume", "sweep")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"  # the parent run is reused
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    record = launch_record(home, "resume")
    assert record["status"] == "finished"
    same_study = study(home, record["study"])
    states = [t.state for t in same_study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 6
    assert optuna.trial.TrialState.RUNNING not in states  # one the killed driver asked and never told is failed
    assert same_study.metric_names == ["utility/acc", "privacy/leak_acc"]  # the dashboard's axis labels
    # No Tune checkpoint, so no snapshot can name one that was deleted (trainables.tune_trainable):
    # the trials' own state files carried the resume; each is removed once its run finished, and
    # the finished launch removes any a never-resumed trial left.
    assert not list((home / "ray_results").rglob("checkpoint_*"))
    assert [folder for folder in (home / "ray_results").rglob("trial_state") if folder.is_dir()]
    assert not list((home / "ray_results").rglob("trial_state/*.pt"))


def test_sigterm_ends_unfinished_runs_killed_and_resume_reopens_them(home, tmp_path, s3_storage):
    """SIGTERM to the driver alone (what `timeout` sends) stops the launch like Ctrl-C: no
    child run stays RUNNING, the parent is KILLED, the resume command is printed with how
    many planned trials finished; --resume then finishes the killed runs in place, each from
    the last epoch it had finished. The launch keeps its state behind an S3 URI
    (`$PRIVSWEEP_STORAGE`, trainables/storage.py), so the state went through the bucket."""
    epochs = 6
    spec = write_spec(tmp_path, "stopped", train={"epochs": epochs, "batch_size": 64},
                      search={"sampler": "random", "num_samples": 4, "max_concurrent": 2, "seed": 0})
    driver = subprocess.Popen([sys.executable, "-m", "sweeps", "run", str(spec)], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:  # a trial mid-training, started after one finished
            children = runs(home, "stopped", "trial")
            ended = [r.info.end_time for r in children if r.info.status == "FINISHED"]
            later = [r for r in children if ended and r.info.status == "RUNNING" and r.info.start_time > max(ended)]
            if any(1 <= len(epochs_logged(client(home), r)) < epochs for r in later):
                break
            assert driver.poll() is None, driver.stderr.read()
            time.sleep(0.2)
        else:
            pytest.fail("no trial was mid-training after another finished")
        driver.send_signal(signal.SIGTERM)
        stderr = driver.communicate(timeout=120)[1]
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert f"python -m sweeps run {spec} --resume" in stderr
    assert "of 4 planned trial(s) finished" in stderr
    children = runs(home, "stopped", "trial")
    statuses = [r.info.status for r in children]
    assert "RUNNING" not in statuses and "KILLED" in statuses, statuses
    killed = {r.info.run_id for r in children if r.info.status == "KILLED"}
    midway = {r.info.run_id for r in children if r.info.run_id in killed and 1 <= len(epochs_logged(client(home), r)) < epochs}
    assert midway
    logged_at_stop = {r.info.run_id: len(epochs_logged(client(home), r)) for r in children}
    [parent] = runs(home, "stopped", "sweep")
    assert parent.info.status == "KILLED"
    assert parent.data.tags["privsweep.planned_runs"] == "4"
    # a stopped launch still ends with the front of what finished
    assert parent.data.metrics["front/trials"] == statuses.count("FINISHED") >= 1
    assert "pareto.png" in {a.path for a in client(home).list_artifacts(parent.info.run_id)}
    assert "is KILLED" in (home / "out" / "stopped" / "summary.md").read_text()
    [launch] = Location(s3_storage, ("stopped",)).children(folders=True)
    assert {state.name for state in (launch / "trial_state").children(".pt")}  # the stopped trials' epochs

    result = sweeps("run", str(spec), "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 of 4 planned trial(s) finished" in result.stderr
    children = runs(home, "stopped", "trial")
    assert len(children) == 4 and all(r.info.status == "FINISHED" for r in children)
    assert killed <= {r.info.run_id for r in children}  # reopened in place, not duplicated
    for run in children:  # the stopped ones went on from their state in the bucket: no epoch twice
        assert epochs_logged(client(home), run) == list(range(1, epochs + 1)), run.info.run_name
        starts = [start.epoch for start in parse_starts(run.data.tags[STARTS_TAG])]
        if run.info.run_id in killed:  # from the epoch its state file held: the last logged, or one saved, not yet logged
            assert starts[0] == 0 and logged_at_stop[run.info.run_id] <= starts[1] <= logged_at_stop[run.info.run_id] + 1
            assert len(starts) == 2, starts
        else:
            assert starts == [0], (run.info.run_name, starts)
    [parent] = runs(home, "stopped", "sweep")
    assert parent.info.status == "FINISHED"
    assert json.loads((launch / "launch.json").read())["status"] == "finished"
    stored = [info.path for info in launch.fs.get_file_info(FileSelector(launch.path, recursive=True))]
    assert any(Path(path).name.startswith("experiment_state") for path in stored)  # Tune's own state, there too
    assert not [path for path in stored if path.endswith(".pt")]  # finished trials leave no state
    assert not (home / "ray_results").exists()


def epochs_logged(store: MlflowClient, run) -> list[int]:
    """The epochs a trial run logged, once per logging (an epoch logged twice appears twice)."""
    return sorted(m.step for m in store.get_metric_history(run.info.run_id, "train/task_loss"))


def test_a_configuration_proposed_again_is_not_trained_again(home, tmp_path):
    """The searcher proposes the one configuration three times: it trains once (one child
    run), and the other two trials report that run's results to the searcher."""
    spec = write_spec(tmp_path, "repeated", search_space={"sigma": {"choice": [0.5]}},
                      search={"sampler": "random", "num_samples": 3, "max_concurrent": 1, "seed": 0})
    result = sweeps("run", str(spec))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 of 3 planned trial(s) finished" in result.stderr
    children = runs(home, "repeated", "trial")
    assert len(children) == 1 and children[0].info.status == "FINISHED"
    trials = study(home, launch_record(home, "repeated")["study"]).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    told = children[0].data.metrics
    assert all(t.values == [told["utility/acc"], told["privacy/leak_acc"]] for t in trials)


def test_a_screened_trial_is_pruned_in_optuna_has_no_final_keys_and_is_on_no_front(home, tmp_path):
    """With `search.screen` on and objectives that the split alone decides (the client's GFLOPs
    and MB grow with it), every trial whose best case an earlier, fully attacked trial
    dominates is screened out: PRUNED in Optuna, its screened values under `screen/` only,
    never a row of the analysis. The others run the full suite and are COMPLETE."""
    from analysis.runs import launch_progress, load_runs

    objectives = [{"metric": "client/gflops", "mode": "min"}, {"metric": "client/params_mb", "mode": "min"}]
    spec = write_spec(tmp_path, "screened", objectives=objectives, search_space={"model.split": {"choice": [1, 3]}},
                      search={"sampler": "grid", "num_samples": 2, "max_concurrent": 1, "seed": SCREEN_GRID_SEED, "screen": 0.5},
                      attacks={**TINY_SPEC["attacks"], "epochs": 2})  # the screening attack: 1 epoch, 5 white-box steps
    result = sweeps("run", str(spec))
    assert result.returncode == 0, result.stderr[-3000:]
    children = sorted(runs(home, "screened", "trial"), key=lambda r: r.info.start_time)
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    attacked: list[tuple[float, float]] = []
    expected, screened = [], []
    for run in children:
        metrics = run.data.metrics
        is_screened = run.data.tags.get("privsweep.screened") == "true"
        screened.append(is_screened)
        if is_screened:
            point = (metrics["screen/client/gflops"], metrics["screen/client/params_mb"])
            assert not [key for key in metrics if key.startswith(("utility/", "privacy/", "recon/", "client/"))]
            assert {"screen/privacy/leak_acc", "screen/recon/ssim", "screen/privacy/leak_acc:ci95_lo"} <= set(metrics)
        else:
            point = (metrics["client/gflops"], metrics["client/params_mb"])
            assert {"privacy/leak_acc", "recon/ssim"} <= set(metrics)
        expected.append(any(a[0] <= point[0] and a[1] <= point[1] and a != point for a in attacked))
        if not is_screened:
            attacked.append(point)
    assert screened == expected and any(screened)  # screened exactly when dominated by the front so far
    trials = study(home, launch_record(home, "screened")["study"]).trials
    states = {str(t.params["model.split"]): t.state for t in trials}
    splits = [r.data.params["model.split"] for r in children]
    assert [states[s] for s in splits] == [optuna.trial.TrialState.PRUNED if s else optuna.trial.TrialState.COMPLETE for s in screened]
    table = load_runs("screened", f"sqlite:///{home / 'mlflow.db'}")
    assert set(table.column("run_id").to_pylist()) == {r.info.run_id for r, s in zip(children, screened, strict=True) if not s}
    [progress] = launch_progress("screened", f"sqlite:///{home / 'mlflow.db'}")
    assert progress.screened_runs == sum(screened) and progress.finished_runs == 2


def test_failing_trial_is_failed_everywhere_and_the_others_finish(home, tmp_path):
    # alexnet collapses 16x16 images: a bad hyperparameter combination found only at trial time
    # (split 0 exists for every backbone, so the spec itself validates).
    spec = write_spec(tmp_path, "failing", search_space={"model.backbone": {"choice": ["small_cnn", "alexnet"]}},
                      model={"backbone": "small_cnn", "split": 0},
                      search={"sampler": "grid", "num_samples": 2, "max_concurrent": 2, "seed": 0})
    result = sweeps("run", str(spec))
    assert result.returncode == 0, result.stderr
    assert "1 failed" in result.stderr
    children = {r.data.params["model.backbone"]: r for r in runs(home, "failing", "trial")}
    assert children["small_cnn"].info.status == "FINISHED"
    assert children["alexnet"].info.status == "FAILED"
    assert "does not fit" in children["alexnet"].data.tags["privsweep.error"]
    trials = study(home, launch_record(home, "failing")["study"]).trials
    by_backbone = {t.params["model.backbone"]: t.state for t in trials}
    assert by_backbone == {"small_cnn": optuna.trial.TrialState.COMPLETE, "alexnet": optuna.trial.TrialState.FAIL}


def test_mlflow_layout_of_a_launch(home, tmp_path):
    spec = write_spec(tmp_path, "layout")
    result = sweeps("run", str(spec), "--num-samples", "2")
    assert result.returncode == 0, result.stderr
    [parent] = runs(home, "layout", "sweep")
    children = runs(home, "layout", "trial")
    assert len(children) == 2
    assert json.loads(parent.data.tags["privsweep.objectives"])[0] == {"metric": "utility/acc", "mode": "max"}
    # MLflow 3's model-training view, not its GenAI one; the parent's description is the front
    experiment = client(home).get_experiment_by_name("layout")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    # the saved runs-table view the printed URL opens: the objectives and their intervals as columns
    view = json.loads(experiment.tags["mlflow.sharedViewState.privsweep-objectives"])
    state = json.loads(view["state"])
    assert {"metrics.`utility/acc`", "metrics.`privacy/leak_acc:ci95_hi`", "tags.`privsweep.pareto`"} <= set(state["selectedColumns"])
    assert state["orderByKey"] == "metrics.`privacy/leak_acc`" and state["orderByAsc"] is True
    assert f"#/experiments/{experiment.experiment_id}/runs?viewStateShareKey=privsweep-objectives" in result.stderr
    note = parent.data.tags["mlflow.note.content"]
    assert "| method |" in note and "python -m analysis pareto --experiment layout" in note
    uri = f"sqlite:///{home / 'mlflow.db'}"
    assert f"python -m sweeps ui --tracking-uri {uri}" in note and f"python -m sweeps ui --tracking-uri {uri}" in result.stderr
    # the launch ends with its front: files in the parent run and in <home>/out/<experiment>,
    # the parent's own numbers, and the front's runs tagged
    artifacts = {a.path for a in client(home).list_artifacts(parent.info.run_id)}
    assert {"pareto.png", "pareto.pdf", "hypervolume.png", "hypervolume.pdf", "summary.md", "front.csv"} <= artifacts
    assert (home / "out" / "layout" / "pareto.pdf").read_bytes()[:5] == b"%PDF-"
    assert "--resume" not in (home / "out" / "layout" / "summary.md").read_text()  # the launch finished: nothing to continue
    front_rows = (home / "out" / "layout" / "front.csv").read_text().strip().splitlines()[1:]
    assert parent.data.metrics["front/trials"] == 2 and parent.data.metrics["front/size"] == len(front_rows) >= 1
    low, volume, high = (parent.data.metrics[f"front/hypervolume{end}"] for end in (":ci95_lo", "", ":ci95_hi"))
    assert 0 < volume and low < high
    tagged = [r for r in children if r.data.tags.get("privsweep.pareto") == "true"]
    assert len(tagged) == len(front_rows)
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["privsweep.method"] == "noisy_arl"
        assert child.info.run_name.startswith("σ=") and "noisy_arl" not in child.info.run_name  # swept values only: the experiment names the method
        assert float(child.data.params["params.sigma"]) == pytest.approx(float(child.info.run_name.split("σ=")[1].split()[0]), rel=1e-2)
        for key in ("utility/acc", "privacy/leak_acc", "recon/ssim", "client/gflops", "time/train_s"):
            assert key in child.data.metrics
        artifacts = {a.path for a in client(home).list_artifacts(child.info.run_id)}
        assert {"reconstructions.png", "config.yaml", "client.pt", "front_so_far.png", "summary.md"} <= artifacts
        # a final value at step 0 (the UI draws a bar with it), the curves at their epochs (lines)
        assert [m.step for m in client(home).get_metric_history(child.info.run_id, "utility/acc")] == [0]
        epochs = int(child.data.metrics["train/epochs_run"])
        steps = [m.step for m in client(home).get_metric_history(child.info.run_id, "train/task_loss")]
        assert sorted(steps) == list(range(1, epochs + 1))
        note = child.data.tags["mlflow.note.content"]  # the run's description: its numbers at a glance
        leak = child.data.metrics["privacy/leak_acc"]
        assert f"| `privacy/leak_acc` | {leak:.3f} | [{child.data.metrics['privacy/leak_acc:ci95_lo']:.3f}," in note
        assert f"Defense: {epochs} epochs" in note and "Learned attackers:" in note
    second = sweeps("run", str(spec), "--num-samples", "1")  # without --resume: a new, separate launch
    assert second.returncode == 0, second.stderr
    assert len(runs(home, "layout", "sweep")) == 2
    assert len(list((home / "ray_results" / "layout").glob("*/launch.json"))) == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"objectives": [{"metric": "utility/accuracy", "mode": "max"}]}, "objectives[0].metric"),
        ({"resources": {"cpu": 1, "gpu": 1}}, "resources.gpu"),
        ({"search": {"sampler": "bayes", "num_samples": 2}}, "search.sampler"),
        ({"search_space": {"sigma": {"uniform": [2.0, 0.1]}}}, "search_space.params.sigma"),
    ],
)
def test_bad_launch_input_exits_2_before_any_trial(home, tmp_path, change, field):
    spec = write_spec(tmp_path, "bad", **change)
    result = sweeps("run", str(spec))
    assert result.returncode == 2, result.stderr
    assert field in result.stderr and "Traceback" not in result.stderr
    assert not (home / "ray_results").exists()
    assert runs(home, "bad", "trial") == []


def test_unreachable_tracking_server_exits_2(home, tmp_path):
    spec = write_spec(tmp_path, "remote", tracking={"uri": f"http://127.0.0.1:{free_port()}"})
    result = sweeps("run", str(spec))
    assert result.returncode == 2, result.stderr
    assert "tracking.uri" in result.stderr and "Traceback" not in result.stderr
    assert not (home / "ray_results").exists()


def test_a_sqlite_store_in_a_missing_folder_exits_2_and_creates_nothing(home, tmp_path):
    missing = tmp_path / "typo" / "dir"
    spec = write_spec(tmp_path, "mistyped", tracking={"uri": f"sqlite:///{missing / 'mlflow.db'}"})
    result = sweeps("run", str(spec))
    assert result.returncode == 2, result.stderr
    assert "tracking.uri" in result.stderr and str(missing) in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "typo").exists()
    assert not (home / "ray_results").exists()



def serve_then_stop(command: list[str], banner: str, port: int, page: str = "") -> None:
    """Start a `sweeps` server, wait for its banner, fetch its page, SIGTERM it; then the port is free."""
    server = subprocess.Popen([sys.executable, "-m", "sweeps", *command, "--port", str(port)], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        for line in server.stderr:
            if f"{banner} on http://127.0.0.1:{port}" in line:
                break
            assert time.monotonic() < deadline and server.poll() is None, line
        else:
            pytest.fail(f"the server ended before it answered (exit {server.wait()})")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=5) as answer:  # answering when printed
            assert answer.status == 200
        server.send_signal(signal.SIGTERM)  # to the command alone, not its group
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    with socket.socket() as s:  # nothing listens there any more (REUSEADDR: the closed connection's TIME_WAIT is fine)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()


def test_sweeps_ui_prints_its_url_once_it_answers_and_frees_the_port_on_sigterm(home):
    serve_then_stop(["ui"], "MLflow UI", free_port())


def test_sweeps_ui_opens_the_store_it_is_given(home, tmp_path):
    store = tmp_path / "elsewhere" / "m.db"
    missing = sweeps("ui", "--tracking-uri", f"sqlite:///{store}", "--port", str(free_port()))
    assert missing.returncode == 2 and str(store) in missing.stderr and "Traceback" not in missing.stderr
    store.parent.mkdir()
    uri = f"sqlite:///{store}"
    tracking_client(uri).create_experiment("only_here", artifact_location=(tmp_path / "artifacts").as_uri())
    port = free_port()
    serve_then_stop(["ui", "--tracking-uri", uri], "MLflow UI", port)
    assert not (home / "mlflow.db").exists()  # the default store was never opened


def test_sweeps_dashboard_serves_a_study_and_frees_the_port_on_sigterm(home):
    missing = sweeps("dashboard", "--port", str(free_port()))
    assert missing.returncode == 2 and "optuna.db" in missing.stderr and "Traceback" not in missing.stderr
    study = optuna.create_study(study_name="sweep/launch", storage=f"sqlite:///{home / 'optuna.db'}",
                                directions=["maximize", "minimize"])
    study.optimize(lambda trial: (trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)), n_trials=3)
    serve_then_stop(["dashboard"], "Optuna Dashboard", free_port(), "/api/studies")


def test_smoke_fits_a_gpu_spec_to_this_machine_unless_set_explicitly():
    spec = load_spec(REPO / "sweeps" / "noisy_arl.yaml", smoke=True)
    assert spec.resources.cpu == 1
    assert spec.resources.gpu == (0.25 if torch.cuda.is_available() else 0)
    pinned = load_spec(REPO / "sweeps" / "noisy_arl.yaml", ["resources.gpu=0.5"], smoke=True)
    assert pinned.resources.gpu == 0.5  # an explicit --set still wins (and is then checked at launch)
    celeba = load_spec(REPO / "sweeps" / "dp_laplace.yaml", smoke=True)  # 178 px in the spec
    assert celeba.dataset.options["image_size"] == 32
    assert load_spec(REPO / "sweeps" / "adv_recon.yaml", smoke=True).dataset.options["image_size"] == 32  # loader default 64
    assert load_spec(REPO / "sweeps" / "disco.yaml", smoke=True).attacks.release_ratios == [0.2]  # of 0.2, 0.5, 0.8


def test_smoke_experiment_is_apart_even_from_an_explicit_experiment():
    assert load_spec(REPO / "sweeps" / "noisy_arl.yaml").experiment == "noisy_arl_cifar10"
    assert load_spec(REPO / "sweeps" / "noisy_arl.yaml", smoke=True).experiment == "noisy_arl_cifar10/smoke"
    named = load_spec(REPO / "sweeps" / "noisy_arl.yaml", ["tracking.experiment=mine"], smoke=True)
    assert named.experiment == "mine/smoke"


SHIPPED_SPECS = sorted(p.name for p in (REPO / "sweeps").glob("*.yaml"))


@pytest.fixture(scope="module")
def shipped_smoke(tmp_path_factory) -> dict:
    """`run --smoke` of every shipped spec into one home, beside a synthetic "real" sweep of each
    spec's name, as ten launches of one process (tests/smoke_launches.py). Returns per spec: its
    raw spec, the synthetic sweep, the launch's exit code and stderr, and the home."""
    from analysis.synthetic import write_synthetic_sweep

    folder = tmp_path_factory.mktemp("shipped")
    home = folder / "home"
    home.mkdir()
    plan, shipped, dataset_args = [], {}, {}
    for spec in SHIPPED_SPECS:
        raw = yaml.safe_load((REPO / "sweeps" / spec).read_text())
        real = write_synthetic_sweep(f"sqlite:///{home / 'mlflow.db'}", raw["name"])
        name = raw["dataset"]["name"]
        if name not in dataset_args:  # datasets that cannot be downloaded here: a small folder in their real format
            root = folder / "datasets" / name
            dataset_args[name] = ["--set", f"dataset.root={root}"] if write_smoke_dataset(name, root) else []
        plan.append({"spec": f"sweeps/{spec}", "args": dataset_args[name]})
        shipped[spec] = {"raw": raw, "real": real, "home": home}
    (folder / "plan.json").write_text(json.dumps(plan))
    env = program_env({"PRIVSWEEP_HOME": str(home), "PRIVSWEEP_DATA": str(folder / "data")})
    with open(folder / "stderr.log", "w") as log:
        subprocess.run([sys.executable, "tests/smoke_launches.py", str(folder / "plan.json"), str(folder / "results.json")],
                       cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log, timeout=1800)
    stderr = (folder / "stderr.log").read_bytes()
    results = json.loads((folder / "results.json").read_text()) if (folder / "results.json").exists() else []
    for outcome in results:
        start, end = outcome["stderr"]
        shipped[Path(outcome["spec"]).name].update(code=outcome["code"], stderr=stderr[start:end].decode(errors="replace"))
    for spec in shipped.values():  # a launch the process never reached: the process's own stderr says why
        spec.setdefault("code", None)
        spec.setdefault("stderr", stderr.decode(errors="replace"))
    return shipped


@pytest.mark.parametrize("spec", SHIPPED_SPECS)
def test_every_shipped_spec_passes_run_smoke_in_its_own_experiment(shipped_smoke, spec):
    """Every shipped spec runs with --smoke, and its tiny trials (which look far more private
    than real ones) land in `<name>/smoke`: the real experiment's front stays as it was."""
    from analysis import load_runs, pareto_mask
    from analysis.synthetic import front_run_ids

    shipped = shipped_smoke[spec]
    raw, real, home = shipped["raw"], shipped["real"], shipped["home"]
    assert shipped["code"] == 0, shipped["stderr"][-3000:]
    assert len([r for r in runs(home, raw["name"] + "/smoke", "trial") if r.info.status == "FINISHED"]) == 2
    table = load_runs(raw["name"], f"sqlite:///{home / 'mlflow.db'}")
    front = set(table.filter(pareto_mask(table)).column("run_id").to_pylist())
    assert front == front_run_ids(real)
    assert len(runs(home, raw["name"], "trial")) == len(real["trials"])


def test_replicates_are_sibling_runs_whose_mean_the_searcher_is_told_and_confirm_adds_seeds(home, tmp_path):
    """search.replicates: 2 -> each configuration has two child runs (train.seed 0 and 1)
    under one config id, and Optuna got their mean. `confirm --seeds 3` adds the third seed
    of each configuration under the same id; run again it runs nothing; `--front-only`
    plans only the configurations on the front of the seed means; a spec the sweep did
    not run is an input error."""
    spec = write_spec(tmp_path, "replicated", search_space={"sigma": {"choice": [0.3, 1.5]}},
                      search={"sampler": "grid", "num_samples": 2, "max_concurrent": 2, "seed": 0, "replicates": 2})
    result = sweeps("run", str(spec))
    assert result.returncode == 0, result.stderr
    children = runs(home, "replicated", "trial")
    assert len(children) == 4 and all(r.info.status == "FINISHED" for r in children)
    assert {r.data.tags["privsweep.device"] for r in children} == {"cpu"}  # where each trial ran (no GPU here)
    assert all([start.epoch for start in parse_starts(r.data.tags[STARTS_TAG])] == [0] for r in children)  # one start each, from scratch
    by_config: dict[str, list] = {}
    for run in children:
        by_config.setdefault(run.data.tags["privsweep.config_id"], []).append(run)
    assert len(by_config) == 2
    trials = study(home, launch_record(home, "replicated")["study"]).trials
    for siblings in by_config.values():
        assert sorted(int(r.data.params["train.seed"]) for r in siblings) == [0, 1]
        assert sorted(r.data.tags["privsweep.replicate"] for r in siblings) == ["0", "1"]
        assert len({r.data.params["params.sigma"] for r in siblings}) == 1
        assert siblings[0].data.metrics["recon/ssim"] != siblings[1].data.metrics["recon/ssim"]  # the seed moved the result
        mean = [sum(r.data.metrics[m] for r in siblings) / 2 for m in ("utility/acc", "privacy/leak_acc")]
        sigma = float(siblings[0].data.params["params.sigma"])
        [told] = [t for t in trials if t.params["params.sigma"] == sigma]
        assert told.values == pytest.approx(mean)

    confirmed = sweeps("confirm", str(spec), "--seeds", "3")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "stay on the front of the seed means" in confirmed.stderr
    children = runs(home, "replicated", "trial")
    assert len(children) == 6
    seeds = {}
    for run in children:
        seeds.setdefault(run.data.tags["privsweep.config_id"], set()).add(int(run.data.params["train.seed"]))
    assert set(seeds) == set(by_config) and all(found == {0, 1, 2} for found in seeds.values())
    kinds = sorted(r.data.tags.get("privsweep.kind") for r in runs(home, "replicated", "sweep"))
    assert kinds == ["confirm", "sweep"]

    again = sweeps("confirm", str(spec), "--seeds", "3")
    assert again.returncode == 0, again.stderr
    assert "already has 3 finished seed(s)" in again.stderr
    assert len(runs(home, "replicated", "trial")) == 6

    from analysis import load_runs, pareto_mask
    from analysis.replicates import group_replicates
    from sweeps.confirm import plan

    uri = f"sqlite:///{home / 'mlflow.db'}"
    grouped = group_replicates(load_runs("replicated", uri))
    on_front = pareto_mask(grouped, ["utility/acc:max", "privacy/leak_acc:min"])
    front = {grouped.column("config_id")[i].as_py() for i in range(grouped.num_rows) if on_front[i]}
    jobs = plan(load_spec(spec), uri, seeds=4, front_only=True)
    assert all(job["replicates"] == [3] for job in jobs)
    ids = {run.data.tags["privsweep.config_id"]: json.loads(run.data.tags["privsweep.assignment"]) for run in children}
    assert sorted(json.dumps(job["assignment"]) for job in jobs) == sorted(json.dumps(ids[c]) for c in front)

    drift = sweeps("confirm", str(spec), "--seeds", "4", "--set", "attacks.epochs=2")
    assert drift.returncode == 2
    assert "differ from those the sweep ran with" in drift.stderr and "Traceback" not in drift.stderr
    missing = sweeps("confirm", str(write_spec(tmp_path, "never_ran")), "--seeds", "2")
    assert missing.returncode == 2 and "run the sweep first" in missing.stderr
    assert len(runs(home, "replicated", "trial")) == 6


def test_confirm_controls_plans_each_disco_configurations_random_pruning_twin_once():
    """DISCO at two rho and one R share one control; the control keeps the split, takes the
    R (DISCO's default 0.6 when the assignment did not sample it) and drops DISCO's other
    knobs; seeds already run are not planned again; a method without a control has none."""
    from sweeps.confirm import control_assignment, control_jobs
    from trainables.tracking import configuration_id

    spec = load_spec(REPO / "sweeps" / "compare_fashion_mnist.yaml")
    disco = [{"method": "disco", "params.rho": rho, "params.pruning_ratio": 0.4, "model.split": 3} for rho in (0.1, 10.0)]
    control = {"method": "random_pruning", "model.split": 3, "params.pruning_ratio": 0.4}
    assert control_assignment(spec, disco[0]) == control
    assert control_assignment(spec, {"method": "disco", "model.split": 1})["params.pruning_ratio"] == 0.6
    assert control_assignment(spec, {"method": "noisy_arl", "params.sigma": 1.0}) is None
    control_id = configuration_id(spec.trial_config(control).model_dump(mode="json", by_alias=True))
    assert control_jobs(spec, disco, {}, seeds=2) == [{"assignment": control, "replicates": [0, 1]}]
    done = {control_id: {"assignment": control, "replicates": {0}}}
    assert control_jobs(spec, disco, done, seeds=2) == [{"assignment": control, "replicates": [1]}]
    assert control_jobs(spec, disco, done, seeds=1) == []
