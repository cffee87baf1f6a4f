"""The shared schema (`trainables.schema`) is the one place the packages' shared names live,
and it is importable without torch."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from analysis.labels import axis_label, describe_params, metric_label, short_metric
from analysis.objectives import Objective
from analysis.pareto import default_reference
from trainables.schema import (
    METRICS,
    PARAM_SYMBOLS,
    PROXY_METRICS,
    RECON_HIGHER_IS_BETTER,
    metric_info,
)
from trainables.tracking import run_name

REPO = Path(__file__).resolve().parent.parent
TAG_LITERAL = re.compile(r"""b?["']privsweep\.""")


def test_privsweep_tag_names_are_written_in_the_schema_module_only():
    offenders = []
    for path in REPO.rglob("*.py"):
        relative = path.relative_to(REPO)
        if relative.parts[0] in {"tests", ".venv", "build"} or relative == Path("trainables/schema.py"):
            continue
        offenders += [f"{relative}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1) if TAG_LITERAL.search(line)]
    assert offenders == []


def test_the_schema_and_the_analysis_import_without_torch():
    code = "import sys, trainables.schema, analysis.labels, analysis.pareto, analysis.runs; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_attacker_interval_and_ratio_keys_share_their_metrics_info():
    for key in ("recon/ssim/mirror", "recon/ssim:ci95_hi", "recon/ssim:R0.5", "recon/ssim/whitebox:R0.5:ci95_lo"):
        assert metric_info(key) is METRICS["recon/ssim"]
    assert metric_info("privacy/leak_acc/mlp") is METRICS["privacy/leak_acc"]
    assert metric_info("train/task_loss") is None


def test_the_strongest_decoder_is_the_one_worst_for_the_defense():
    assert RECON_HIGHER_IS_BETTER == {"ssim": True, "ms_ssim": True, "psnr": True, "l1": False, "mse": False, "lpips": False}


def test_labels_symbols_and_references_come_from_the_schema(monkeypatch):
    monkeypatch.setitem(METRICS, "utility/acc", METRICS["utility/acc"].__class__("Task accuracy, schema's", "max", 0.25, 1.0, "acc*"))
    monkeypatch.setitem(PARAM_SYMBOLS, "sigma", "s")
    assert metric_label("utility/acc") == "Task accuracy, schema's"
    assert short_metric("utility/acc") == "acc*"
    assert axis_label(Objective("utility/acc", "max")).startswith("Task accuracy, schema's (utility/acc)")
    assert run_name("noisy_arl", {"params.sigma": 2.0}) == "s=2"  # one method: the experiment names it
    assert run_name("noisy_arl", {"method": "noisy_arl", "params.sigma": 2.0, "model.split": 2}) == "noisy_arl s=2 split=2"
    assert run_name("noisy_arl", {}) == "noisy_arl"
    assert describe_params({"params.sigma": 2.0}, ["params.sigma"]) == "s=2"
    table = pa.table({"utility/acc": [0.9], "privacy/leak_acc": [0.5], "client/gflops": [3.0]})
    reference = default_reference(table, [Objective("utility/acc", "max"), Objective("privacy/leak_acc", "min"),
                                          Objective("client/gflops", "min")])
    assert reference.tolist() == [0.25, 1.0, 3.0]  # the range's bad ends; GFLOPs unbounded: the table's worst


def test_the_metric_glossary_gives_each_schema_metric_its_direction():
    """docs/metrics.md's direction column agrees with the schema: ↑ for "max", ↓ for "min",
    – for a reference number that is no objective."""
    arrows = {"max": "↑", "min": "↓", None: "–"}
    rows = {}
    for line in (REPO / "docs" / "metrics.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows.update({key: cells[1] for key in re.findall(r"`([^`<]+)`", cells[0])})
    documented = {key: info for key, info in (METRICS | PROXY_METRICS).items() if key in rows}
    assert set(documented) >= {key for key in METRICS if not key.startswith(("client/", "time/"))}
    assert {key: rows[key][:1] for key in documented} == {key: arrows[info.mode] for key, info in documented.items()}
