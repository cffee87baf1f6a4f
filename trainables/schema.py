"""Names shared by the trainables, the launcher and the analysis, importable without torch
(the analysis never imports torch): the interval suffixes of metric keys and the MLflow tags
of seed replicates."""

# `<key>:ci95_lo`, `<key>:ci95_hi`: a final metric's 95 % interval. A colon never occurs in
# an attacker name (so no per-attacker key ends this way), and MLflow allows it in keys.
INTERVAL_LOW, INTERVAL_HIGH = ":ci95_lo", ":ci95_hi"


def is_interval_key(key: str) -> bool:
    return key.endswith((INTERVAL_LOW, INTERVAL_HIGH))


CONFIG_ID_TAG = "privsweep.config_id"  # shared by the seed replicates of one configuration
REPLICATE_TAG = "privsweep.replicate"  # r: the run used train.seed + r
ASSIGNMENT_TAG = "privsweep.assignment"  # the searcher's assignment, JSON: what `sweeps confirm` re-runs
CONTROL_TAG = "privsweep.control"  # JSON {"method", "shared": [params.<name>]}: the run's same-budget control
PLANNED_RUNS_TAG = "privsweep.planned_runs"  # on a launch's parent run: the child runs it set out to finish
