"""Precise batch-norm statistics for the deployed path, recomputed once after training.

A batch-norm layer's running statistics are an exponential average over training batches
taken while the weights were still moving, and in some methods under other conditions than
deployment: DeepObfuscator's stages run the fixed networks on batch statistics, DISCO trains
with a soft channel mask and releases a hard one. Then the deployed model (eval mode) is not
the one that was trained. Measured: DeepObfuscator, Fashion-MNIST coarse, small_cnn split 2,
lambda1 = 1, 2 epochs: 0.98 validation accuracy with either network on batch statistics,
0.41 with both on their running statistics, 0.97 after recomputing them.

So after the last epoch, with every weight final and the method in eval mode (its deployed
release, noise included, then `serve`), each batch-norm layer on that path gets the plain
average of its batch statistics over the train split (`momentum=None`, as SWA's `update_bn`
and "precise BN" do). Only train-split images are used. The method's own adversaries (its
proxy classifier, defenders, decoders) get the same on the final release: their running
statistics were averaged over releases of a client that kept moving, and the suite evaluates
them on the final one beside fresh attackers whose statistics are all of it. Layers on
neither path (adv_recon's discriminator) keep their statistics. Not `torch.optim.swa_utils.update_bn`
itself: it puts the whole model in train mode (a method's training-time release: soft masks,
other noise) and resets every batch-norm layer, including those off the deployed path.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from trainables.data.batches import TensorSplit
from trainables.methods.base import Method


def _batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_batch_norm(
    method: Method,
    data: TensorSplit,
    batch_size: int,
    autocast: AbstractContextManager | None = None,
) -> int:
    """Recompute the running statistics of the batch-norm layers on `method`'s deployed path
    (release, then serve) and on its proxies (proxy_leak and proxy_decoders of the release)
    over `data`; returns how many layers were recalibrated."""
    norms = _batch_norms(method)
    if not norms or len(data) == 0:
        return 0
    saved = {norm: (norm.momentum, {k: v.clone() for k, v in norm.state_dict().items()}) for norm in norms}
    method.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    decoders = list(method.proxy_decoders().values())
    for x, *_ in data.batches(batch_size):
        with autocast or nullcontext():
            z = method.release(x)
            method.serve(z)
            method.proxy_leak(z)
            for decoder in decoders:
                decoder(z)
    method.eval()
    recalibrated = 0
    for norm, (momentum, state) in saved.items():
        norm.momentum = momentum
        if int(norm.num_batches_tracked) == 0:
            norm.load_state_dict(state)  # not on the deployed path
        else:
            recalibrated += 1
    return recalibrated
