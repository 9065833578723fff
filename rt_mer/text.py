"""Text from outside (file names, device names, error messages that quote
them) made safe to print on a terminal and to publish, and the one way
rt-mer says a line on stderr: the one home of both rules."""
from __future__ import annotations

import sys

from .signals import output_gone, silence


def printable(text: str) -> str:
    """`text` with every character that is not printable shown escaped as
    Python writes it: ESC as \\x1b, a newline as \\n, a lone surrogate (a
    file name's undecodable byte) as \\udcff. The result is one line, holds
    no terminal control sequence, encodes to UTF-8 and passes the message
    schema's check of strings."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def say(text: str) -> None:
    """"rt-mer: " and `text`, made printable, as one line on stderr: how the
    commands tell the user what they do and what went wrong. A closed
    terminal or pipe there is no error: nobody is left to read it."""
    try:
        print(f"rt-mer: {printable(text)}", file=sys.stderr, flush=True)
    except OSError as error:
        if not output_gone(error):
            raise
        silence(sys.stderr)
