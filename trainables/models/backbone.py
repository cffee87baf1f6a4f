"""A backbone as an ordered list of stages plus named split points.

A split point names how many stages run on the client; the server is the remaining
stages followed by a classification head. Building a fresh backbone for each network
(client, deployed server, proxy adversary, attackers) keeps their weights independent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass
class Backbone:
    stages: list[nn.Module]
    splits: dict[str, int]  # split name -> number of stages on the client
    feature_channels: int  # channels after the last stage, the head's input
    head: Callable[[int, int], nn.Module] | None = None  # (channels, classes) -> head

    def client_stages(self, split: str) -> int:
        return self.splits.get(split, 0)  # unknown names are rejected by SplitArchitecture

    def client(self, split: str) -> nn.Sequential:
        return nn.Sequential(*self.stages[: self.client_stages(split)])

    def server(self, split: str, classes: int) -> nn.Sequential:
        head = (self.head or pooled_linear_head)(self.feature_channels, classes)
        return nn.Sequential(*self.stages[self.client_stages(split) :], head)


def pooled_linear_head(channels: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes))
