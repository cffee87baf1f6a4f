"""`python -m sweeps confirm SPEC [--seeds k] [--front-only] [--resume]`: more seeds for the
configurations a sweep has run, into the same experiment.

A front drawn through single-seed trials picks the lucky draws (the winner's curse). This
re-runs each finished configuration of the spec's experiment (with `--front-only`, each one
on the front of the current seed means) until it has `--seeds` replicates (replicate r runs
with train.seed + r, as `search.replicates` does), under the same `privsweep.config_id`, as
a Tune launch of its own kind: `--resume` continues it as `run --resume` continues a sweep,
and running `confirm` again only runs the replicates still missing. At the end it prints
each single-seed front configuration's value beside its mean over the seeds, and how many
stay on the front of the means (`analysis.replicates.confirmation_table`).

`--controls` also runs, beside every chosen configuration of a method that declares a
same-budget control (`Method.control`: DISCO -> `random_pruning` at the same pruning ratio),
the control at the same shared params and otherwise the same assignment (split, data,
schedule), under `--seeds` seeds, so the summary can put each pair side by side
(`analysis.controls`). Controls shared by several configurations (DISCO at two rho, one R)
run once.

The spec and `--set` overrides must be those the sweep ran with: a configuration whose
config id the spec no longer reproduces is an input error, never a silent new configuration.
"""

from __future__ import annotations

import contextlib
import json
import sys

from sweeps.spec import SweepSpec
from trainables.errors import InputError
from trainables.schema import (
    ASSIGNMENT_TAG,
    CONFIG_ID_TAG,
    REPLICATE_TAG,
    ROLE_TAG,
    SCREENED_TAG,
    tag_is,
)
from trainables.tracking import configuration_id, search_all_runs, tracking_client, with_retries


def finished_configurations(spec: SweepSpec, uri: str) -> tuple[dict[str, dict], int]:
    """{config id: {"assignment", "replicates" (done)}} of the experiment's finished
    trial runs, and the number of finished runs without a config id (from before replicates)."""
    client = tracking_client(uri)
    experiment = with_retries(lambda: client.get_experiment_by_name(spec.experiment))
    if experiment is None:
        raise InputError(f"confirm: experiment {spec.experiment!r} has no runs in {uri}; run the sweep first "
                         f"(python -m sweeps run SPEC) with the same spec and --set overrides.")
    runs = search_all_runs(client, [experiment.experiment_id], f"{tag_is(ROLE_TAG, 'trial')} and attributes.status = 'FINISHED'")
    configurations: dict[str, dict] = {}
    untagged = 0
    for run in runs:
        tags = run.data.tags
        if tags.get(SCREENED_TAG) == "true":  # dominated after its screening attack: nothing to confirm
            continue
        config_id, assignment = tags.get(CONFIG_ID_TAG), tags.get(ASSIGNMENT_TAG)
        if not config_id or assignment is None:
            untagged += 1
            continue
        entry = configurations.setdefault(config_id, {"assignment": json.loads(assignment), "replicates": set()})
        entry["replicates"].add(int(tags.get(REPLICATE_TAG, 0)))
    return configurations, untagged


def front_configurations(spec: SweepSpec, uri: str) -> set[str]:
    """The config ids on the front of the seed means (the spec's objectives)."""
    from analysis import load_runs, pareto_mask

    grouped = load_runs(spec.experiment, uri, group=True)
    front = pareto_mask(grouped, [(o.metric, o.mode) for o in spec.objectives])
    ids = grouped.column("config_id").to_pylist()
    return {ids[row] for row in range(grouped.num_rows) if front[row] and ids[row]}


def control_assignment(spec: SweepSpec, assignment: dict) -> dict | None:
    """The assignment of the configuration's same-budget control, or None when its method has none."""
    from trainables.methods import method_class
    from trainables.trial import validate_params

    config = spec.trial_config(assignment)
    control = method_class(config.method).control
    if control is None:
        return None
    params = validate_params(config.method, config.params)
    shared = {path: getattr(params, name) for path, name in zip(control.shared_paths, control.shared, strict=True)}
    kept = {key: value for key, value in assignment.items() if not key.startswith("params.") and key != "method"}
    return {"method": control.method, **kept, **shared}


def plan(spec: SweepSpec, uri: str, seeds: int, front_only: bool, controls: bool = False) -> list[dict]:
    """The jobs still to run: {"assignment", "replicates" (missing indices)} per configuration
    (and per same-budget control with `controls`)."""
    configurations, untagged = finished_configurations(spec, uri)
    if untagged:
        print(f"confirm: {untagged} finished run(s) have no privsweep.config_id (they predate seed replicates) "
              "and cannot be confirmed.", file=sys.stderr)
    if not configurations:
        raise InputError(f"confirm: experiment {spec.experiment!r} has no finished trial with a configuration id; "
                         "run the sweep (python -m sweeps run SPEC) first.")
    chosen = front_configurations(spec, uri) & set(configurations) if front_only else set(configurations)
    jobs = []
    for config_id in sorted(chosen):
        entry = configurations[config_id]
        reproduced = configuration_id(spec.trial_config(entry["assignment"]).model_dump(mode="json", by_alias=True))
        if reproduced != config_id:
            raise InputError(
                f"confirm: configuration {config_id} ({entry['assignment']}) gives config id {reproduced} under this spec: "
                "the spec or its --set overrides differ from those the sweep ran with. Pass the same spec and overrides."
            )
        missing = sorted(set(range(seeds)) - entry["replicates"])
        if missing:
            jobs.append({"assignment": entry["assignment"], "replicates": missing})
    if controls:
        jobs += control_jobs(spec, [configurations[c]["assignment"] for c in sorted(chosen)], configurations, seeds)
    return jobs


def control_jobs(spec: SweepSpec, assignments: list[dict], configurations: dict[str, dict], seeds: int) -> list[dict]:
    """The control runs still missing for these configurations' assignments, one job per control."""
    jobs: dict[str, dict] = {}
    for assignment in assignments:
        control = control_assignment(spec, assignment)
        if control is None:
            continue
        config_id = configuration_id(spec.trial_config(control).model_dump(mode="json", by_alias=True))
        done = configurations.get(config_id, {}).get("replicates", set())
        missing = sorted(set(range(seeds)) - done)
        if missing and config_id not in jobs:
            jobs[config_id] = {"assignment": control, "replicates": missing}
    return list(jobs.values())


def print_confirmation(spec: SweepSpec, uri: str) -> None:
    from analysis import load_runs
    from analysis.replicates import confirmation_table

    text, _, _ = confirmation_table(load_runs(spec.experiment, uri), [(o.metric, o.mode) for o in spec.objectives])
    print(text, file=sys.stderr)


def confirm(args) -> int:
    from ray import tune

    from sweeps.launcher import (
        Launch,
        check_launchable,
        check_same_configuration,
        driver_lock,
        init_ray,
        load_sweep_data,
        new_launch,
        restored_tuner,
        resume_command,
        run_launch,
        trainable_of,
        tune_run_config,
    )
    from sweeps.spec import load_spec
    from sweeps.tracking import tracking_uri
    from trainables.tune_trainable import run_confirm_trial

    spec = load_spec(args.spec, args.set, args.smoke)
    check_launchable(spec)
    uri = tracking_uri(spec)
    with contextlib.ExitStack() as held:
        if args.resume:
            current = Launch.latest_unfinished(spec.experiment, kind="confirm")
            check_same_configuration(current, spec)
            held.enter_context(driver_lock(current))
        else:
            jobs = plan(spec, uri, args.seeds, args.front_only, args.controls)
            if not jobs:
                print(f"confirm: every chosen configuration already has {args.seeds} finished seed(s).", file=sys.stderr)
                print_confirmation(spec, uri)
                return 0
        dataset = load_sweep_data(spec)
        init_ray(spec)
        if args.resume:
            tuner = restored_tuner(current, trainable_of(run_confirm_trial, spec, current, dataset))
            if tuner is None:
                raise InputError("confirm --resume: Tune saved nothing to resume in the last confirm launch; run confirm without --resume.")
            current.parent_run.reopen()
        else:
            runs = sum(len(job["replicates"]) for job in jobs)
            current = new_launch(spec, len(jobs), runs, kind="confirm")
            held.enter_context(driver_lock(current))
            print(f"confirm launch {current.launch}: {len(jobs)} configuration(s), {runs} new seed run(s), "
                  f"{spec.search.max_concurrent} at a time", file=sys.stderr)
            tuner = tune.Tuner(
                trainable_of(run_confirm_trial, spec, current, dataset),
                param_space={"job": tune.grid_search(jobs)},
                tune_config=tune.TuneConfig(max_concurrent_trials=spec.search.max_concurrent, reuse_actors=True),
                run_config=tune_run_config(spec, current, len(jobs)),
            )
        code = run_launch(tuner, spec, current, resume_command(args))
    if code == 0:
        print_confirmation(spec, uri)
    return code
