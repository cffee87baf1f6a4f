"""The searcher built for every sampler survives the pickling Ray Tune does at every launch
(the tuner's state, experiment snapshots) and keeps proposing from the same study."""

from __future__ import annotations

import pytest
from ray import cloudpickle

from sweeps.search import SAMPLERS, build_searcher
from sweeps.search_space import load_search_space
from sweeps.spec import load_spec


@pytest.mark.parametrize("sampler", sorted(set(SAMPLERS) - {"grid"}))
def test_every_samplers_searcher_pickles_and_still_proposes(sampler, tmp_path):
    spec = load_spec("sweeps/quickstart.yaml", [f"search.sampler={sampler}"])
    space = load_search_space(spec.search_space)
    searcher = build_searcher(spec, space, f"sqlite:///{tmp_path / 'optuna.db'}", "quickstart/launch")
    copy = cloudpickle.loads(cloudpickle.dumps(searcher))
    assert type(copy._sampler) is type(searcher._sampler)
    trial = copy._ot_study.ask()
    proposal = copy._space(trial)
    assert 0.05 <= proposal["params.sigma"] <= 8.0 and proposal["model.split"] in (1, 2, 3)
    assert copy._ot_study.metric_names == [o.metric for o in spec.objectives]  # named for the dashboard


def test_a_study_begun_by_optunas_nsga2_resumes_with_its_generations_under_the_picklable_one():
    import optuna

    from sweeps.search import PicklableNSGAIISampler

    def objectives(trial):
        x, y = trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)
        return x + y, x - y

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=optuna.samplers.NSGAIISampler(population_size=4, seed=0))
    study.optimize(objectives, n_trials=8)
    key = optuna.samplers.NSGAIISampler._get_generation_key()
    assert [t.system_attrs[key] for t in study.trials] == [0] * 4 + [1] * 4
    study.sampler = PicklableNSGAIISampler(population_size=4, seed=0)
    study.optimize(objectives, n_trials=4)
    assert [t.system_attrs[key] for t in study.trials[8:]] == [2] * 4  # the third generation, not a new first


def test_gp_on_a_by_method_space_says_once_what_it_draws_at_random_not_per_parameter_of_every_trial(caplog):
    import logging

    import optuna

    from sweeps.search import SAMPLERS, DefineByRun

    spec = load_spec("sweeps/compare_fashion_mnist.yaml", ["search.sampler=gp"])
    space = load_search_space(spec.search_space)
    optuna.logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING):
            study = optuna.create_study(directions=["maximize", "minimize"], sampler=SAMPLERS["gp"](spec, space))
            define = DefineByRun(space)
            for number in range(14):  # past the GP's 10 random start-up trials
                trial = study.ask()
                define(trial)
                study.tell(trial, [0.5 + number / 100, 0.5])
    finally:
        optuna.logging.disable_propagation()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([w for w in warnings if "drawn at random" in w]) == 1
    assert "method" in warnings[0]
    assert not [w for w in warnings if "sampled independently" in w]
