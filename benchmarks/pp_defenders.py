"""Privacy Partitioning, Table II's claim: does a larger defender suite lower the SSIM of the
strongest fresh attacker?

    python benchmarks/pp_defenders.py [--defenders 1 2 3] [--lambda 10] [--seeds 0 1 2]
                                      [--epochs CAP] [--set KEY=VALUE ...]

Each cell is a trial of sweeps/quickstart.yaml (Fashion-MNIST coarse / class, small_cnn
split 2, its 10k/2k slice) with `privacy_partitioning` at one lambda and D defenders (the
first D of deconv, fc, sparse_fc), run once per seed, with the full default attack suite
(learned decoders to convergence and the white-box inversion). Prints a markdown table per
D of utility, leakage, the strongest fresh attacker's SSIM, the white-box SSIM and the
defenders' own (proxy) SSIM as `mean [95 % interval of the mean]` over the seeds, and a
verdict for each step D -> D + 1 by the intervals ("lower", "higher", "tied"). Finished
trials are kept in `--results` and reused by the same code (`stored_trials`).
"""

from __future__ import annotations

import argparse

import stored_trials
from methods_table import AT_CAP, SPEC, compare, run_seeds, run_then_print, summary

COLUMNS = ("utility/acc", "privacy/leak_acc", "recon/ssim", "recon/ssim/whitebox", "recon/proxy_ssim", "time/attack_s",
           "attackers converged", AT_CAP)
SSIM = "recon/ssim"


def step_verdict(fewer, more) -> str:
    """Is the SSIM with more defenders lower than with fewer, beyond the noise?"""
    outcome = compare(more, fewer, SSIM)
    return {"first": "lower", "second": "higher"}.get(outcome, outcome)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defenders", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--lambda", dest="lambda_", type=float, default=10.0)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="cap on defense epochs per phase; default: the spec's")
    parser.add_argument("--full", action="store_true", help="full train/test splits instead of the 10k/2k slice")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra spec override")
    stored_trials.add_arguments(parser, "pp_defenders")
    args = parser.parse_args()
    args.store = stored_trials.open_store(args, SPEC)
    run_then_print(table, args)
    return 0


def table(args: argparse.Namespace) -> None:
    cells = {d: run_seeds("privacy_partitioning", {"lambda": args.lambda_, "defenders": d}, args) for d in args.defenders}
    print(f"\nprivacy_partitioning lambda={args.lambda_}, defense cap {args.epochs or 'of the spec'}; seeds {args.seeds}; mean [95 % interval of the mean]\n")
    print("| defenders | " + " | ".join(COLUMNS) + " | SSIM vs one fewer |")
    print("|---|" + "---|" * (len(COLUMNS) + 1))
    previous = None
    for count, cell in cells.items():
        change = step_verdict(cells[previous], cell) if previous is not None else ""
        print(f"| {count} | " + " | ".join(summary(cell, c) for c in COLUMNS) + f" | {change} |", flush=True)
        previous = count


if __name__ == "__main__":
    raise SystemExit(main())
