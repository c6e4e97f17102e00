"""Errors the library raises; the CLI turns each into one line and an exit code."""


class CurateError(Exception):
    """A problem the user can fix: bad input, bad options. Exit code 2."""

    exit_code = 2


class UsageError(CurateError):
    """Options or arguments that cannot work together."""


class InputError(CurateError):
    """A ROOT, manifest or CSV that cannot be used."""


class ImageError(CurateError):
    """One file could not be decoded. `reason` is the manifest's reason word."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason  # corrupt | not-image | unreadable | too-large
        self.detail = detail
