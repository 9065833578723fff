"""The --config file knows every option of every command (rt_mer.cli.config)."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("command", ["analyze", "run", "demo", "devices", "hub", "listen", "dash", "osc", "web",
                                     "plot", "bench", "build-engine"])
def test_config_knows_every_option_a_command_takes(command):
    """What --config reads is what each command recorded of its options:
    every option its --help lists but --help itself, by its last name."""
    import re

    from rt_mer.cli import build_parser
    parser = build_parser().commands[command]
    columns = [re.match(r"  (-\S.*?)(?:  |$)", line) for line in parser.format_help().splitlines()]
    shown = {column[1].split(", ")[-1].split()[0] for column in columns if column} - {"--help"}
    assert {option.name for option in parser.options} == shown and (shown or command == "devices")
