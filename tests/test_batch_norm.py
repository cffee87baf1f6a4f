"""After training, the deployed path's batch-norm statistics are recomputed on the train
split (trainables/batch_norm.py): equal to torch's own `update_bn` on release -> serve in
eval mode, and on release -> each proxy the same way; layers on neither path keep theirs."""

from __future__ import annotations

import torch
from conftest import tiny_config
from torch import nn
from torch.optim.swa_utils import update_bn

from trainables.batch_norm import recalibrate_batch_norm
from trainables.trial import Trial


def norms(module: nn.Module) -> dict[str, nn.BatchNorm2d]:
    return {name: m for name, m in module.named_modules() if isinstance(m, nn.BatchNorm2d)}


def buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k or "num_batches" in k}


def corrupt(module: nn.Module) -> None:
    for norm in norms(module).values():
        norm.running_mean.fill_(5.0)
        norm.running_var.fill_(9.0)


def trained(method: str, params: dict) -> Trial:
    trial = Trial(tiny_config(method=method, params=params))
    trial.train_epoch()
    return trial


def test_deployed_path_gets_the_train_split_average_of_its_batch_statistics():
    trial = trained("none", {})
    method = trial.method
    deployed = nn.Sequential(method.client, method.server)
    assert len(norms(deployed)) >= 4
    oracle = Trial(tiny_config(method="none", params={}))
    oracle.method.load_state_dict(method.state_dict())
    expected_net = nn.Sequential(oracle.method.client, oracle.method.server)
    batches = [x for x, *_ in trial.data.train.batches(64)]
    update_bn(batches, expected_net)
    corrupt(deployed)
    weights = {k: v.clone() for k, v in method.state_dict().items() if "running" not in k and "num_batches" not in k}

    count = recalibrate_batch_norm(method, trial.data.train, 64)

    assert count == len(norms(deployed)) + len(norms(method.adversary))  # the proxy's too
    got, expected = buffers(deployed), buffers(expected_net)
    assert got.keys() == expected.keys()
    for key in expected:
        if "running" in key:
            torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-5, msg=key)
    assert not method.training and all(not n.training for n in norms(method).values())
    assert all(n.momentum == 0.1 for n in norms(method).values())  # restored
    for key, value in weights.items():
        assert torch.equal(method.state_dict()[key], value), key  # no weight moves


def test_the_proxies_get_the_same_on_the_final_release_and_layers_on_neither_path_keep_theirs():
    trial = trained("noisy_arl", {"sigma": 0.0, "lambda": 0.1})  # sigma 0: a release the oracle can repeat
    method = trial.method
    oracle = Trial(tiny_config(method="noisy_arl", params={"sigma": 0.0, "lambda": 0.1}))
    oracle.method.load_state_dict(method.state_dict())
    expected_net = nn.Sequential(oracle.method.client, oracle.method.adversary)
    update_bn([x for x, *_ in trial.data.train.batches(64)], expected_net)
    corrupt(method.adversary)
    releases: list[tuple[bool, bool]] = []
    original = type(method).release

    def spy(self, x):
        releases.append((self.training, torch.is_grad_enabled()))
        return original(self, x)

    type(method).release = spy
    try:
        recalibrate_batch_norm(method, trial.data.train, 64)
    finally:
        type(method).release = original
    assert releases and all(not training and not grad for training, grad in releases)
    assert len(releases) == trial.data.train.num_batches(64)  # one release feeds the server and the proxy
    got, expected = buffers(method.adversary), buffers(oracle.method.adversary)
    assert got and got.keys() == expected.keys()
    for key in expected:
        if "running" in key:
            torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-5, msg=key)

    gan = trained("adv_recon", {"lambda1": 1.0, "mu1": 1.0})  # its discriminator is on neither path
    decoder_before, critic_before = buffers(gan.method.decoder), buffers(gan.method.discriminator)
    recalibrate_batch_norm(gan.method, gan.data.train, 64)
    assert buffers(gan.method.discriminator).keys() == critic_before.keys()
    assert all(torch.equal(buffers(gan.method.discriminator)[k], v) for k, v in critic_before.items())
    after = buffers(gan.method.decoder)
    assert any(not torch.equal(after[k], decoder_before[k]) for k in decoder_before if "running_mean" in k)
