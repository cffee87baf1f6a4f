"""`none`: traditional split inference. z is the client's features, unchanged; the proxy
adversary only observes (it never shapes the client)."""

from __future__ import annotations

import torch

from trainables.methods.obfuscation import ObfuscationMethod


class NoDefense(ObfuscationMethod):
    def obfuscate(self, features: torch.Tensor) -> torch.Tensor:
        return features

    def release_is_random(self) -> bool:
        return False
