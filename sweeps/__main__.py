from sweeps.cli import main
from trainables.program import run_as_program

run_as_program(main)
