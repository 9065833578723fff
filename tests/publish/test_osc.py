"""The OSC bridge (rt_mer.publish.osc) in process: a failed send counted,
names and values OSC-safe, bad targets and endpoints one line."""
from __future__ import annotations

from rt_mer.publish.osc import OscSender, osc_name, osc_values

from support.wire import osc_emotion as emotion

FIELDS = ("valence", "arousal", "quadrant", "mood", "level")


def test_a_send_that_fails_is_counted_not_raised():
    sender = OscSender("127.0.0.1:9", bundle=False)
    sender.send(emotion("mic", 0))
    sender.client.close()                              # every send now fails
    sender.send(emotion("mic", 1))
    assert (sender.forwarded, sender.failed, sender.last_failure) == (1, 1, "Bad file descriptor")


def test_names_and_values_are_osc_safe():
    assert osc_name("deck 1") == "deck_1"
    assert osc_name(" #*,/?[]{}") == "_" * 10
    assert osc_name("Café-2_x") == "Caf_-2_x" and osc_name("") == "_"
    message = emotion("a", 0)
    del message["level_dbfs"]                          # optional in the schema: then not sent
    assert [address for address, _, _ in osc_values(message)] == [f"/rt-mer/a/{f}" for f in FIELDS[:4]]
    assert osc_values(emotion("a", 0, level_dbfs=-200.0), normalize=True)[-1][2] == 0.0
    assert osc_values(emotion("a", 0, level_dbfs=10 ** 400))[-1][2] == 200.0     # valid JSON, clamped
    assert osc_values(emotion("a", 0, mood="ca\0lm"))[3][2] == "calm"
