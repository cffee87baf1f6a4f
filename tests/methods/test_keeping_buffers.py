"""`trainables.methods.updates.keeping_buffers`: a train-mode forward that leaves the
batch-norm running statistics as they were."""

from __future__ import annotations

import torch
from torch import nn

from trainables.methods.updates import keeping_buffers

from .helpers import changed_entries, snapshot


def test_keeping_buffers_restores_running_statistics_after_a_train_mode_forward():
    bn = nn.BatchNorm2d(3).train()
    before = snapshot(bn)
    with keeping_buffers(bn):
        out = bn(torch.rand(4, 3, 5, 5) * 3)
        assert not torch.equal(bn.running_mean, before["running_mean"])  # it did run in train mode
    out.sum().backward()  # the graph that saved the statistics stays usable
    assert changed_entries(bn, before) == set()
