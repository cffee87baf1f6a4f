"""The lock file (constraints.txt) pins what every install of the platform gets: `make`'s
virtualenv and the cluster image."""

from __future__ import annotations

import re
from importlib.metadata import requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def pins() -> dict[str, Version]:
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"constraints.txt: {line!r} is not an exact pin"
        pinned[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pinned


def test_every_dependency_is_pinned_at_a_version_its_requirement_allows():
    pinned = pins()
    # pyproject's dependencies and dev extra, as installed (make reinstalls when pyproject changes)
    requirements = [Requirement(text) for text in requires("privsweep")]
    requirements = [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": "dev"})]
    assert len(requirements) > 20
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not in constraints.txt: run `make lock`"
        assert pinned[name] in requirement.specifier, f"constraints.txt pins {name} {pinned[name]}, pyproject asks {requirement}"
    assert "privsweep" not in pinned  # the project itself is installed from the checkout


def test_make_and_the_image_install_under_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^LOCK \?= constraints\.txt$", makefile, flags=re.MULTILINE)
    installs = [line for line in makefile.splitlines() if "$(PY) -m pip install" in line and "--upgrade pip" not in line]
    assert installs and all("$(PIN)" in line for line in installs), installs
    dockerfile = (ROOT / "cluster" / "Dockerfile").read_text()
    assert re.search(r"^COPY\b[^\n]*\sconstraints\.txt\s+(\S+)$", dockerfile, flags=re.MULTILINE)
    commands = "\n".join(line for line in dockerfile.splitlines() if not line.lstrip().startswith("#"))
    pip_installs = re.findall(r"pip install[^\n]*", commands)
    assert pip_installs and all("-c /home/ray/constraints.txt" in command for command in pip_installs), pip_installs
    pinned = pins()
    for name, arg in (("ray", "RAY_VERSION"), ("torch", "TORCH_VERSION"), ("torchvision", "TORCHVISION_VERSION")):
        version = re.search(rf"^ARG {arg}=(\S+)$", dockerfile, flags=re.MULTILINE)
        assert version and Version(version[1]) == pinned[name], f"cluster/Dockerfile's {arg} is not the lock's {name} {pinned[name]}"
