"""`train.init: pretrained`: one task model per data slice, backbone and seed, trained once,
cached, loaded into every method's client and deployed server at any split, and standing in
for the phases it replaces."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config

from trainables import pretraining
from trainables.data import synthetic
from trainables.errors import InputError
from trainables.methods import METHODS, MethodContext
from trainables.models import INPUT_SPLIT, SplitArchitecture
from trainables.pretraining import TaskModel, load_task_model, stages_of, task_model_path
from trainables.trial import Trial

SHAPE = (3, 16, 16)


@pytest.fixture
def data():
    return synthetic.load(train_size=64, test_size=32, image_size=16)


@pytest.fixture
def counted_training(monkeypatch, tmp_path):
    """How many task models were trained (not loaded from the cache), in a cache of this test's own."""
    monkeypatch.setenv("PRIVSWEEP_DATA", str(tmp_path))
    calls = []
    train = pretraining.train_task_model

    def counting(config, dataset):
        calls.append(config.model.split)
        return train(config, dataset)

    monkeypatch.setattr(pretraining, "train_task_model", counting)
    return calls


def random_task_model(seed: int = 5) -> tuple[list[dict[str, torch.Tensor]], TaskModel]:
    torch.manual_seed(seed)
    arch = SplitArchitecture("small_cnn", INPUT_SPLIT, SHAPE, {})
    model = TaskModel(MethodContext(arch, 2, 3, 1e-3), TaskModel.Params())
    return [stage.state_dict() for stage in stages_of(*model.task_networks())], model.eval()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_task_model_loads_into_every_method_as_its_deployed_task_path(name):
    stages, model = random_task_model()
    arch = SplitArchitecture("small_cnn", "2", SHAPE, {})
    method = METHODS[name](MethodContext(arch, 2, 3, 1e-3), METHODS[name].Params())
    assert method.phases[: len(method.pretrained_phases)] == method.pretrained_phases
    load_task_model(method, stages)
    client, server = method.task_networks()
    client.eval()
    server.eval()
    x = torch.rand(4, *SHAPE)
    with torch.no_grad():
        assert torch.allclose(server(client(x)), model.server(model.client(x)), atol=1e-6)


def test_a_client_of_other_shapes_is_an_input_error():
    stages, _ = random_task_model()
    arch = SplitArchitecture("small_cnn", "2", SHAPE, {})
    disco = METHODS["disco"](MethodContext(arch, 2, 3, 1e-3), METHODS["disco"].Params(preprocess=True, grid=4))
    with pytest.raises(InputError, match="train.init: pretrained"):
        load_task_model(disco, stages)


def test_one_task_model_serves_every_split_and_a_second_trial(data, counted_training):
    config = tiny_config(method="none", params={}, train__init="pretrained", train__epochs=2)
    first = Trial(config, data)
    again = Trial(config, data)
    other_split = Trial(config.model_copy(update={"model": config.model.model_copy(update={"split": "1"})}), data)
    assert len(counted_training) == 1 and task_model_path(config).exists()
    assert "train/task_model/epochs_run" in first.pretraining and first.pretraining == other_split.pretraining
    x = torch.rand(8, *SHAPE)
    for trial in (first, again, other_split):
        trial.method.eval()
    with torch.no_grad():
        reference = first.method.serve(first.method.release(x))
        assert torch.equal(reference, again.method.serve(again.method.release(x)))
        assert torch.allclose(reference, other_split.method.serve(other_split.method.release(x)), atol=1e-5)


def test_another_seed_trains_another_task_model(data, counted_training):
    config = tiny_config(method="none", params={}, train__init="pretrained", train__epochs=1)
    Trial(config, data)
    Trial(config.model_copy(update={"train": config.train.model_copy(update={"seed": 7})}), data)
    assert len(counted_training) == 2


def test_a_pretrained_disco_skips_its_first_phase(data):
    config = tiny_config(method="disco", params={"optimizer": "adam"}, train__init="pretrained", train__epochs=1)
    trial = Trial(config, data)
    assert trial.method.phase == "filter"
    trial.train()
    metrics = trial.training_metrics()
    assert "train/epochs_run/client" not in metrics and metrics["train/epochs_run/filter"] == 1
    assert all("train/proxy_loss" in epoch for epoch in trial.history)  # every epoch is a phase-2 epoch
