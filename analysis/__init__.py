"""MLflow runs -> Arrow table -> Pareto fronts, hypervolume, plots, summary.

    from analysis import load_runs, pareto_front, hypervolume
    table = load_runs("noisy_arl_cifar10")
    front = pareto_front(table, ["utility/acc:max", "privacy/leak_acc:min"])
    hv = hypervolume(table, ["utility/acc:max", "privacy/leak_acc:min"])  # reference (0, 1)

Plots live in `analysis.plots` / `analysis.gallery` (imported on demand: matplotlib).
"""

from analysis.errors import AnalysisInputError
from analysis.intervals import hypervolume_differences, statistically_tied
from analysis.objectives import DEFAULT_OBJECTIVES, Objective, parse_objectives
from analysis.pareto import (
    default_reference,
    hypervolume,
    hypervolumes,
    method_fronts,
    pareto_front,
    pareto_mask,
)
from analysis.report import summary_markdown
from analysis.runs import concat_runs, load_objectives, load_runs, read_parquet, save_parquet

__all__ = [
    "DEFAULT_OBJECTIVES", "AnalysisInputError", "Objective", "concat_runs", "default_reference",
    "hypervolume", "hypervolume_differences", "hypervolumes", "load_objectives", "load_runs", "method_fronts", "pareto_front", "pareto_mask",
    "parse_objectives", "read_parquet", "save_parquet", "statistically_tied", "summary_markdown",
]
