"""The one exception type the CLI turns into a one-line error and exit status 1."""


class LrcodecError(Exception):
    """A problem with the user's input, a file or a model, explained in one line."""


def torch_missing(what: str) -> LrcodecError | None:
    """The error for ``what`` where torch is not installed (lrcodec-decode, the decode-only
    install), else None."""
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        return None
    return LrcodecError(f"{what} needs torch, which this decode-only install leaves out: pip install lrcodec")
