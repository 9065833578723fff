"""--config FILE.toml: option defaults from a file, the command line wins.

Read through what each sub-command's Parser recorded of its options (name,
destination, kind, type, choices), so a value in the file passes the same
checks as one typed on the command line."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from .options import Option, Parser, fail


def apply_config(parser: Parser, args: argparse.Namespace, argv: list[str] | None) -> argparse.Namespace:
    """Re-parse with the TOML file's values as defaults: the command line
    wins. Keys of other sub-commands are ignored; keys of none are an error."""
    values = read_config(args.config)
    command = parser.commands[args.command]
    known = {option.dest for sub in parser.commands.values() for option in sub.options}
    unknown = sorted(key for key in values if key not in known)
    if unknown:
        fail(f"{args.config}: unknown option(s): {', '.join(unknown)}")
    defaults, repeated = {}, {}
    for option in command.options:
        if option.dest in values:
            value = config_value(option, values[option.dest], args.config)
            (repeated if option.kind == "repeat" else defaults)[option.dest] = value
    command.set_defaults(**defaults)
    args = parser.parse_args(argv)
    for dest, value in repeated.items():       # a default list would be extended; the command line replaces it
        if getattr(args, dest) is None:
            setattr(args, dest, value)
    return args


def read_config(path: Path) -> dict:
    """The TOML file's keys as option destinations (hop, smooth_time, ...)."""
    import tomllib

    from ..paths import require_regular_file
    require_regular_file(path, UserError)           # a FIFO's read would wait for a writer
    try:
        values = tomllib.loads(path.read_text())
    except OSError as error:
        fail(f"{path}: cannot read ({error.strerror})")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        fail(f"{path}: not valid TOML ({error})")
    return {key.replace("-", "_"): value for key, value in values.items()}


def config_value(option: Option, value, path: Path):
    """A TOML value through its option's own type and choices, as if typed
    on the command line; a repeatable option takes a string or a list."""
    if option.kind == "flag":
        if not isinstance(value, bool):
            fail(f"{path}: {option.name} must be true or false, got {value!r}")
        return value
    repeatable = option.kind == "repeat"
    items = value if repeatable and isinstance(value, list) else [value]
    converted = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            wanted = "a value or a list of values" if repeatable else "one value"
            fail(f"{path}: {option.name} takes {wanted}, got {item!r}")
        try:
            converted.append(typed(option, str(item)))
        except ValueError as error:
            fail(f"{path}: {option.name}: {error}")
    return converted if repeatable else converted[0]


def typed(option: Option, text: str):
    """`text` as argparse makes an option's value: through its type, then
    checked against its choices; ValueError with argparse's wording."""
    value = text
    if option.type is not None:
        try:
            value = option.type(text)
        except argparse.ArgumentTypeError as error:
            raise ValueError(str(error)) from None
        except (TypeError, ValueError):
            name = getattr(option.type, "__name__", repr(option.type))
            raise ValueError(f"invalid {name} value: {text!r}") from None
    if option.choices is not None and value not in option.choices:
        raise ValueError(f"invalid choice: {value!r} (choose from {', '.join(map(repr, option.choices))})")
    return value
