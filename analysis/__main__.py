"""`python -m analysis pareto ...`: see analysis.cli."""

from analysis.cli import main
from trainables.durable import make_files_private

make_files_private()  # as a program only: tests that call main() keep their own umask
raise SystemExit(main())
