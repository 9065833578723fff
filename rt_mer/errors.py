"""One root for rt-mer's own errors, so a program catches one type.

Every subclass carries a message of one line, fit to show a user as it is
(the CLI prints it after ``rt-mer: error:``)."""
from __future__ import annotations


class RtMerError(Exception):
    """An error of rt-mer's own: bad input, a device, model or endpoint that cannot serve."""


class UserError(RtMerError):
    """Ends the command with its message on one line (exit status 2)."""
