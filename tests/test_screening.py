"""Safe attack-budget pruning (`trainables.screening`): the decision, the budget, and that
screening never changes a fully attacked trial's numbers. The end-to-end sweep (a screened
trial is never COMPLETE, has no final keys and is on no front) is in test_sweep_launch.py."""

from __future__ import annotations

import math
import re

import pytest
import torch
from conftest import REPO, tiny_config
from mlflow.tracking import MlflowClient

from trainables.schema import CONFIG_ID_TAG, LAUNCH_TAG, ROLE_TAG, SCREENED_TAG
from trainables.screening import (
    best_case,
    dominates,
    is_dominated,
    is_screened,
    launch_front,
    preserved_rng,
    screened_metrics,
    screening_budget,
)
from trainables.trial import Trial

OBJECTIVES = [("utility/acc", "max"), ("privacy/leak_acc", "min")]


def test_the_screening_budget_scales_the_epochs_cap_and_the_whitebox_steps_and_keeps_the_rest():
    attacks = tiny_config(attacks__epochs=30, attacks__whitebox={"steps": 200}, attacks__reconstruction=["mirror", "whitebox"]).attacks
    screened = screening_budget(attacks, 0.2)
    assert (screened.epochs, screened.whitebox.steps) == (6, 40)
    # each selected attacker scales its own budget: without the white-box its steps are left alone
    assert screening_budget(attacks.model_copy(update={"reconstruction": ["mirror"]}), 0.2).whitebox.steps == 200
    assert screened.model_dump(exclude={"epochs", "whitebox"}) == attacks.model_dump(exclude={"epochs", "whitebox"})
    assert screened.whitebox.model_dump(exclude={"steps"}) == attacks.whitebox.model_dump(exclude={"steps"})
    assert (screening_budget(attacks, 0.01).epochs, screening_budget(attacks, 0.001).whitebox.steps) == (1, 1)


def test_the_best_case_takes_the_favourable_end_of_each_interval_or_the_value_without_one():
    metrics = {"utility/acc": 0.8, "utility/acc:ci95_lo": 0.78, "utility/acc:ci95_hi": 0.83,
               "privacy/leak_acc": 0.5, "privacy/leak_acc:ci95_lo": 0.46, "privacy/leak_acc:ci95_hi": 0.55,
               "client/gflops": 0.01}
    assert best_case(metrics, OBJECTIVES) == [0.83, 0.46]
    assert best_case(metrics, [("client/gflops", "min"), ("recon/ssim", "min")])[0] == 0.01
    assert math.isnan(best_case(metrics, [("recon/ssim", "min")])[0])


@pytest.mark.parametrize(
    ("front_point", "dominated"),
    [
        ([0.90, 0.40], True),  # better on both
        ([0.83, 0.40], True),  # equal utility, less leakage
        ([0.83, 0.46], False),  # equal: not dominated
        ([0.95, 0.50], False),  # more utility but more leakage than the best case
        ([0.80, 0.30], False),  # less utility than the best case
    ],
)
def test_a_trial_is_dominated_only_when_a_front_point_is_at_least_as_good_everywhere_and_better_once(front_point, dominated):
    metrics = {"utility/acc": 0.8, "utility/acc:ci95_hi": 0.83, "privacy/leak_acc": 0.5, "privacy/leak_acc:ci95_lo": 0.46}
    assert is_dominated(metrics, [[0.1, 0.9], front_point], OBJECTIVES) is dominated
    assert dominates(front_point, best_case(metrics, OBJECTIVES), OBJECTIVES) is dominated


def test_an_empty_front_or_a_missing_objective_never_screens():
    assert not is_dominated({"utility/acc": 0.1, "privacy/leak_acc": 0.9}, [], OBJECTIVES)
    assert not is_dominated({"utility/acc": 0.1}, [[1.0, 0.0]], OBJECTIVES)


def test_screened_values_are_logged_under_their_own_keys_and_recognised():
    logged = screened_metrics({"privacy/leak_acc": 0.5, "utility/acc": 0.8})
    assert logged == {"screen/privacy/leak_acc": 0.5, "screen/utility/acc": 0.8}
    assert is_screened(logged) and not is_screened({"privacy/leak_acc": 0.5})


def test_a_screening_attack_leaves_the_full_attack_of_a_random_release_exactly_as_without_it():
    """noisy_arl releases fresh noise (the global RNG): without `preserved_rng` the screening
    attack would move the batch-norm recalibration's noise, and with it every final number."""
    config = tiny_config(method="noisy_arl", params={"sigma": 0.5, "lambda": 0.1})
    plain = Trial(config)
    plain.train()
    expected, _ = plain.attack()
    screened = Trial(config)
    screened.train()
    with preserved_rng():
        screened.attack(screening_budget(config.attacks, 0.5))
        torch.rand(3)
    got, _ = screened.attack()
    assert {k: v for k, v in got.items() if not k.startswith("time/")} == {k: v for k, v in expected.items() if not k.startswith("time/")}


def test_screening_an_objective_it_cannot_bound_is_an_input_error():
    from sweeps.spec import load_spec
    from trainables.errors import InputError

    spec = REPO / "sweeps" / "quickstart.yaml"
    assert load_spec(spec, ["search.screen=0.2"]).search.screen == 0.2
    for metric in ("privacy/leak_acc:ci95_hi", "utility/acc_retrained"):
        objectives = f"objectives=[{{metric: utility/acc, mode: max}}, {{metric: '{metric}', mode: min}}]"
        with pytest.raises(InputError, match=r"search.screen cannot bound the objective\(s\) \['" + re.escape(metric)) as error:
            load_spec(spec, ["search.screen=0.2", objectives])
        assert "(got" not in str(error.value)  # the message, not a dump of the whole spec


def test_the_launch_front_is_its_complete_fully_attacked_configurations_replicate_means(tmp_path):
    """Seeds of one configuration average into one point; a configuration with a seed still
    missing, a screened run, a failed one and another launch's runs are not on it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("front", artifact_location=(tmp_path / "artifacts").as_uri())

    def trial_run(config: str, acc: float, leak: float, launch: str = "L", status: str = "FINISHED", **tags: str) -> None:
        run = client.create_run(experiment, tags={ROLE_TAG: "trial", LAUNCH_TAG: launch, CONFIG_ID_TAG: config, **tags})
        for key, value in (("utility/acc", acc), ("privacy/leak_acc", leak)):
            client.log_metric(run.info.run_id, key, value)
        client.set_terminated(run.info.run_id, status)

    trial_run("a", 0.8, 0.4)
    trial_run("a", 0.9, 0.6)
    trial_run("b", 0.99, 0.1)  # one seed of two
    trial_run("c", 0.99, 0.1, **{SCREENED_TAG: "true"})
    trial_run("c", 0.99, 0.1)  # screened seed 0 + a finished seed: still not complete
    trial_run("d", 0.99, 0.1, status="FAILED")
    trial_run("d", 0.99, 0.1, status="FAILED")
    trial_run("e", 0.99, 0.1, launch="other")
    trial_run("e", 0.99, 0.1, launch="other")
    assert launch_front(uri, experiment, "L", OBJECTIVES, replicates=2) == [pytest.approx([0.85, 0.5])]
    assert sorted(launch_front(uri, experiment, "L", OBJECTIVES, replicates=1)) == [pytest.approx([0.85, 0.5]), [0.99, 0.1], [0.99, 0.1]]
