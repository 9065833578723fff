"""`rt-mer` as a user types it: sub-commands, options and the --config file,
run in subprocesses. A user error is one line on stderr and a non-zero exit."""
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "rt_mer.cli"]


def rt_mer(*args, timeout=60, **kwargs):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs)


def one_error_line(result, code=2):
    """The run ended with `code` and a single 'rt-mer: error:' line; returns it."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code and len(lines) == 1, result.stderr
    assert lines[0].startswith("rt-mer: error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_devices_lists_the_virtual_input(virtual_audio):
    import sounddevice
    expected = sounddevice.query_devices("pulse")
    result = rt_mer("devices")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    row = next(line for line in result.stdout.splitlines() if " pulse " in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[:4] == [str(expected["index"]), "pulse", str(expected["max_input_channels"]),
                         f"{expected['default_samplerate']:.0f}"]
