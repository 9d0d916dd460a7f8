"""The one exception type the CLI turns into a one-line error and exit status 1."""


class LrcodecError(Exception):
    """A problem with the user's input, a file or a model, explained in one line."""
