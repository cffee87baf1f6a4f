"""The one exception type for bad user input (exit code 2 at the CLI edge), and the
near-miss hint its messages share."""

import difflib
from collections.abc import Iterable


class InputError(ValueError):
    """Invalid input: a bad spec field, an unknown registry key, missing data files.

    The message is shown to the user as-is: it names the field or file and says how to fix it.
    """


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """" (did you mean `search`?)" for a near miss such as `serach`, else ""."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""
