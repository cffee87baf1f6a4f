"""Downloads through torchvision's dataset classes, for machines that are online."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def download_idx(class_name: str, root: Path) -> Path | None:
    """Download MNIST-style IDX files with torchvision; the raw folder, or None when offline."""
    import torchvision.datasets as tvd

    try:
        getattr(tvd, class_name)(str(root), train=True, download=True)
        getattr(tvd, class_name)(str(root), train=False, download=True)
    except Exception as error:  # offline, proxy, or a mirror down: the caller says how to fix it
        log.warning("download of %s into %s failed: %s", class_name, root, error)
        return None
    return root / class_name / "raw"
