"""The one exception type for bad user input (exit code 2 at the CLI edge)."""


class InputError(ValueError):
    """Invalid input: a bad spec field, an unknown registry key, missing data files.

    The message is shown to the user as-is: it names the field or file and says how to fix it.
    """
