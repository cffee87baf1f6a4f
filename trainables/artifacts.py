"""Files a finished trial leaves: config.yaml, metrics.json, reconstructions.png, client.pt."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from torchvision.utils import save_image

from trainables.attacks.suite import AttackReport
from trainables.config import TrialConfig
from trainables.methods.base import Method


def save_reconstructions(report: AttackReport, path: Path) -> None:
    """Originals (top row) above the strongest decoder's reconstructions (bottom row)."""
    images = torch.cat([report.originals, report.reconstructions])
    if len(images):
        save_image(images, path, nrow=len(report.originals), padding=2, pad_value=1.0)


def write_artifacts(folder: Path, config: TrialConfig, metrics: dict, report: AttackReport, method: Method) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True), sort_keys=False))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    save_reconstructions(report, folder / "reconstructions.png")
    torch.save(method.client_network().state_dict(), folder / "client.pt")
    return sorted(folder.iterdir())
