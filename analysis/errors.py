"""The one error type the analysis raises for bad input (the CLI turns it into exit code 2)."""

from __future__ import annotations


class AnalysisInputError(ValueError):
    """Bad input from the user: unknown experiment or metric, no finished trials, bad syntax.

    The message is a complete, one-paragraph explanation that names what was wrong and how
    to fix it; the command line prints it as is, without a traceback.
    """
