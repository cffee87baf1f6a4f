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
