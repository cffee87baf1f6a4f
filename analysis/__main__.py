"""`python -m analysis pareto ...`: see analysis.cli."""

from analysis.cli import main
from trainables.program import run_as_program

run_as_program(main)
