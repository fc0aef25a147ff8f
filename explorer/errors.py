"""Exceptions shared by every layer.

`InputError` means the user gave us something we cannot use (a missing file, a corrupt
checkpoint, a bad argument). The CLI turns it into a one-line message and exit code 2; the
GUI shows it in a dialog. Anything else is an internal error.
"""


class InputError(Exception):
    """Bad input or usage: reported to the user in one line, never with a traceback."""


class CancelledError(Exception):
    """A long job was cancelled by its driver."""
