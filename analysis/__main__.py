"""`python -m analysis pareto ...`: see analysis.cli."""

from analysis.cli import main

raise SystemExit(main())
