"""The docs in docs/ cannot go stale: the spec reference is what the models generate, every
spec field and method parameter has a description, relative links resolve, and the
worked examples of docs/write-your-own-defense.md and docs/write-your-own-attack.md run as
written."""

from __future__ import annotations

import math
import re
import shlex
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_config

import trainables.attacks.registry as attack_registry
from sweeps.reference import spec_reference, undescribed_fields
from sweeps.spec import load_spec
from trainables.config import AttackConfig
from trainables.methods import METHODS, MethodContext
from trainables.models import SplitArchitecture
from trainables.trial import Trial

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
EXAMPLE = DOCS / "write-your-own-defense.md"
ATTACK_EXAMPLE = DOCS / "write-your-own-attack.md"


def code_blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.S)


def test_every_spec_field_and_method_parameter_has_a_description():
    assert undescribed_fields() == []


def test_the_spec_reference_is_what_the_models_generate():
    assert (DOCS / "spec-reference.md").read_text() == spec_reference(), (
        "docs/spec-reference.md is stale: run `python -m sweeps reference > docs/spec-reference.md`"
    )


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")) + ["../README.md"])
def test_relative_links_resolve(page):
    path = (DOCS / page).resolve()
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
        assert (path.parent / target).exists(), f"{page} links to {target}, which does not exist"


@pytest.fixture
def laplace_arl(monkeypatch):
    """The example module, imported from the page and registered as step 3 says."""
    module = types.ModuleType("trainables.methods.laplace_arl")
    exec(compile(code_blocks(EXAMPLE, "python")[0], str(EXAMPLE), "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(METHODS, "laplace_arl", module.LaplaceARL)
    return module.LaplaceARL


def test_the_worked_example_releases_laplace_noise_of_its_scale(laplace_arl):
    arch = SplitArchitecture("small_cnn", "2", (3, 16, 16), {})
    method = laplace_arl(MethodContext(arch, 2, 3, 1e-3), laplace_arl.Params(scale=0.5)).eval()
    x = torch.rand(64, 3, 16, 16)
    with torch.no_grad():
        noise = method.release(x) - method.client(x)
    assert noise.std().item() == pytest.approx(0.5 * math.sqrt(2), rel=0.05)
    assert (noise.abs() > 0).all() and method.release_is_random()
    assert not laplace_arl(MethodContext(arch, 2, 3, 1e-3), laplace_arl.Params(scale=0)).release_is_random()


def test_the_worked_example_spec_validates_and_its_trial_runs(laplace_arl, tmp_path):
    space, spec = (yaml.safe_load(block) for block in code_blocks(EXAMPLE, "yaml"))
    path = tmp_path / "laplace_arl.yaml"
    path.write_text(yaml.safe_dump({**spec, "search_space": space}))
    loaded = load_spec(path)
    assert loaded.method == "laplace_arl" and set(loaded.space().common) == {"params.scale", "params.lambda", "model.split"}
    metrics, _ = Trial(tiny_config(method="laplace_arl", params={"scale": 0.5, "lambda": 0.01})).run()
    assert 0 <= metrics["privacy/leak_acc"] <= 1 and 0 <= metrics["utility/acc"] <= 1


@pytest.fixture
def knn(monkeypatch):
    """The example attacker, imported from the page as if its module sat in
    trainables/attacks/attackers/ (the registry is restored afterwards)."""
    monkeypatch.setattr(attack_registry, "ATTACKERS", dict(attack_registry.registered()))
    module = types.ModuleType("trainables.attacks.attackers.knn")
    exec(compile(code_blocks(ATTACK_EXAMPLE, "python")[0], str(ATTACK_EXAMPLE), "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module.NearestNeighbours


def test_the_example_attacker_joins_the_default_suite_and_its_own_test_passes(knn):
    assert attack_registry.selected(AttackConfig())["knn"] is knn  # no spec edit: the default suite takes it
    assert "knn" in attack_registry.selected(AttackConfig(suite="query"))
    assert "knn" not in attack_registry.selected(AttackConfig(leakage=["mlp"]))
    test_module = types.ModuleType("attacks.test_knn")
    exec(compile(code_blocks(ATTACK_EXAMPLE, "python")[1], str(ATTACK_EXAMPLE), "exec"), test_module.__dict__)
    test_module.test_knn_finds_a_private_attribute_in_plain_sight()


def test_the_example_attacker_runs_in_a_trial_of_the_default_suite(knn):
    metrics, _ = Trial(tiny_config(attacks__leakage=None)).run()
    assert metrics["privacy/leak_acc"] == max(metrics[f"privacy/leak_acc/{name}"] for name in ("knn", "mlp", "server_arch"))
    assert metrics["privacy/leak_acc:query"] == metrics["privacy/leak_acc"]
    assert metrics["privacy/leak_acc/knn:ci95_lo"] <= metrics["privacy/leak_acc/knn"] <= metrics["privacy/leak_acc/knn:ci95_hi"]
    assert metrics["attack/knn_k"] in (1, 5, 25)


README = REPO / "README.md"


def test_the_readme_example_spec_is_the_shipped_quickstart():
    [example, *_] = code_blocks(README, "yaml")
    assert yaml.safe_load(example) == yaml.safe_load((REPO / "sweeps" / "quickstart.yaml").read_text())


def experiment_created(command: list[str]) -> str | None:
    """The MLflow experiment a README command writes to: a sweep's (its spec's name, or
    `--set tracking.experiment=`, `/smoke` under --smoke); `make demo`'s (the Makefile's)."""
    if command[:2] == ["make", "demo"]:
        [name] = re.findall(r"tracking\.experiment=(\S+)", (REPO / "Makefile").read_text())
        return name
    if command[:4] != ["python", "-m", "sweeps", "run"]:
        return None
    spec = yaml.safe_load((REPO / command[4]).read_text())
    sets = dict(command[i + 1].split("=", 1) for i, word in enumerate(command) if word == "--set")
    name = sets.get("tracking.experiment") or spec.get("tracking", {}).get("experiment") or spec["name"]
    return f"{name}/smoke" if "--smoke" in command else name


def test_every_readme_command_names_an_experiment_an_earlier_command_creates():
    created: list[str] = []
    named = 0
    for block in code_blocks(README, "bash"):
        for line in block.splitlines():
            command = shlex.split(line, comments=True)
            if not command:
                continue
            for index, word in enumerate(command[:-1]):
                if word == "--experiment":
                    named += 1
                    assert command[index + 1] in created, f"{line!r} names an experiment no earlier command creates ({created})"
            if (made := experiment_created(command)) is not None:
                created.append(made)
    assert named >= 2 and "quickstart_demo" in created
