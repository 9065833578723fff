"""Printable text (rt_mer.text): what a terminal would act on is escaped."""
from __future__ import annotations

from rt_mer.text import printable

from support.files import HOSTILE, SHOWN


def test_printable_escapes_what_a_terminal_would_act_on():
    assert printable(HOSTILE) == SHOWN
    assert printable("x\udcffy") == "x\\udcffy"            # an undecodable byte of a file name
    assert printable("café · ok") == "café · ok"
    assert printable("\u202eevil").isprintable()            # a right-to-left override
