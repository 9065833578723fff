"""`rt-mer` as a user types it: sub-commands, options and the --config file,
run in subprocesses. A user error is one line on stderr and a non-zero exit."""
from __future__ import annotations

import os
import signal
import subprocess

import pytest

from rt_mer.dsp.frontend import WINDOW_SECONDS

from support.music import chord_music, write
from support.processes import CLI, one_error_line, rt_mer


def test_devices_lists_the_virtual_input(virtual_audio):
    import sounddevice
    expected = sounddevice.query_devices("pulse")
    result = rt_mer("devices")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    row = next(line for line in result.stdout.splitlines() if " pulse " in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[:4] == [str(expected["index"]), "pulse", str(expected["max_input_channels"]),
                         f"{expected['default_samplerate']:.0f}"]


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """Ten seconds of music: enough for a few windows."""
    folder = tmp_path_factory.mktemp("cli")
    return write(folder / "song.wav", chord_music(10, 16000, 1, seed=21), 16000)


@pytest.fixture(scope="module")
def blip(tmp_path_factory):
    """Half a second: a `run --file` that ends at once (shorter than a window)."""
    folder = tmp_path_factory.mktemp("blip")
    return write(folder / "blip.wav", chord_music(0.5, 16000, 1, seed=22), 16000)


def config(tmp_path, text):
    path = tmp_path / "rt-mer.toml"
    path.write_text(text)
    return path


def window_ends(csv_text):
    return [float(row.split(",")[2]) for row in csv_text.splitlines()[1:]]


def test_config_values_go_through_the_option_types(tmp_path, blip):
    cases = [
        ('hop = "fast"', "--hop: expected a number, got 'fast'"),
        ("hop = inf", "--hop: must be a positive number, got inf"),
        ('rate = "abc"', "--rate: expected a whole number, got 'abc'"),
        ("threads = -1", "--threads: must be at least 1, got -1"),
        ("hop = 1e308", f"--hop: hop must be at most the {WINDOW_SECONDS:g} s window, got 1e+308"),
        ("threads = 99999", "--threads: must be at most"),
        ("smooth-time = 1e308", "--smooth-time: must be at most 3600 s, got 1e+308"),
        ('smooth = "gaussian"', "--smooth: invalid choice: 'gaussian'"),
        ('no-dash = "yes"', "--no-dash must be true or false"),
        ("channels = [1, 2]", "--channels takes one value"),
        ("device = [1, [2]]", "--device takes a value or a list of values"),
        ("hopp = 0.25", "unknown option(s): hopp"),
    ]
    for text, message in cases:
        path = config(tmp_path, text + "\n")
        line = one_error_line(rt_mer("--config", path, "run", "--file", blip, "--no-dash"))
        assert f"{path}: {message}" in line, (text, line)


def test_config_strings_and_lists_for_repeatable_options(tmp_path, blip):
    # one file as a string: one stream (it was a TypeError)
    path = config(tmp_path, f'file = "{blip}"\nno-dash = true\npub = "ipc://{tmp_path}/pub"\n')
    result = rt_mer("--config", path, "run")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("blip.wav") == 1
    # a list: one stream each; the command line replaces the list, it does not extend it
    path = config(tmp_path, f'file = ["{blip}", "{blip}"]\nno-dash = true\npub = "ipc://{tmp_path}/pub"\n')
    result = rt_mer("--config", path, "run")
    assert result.returncode == 0 and "blip-1: " in result.stderr and "blip-2: " in result.stderr, result.stderr
    result = rt_mer("--config", path, "run", "--file", blip)
    assert result.returncode == 0 and "blip-2" not in result.stderr, result.stderr
    # a device name is one device, not one per letter
    path = config(tmp_path, 'device = "no-such-card"\n')
    line = one_error_line(rt_mer("--config", path, "run", "--no-dash"))
    assert "no input device matches 'no-such-card'" in line


def test_config_keys_of_other_commands_are_ignored(tmp_path, song):
    path = config(tmp_path, 'device = "pulse"\nno-dash = true\npub = "tcp://0.0.0.0:5556"\nhop = 2.0\n'
                            'quiet = true\n')
    result = rt_mer("--config", path, "analyze", song)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    ends = window_ends(result.stdout)
    assert len(ends) >= 2 and {round(b - a, 6) for a, b in zip(ends, ends[1:])} == {2.0}
    result = rt_mer("--config", path, "analyze", song, "--hop", "1")       # the command line wins
    ends = window_ends(result.stdout)
    assert result.returncode == 0 and {round(b - a, 6) for a, b in zip(ends, ends[1:])} == {1.0}


@pytest.mark.parametrize("command, option, value, message", [
    ("analyze", "--hop", "inf", "must be a positive number"),
    ("analyze", "--hop", "1e300", f"hop must be at most the {WINDOW_SECONDS:g} s window"),
    ("analyze", "--hop", "0.01", "hop must be at least 0.0625 s"),
    ("analyze", "--threads", "-1", "must be at least 1"),
    ("run", "--hop", "nan", "must be a positive number"),
    ("run", "--hop", "9", f"hop must be at most the {WINDOW_SECONDS:g} s window"),
    ("run", "--threads", "0", "must be at least 1"),
    ("run", "--blocksize", "-5", "must be at least 0"),
    ("bench", "--hop", "-1", "must be a positive number"),
    ("bench", "--threads", "-1", "must be at least 1"),
    # far out of range: refused before anything computes with them (overflows, hangs, gigabytes)
    ("analyze", "--hop", "1e308", f"hop must be at most the {WINDOW_SECONDS:g} s window"),
    ("run", "--hop", "1e308", f"hop must be at most the {WINDOW_SECONDS:g} s window"),
    ("bench", "--hop", "1e308", f"hop must be at most the {WINDOW_SECONDS:g} s window"),
    ("analyze", "--threads", "99999", f"must be at most {4 * os.cpu_count()} (4 x the {os.cpu_count()} cores here)"),
    ("run", "--threads", "99999", "must be at most"),
    ("analyze", "--max-batch", "99999", "must be at most 4096"),
    ("run", "--rate", "99999999", "must be at most 384000 Hz"),
    ("run", "--rate", "10", "must be at least 1000"),
    ("run", "--blocksize", "99999999", "must be at most 65536 frames"),
    ("run", "--channels", "1,200", "must be at most 64"),
    ("run", "--smooth-time", "1e308", "must be at most 3600 s"),
    ("demo", "--refresh", "1e308", "must be at most 15 redraws a second"),
    ("dash", "--refresh", "0.001", "must be at least 0.1 redraws a second"),
    ("bench", "--streams", "1,99999999", "must be at most 4096"),
    ("listen", "--timeout", "inf", "must be a positive number"),
])
def test_impossible_numbers_are_one_line(command, option, value, message, tmp_path):
    inputs = [tmp_path / "x.wav"] if command == "analyze" else []
    line = one_error_line(rt_mer(command, *inputs, option, value))
    assert f"argument {option}: {message}" in line, line


def test_a_rounded_hop_is_said_and_used(tmp_path, song, blip):
    result = rt_mer("analyze", "--quiet", song, "--hop", "0.3")
    assert result.returncode == 0, result.stderr
    assert "rt-mer: hop 0.3 s rounded to 0.3125 s" in result.stderr
    ends = window_ends(result.stdout)
    assert len(ends) >= 3 and all(b - a == pytest.approx(0.3125, abs=1e-3) for a, b in zip(ends, ends[1:]))
    result = rt_mer("run", "--no-dash", "--file", blip, "--pub", f"ipc://{tmp_path}/pub", "--hop", "0.3")
    assert result.returncode == 0 and "rt-mer: hop 0.3 s rounded to 0.3125 s" in result.stderr, result.stderr
    path = config(tmp_path, "hop = 0.3\n")
    result = rt_mer("--config", path, "analyze", "--quiet", song)
    assert result.returncode == 0 and "rt-mer: hop 0.3 s rounded to 0.3125 s" in result.stderr
    result = rt_mer("analyze", "--quiet", song, "--hop", "0.25")                # exact: nothing to say
    assert result.returncode == 0 and "rounded" not in result.stderr
    # just over the window, but a whole window once rounded: the rounded hop is what counts
    over = f"{WINDOW_SECONDS + 0.02:g}"
    result = rt_mer("analyze", "--quiet", song, "--hop", over)
    assert result.returncode == 0 and f"hop {over} s rounded to {WINDOW_SECONDS:g} s" in result.stderr, result.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_remote_dashboard_stops_on_a_signal_as_run_does(tmp_path, signum):
    """`rt-mer dash` ends cleanly on Ctrl-C or SIGTERM with 128 + the
    signal, the status `run` and `osc` give, so scripts can tell a stop
    from a failure."""
    dash = subprocess.Popen([*CLI, "dash", f"ipc://{tmp_path}/nobody"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    assert "Ctrl-C stops it" in dash.stderr.readline()      # said once the handlers are in place
    dash.send_signal(signum)
    assert dash.wait(timeout=20) == 128 + signum
    assert "Traceback" not in dash.stderr.read()


def test_a_recording_that_names_an_input_is_refused_before_anything_is_written(tmp_path, blip):
    """`--record` naming one of the files the run reads (itself, through a
    link, or the --config, --moods or --model file, or a file on standard
    input) is one line, and every input is left as it was."""
    song = tmp_path / "song.wav"
    song.write_bytes(blip.read_bytes())
    (tmp_path / "link.wav").symlink_to(song)
    os.link(song, tmp_path / "hard.wav")
    settings = config(tmp_path, "hop = 0.5\n")
    moods = tmp_path / "moods.toml"
    moods.write_text("calm = [0.5, -0.5]\n")
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not read: refused first")
    before = {path: path.read_bytes() for path in (song, settings, moods, model)}
    run = ["run", "--no-dash", "--pub", f"ipc://{tmp_path}/pub"]
    cases = [
        ([*run, "--file", song, "--record", song], f"--record {song} would overwrite the --file input {song}"),
        ([*run, "--file", song, "--record", tmp_path / "link.wav"], f"the --file input {song}"),
        ([*run, "--file", blip, "--file", tmp_path / "hard.wav", "--record", song], "the --file input"),
        (["--config", settings, *run, "--file", blip, "--record", settings], f"the --config input {settings}"),
        ([*run, "--file", blip, "--moods", moods, "--record", moods], f"the --moods input {moods}"),
        ([*run, "--file", blip, "--model", model, "--record", model], f"the --model input {model}"),
    ]
    for arguments, message in cases:
        line = one_error_line(rt_mer(*arguments))
        assert message in line, (arguments, line)
    with open(song, "rb") as stdin:
        line = one_error_line(rt_mer(*run, "--stdin", "--rate", "16000", "--channels", "1", "--record", song,
                                     stdin=stdin))
    assert line.endswith(f"--record {song} would overwrite standard input; write it to another file")
    assert {path: path.read_bytes() for path in before} == before


def test_version():
    from rt_mer import __version__
    result = rt_mer("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"rt-mer {__version__}", result


def help_text(*command):
    result = rt_mer(*command, "--help")
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())          # argparse wraps lines where it likes


def test_help_names_only_real_options_and_shows_defaults():
    run = help_text("run")
    assert "--demo" not in run
    for shown in ("--smooth {off,ema,one-euro} smoothing of published valence/arousal (raw values are "
                  "published too) (default: ema)", "smoothing time constant, s (default: 2.0)",
                  "payload encoding (default: json)", "(default: 10.0)"):
        assert shown in run, shown
    for command in ("listen", "dash"):
        assert "the rt-mer publisher" in help_text(command) and "(default: tcp://127.0.0.1:5556)" in help_text(command)


def test_devices_without_inputs_says_so_and_what_to_check(tmp_path):
    # PortAudio reaches PulseAudio through ALSA: with no server there, and no
    # sound card in the machine, there is no input at all.
    env = {**os.environ, "PULSE_SERVER": f"unix:{tmp_path}/no-server", "PULSE_RUNTIME_PATH": str(tmp_path)}
    result = rt_mer("devices", env=env)
    if "│" in result.stdout:                    # a table row: a sound card of the machine's own
        pytest.skip("this machine has audio inputs of its own")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("rt-mer: no audio inputs found: check that a microphone")
    assert "rt-mer demo" in result.stderr and result.stdout == ""


def test_a_reader_that_leaves_ends_the_output_quietly(song):
    """`rt-mer analyze ... | head` once head has gone: no traceback, and
    the status a shell gives a process that SIGPIPE ended."""
    process = subprocess.Popen([*CLI, "analyze", "--quiet", str(song)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.close()                      # the reader leaves before the first row
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 128 + signal.SIGPIPE, stderr
    assert "Traceback" not in stderr and "Exception" not in stderr and "error" not in stderr, stderr
