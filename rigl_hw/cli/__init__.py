"""`rigl-hw` command line: the top-level parser, `main()`, and the table of every subcommand's options.

One module per subcommand (flops, train, trace, simulate, map, hardware, export, study, demo), each
with `add_parser(sub)` and `run(args)`; each imports its package (torch, onnx, numba, dask) only
when it runs, so `rigl-hw --help` loads argparse alone. The shared convention lives in `_common`:
  - errors: one line `rigl-hw: error: ...` on stderr and exit code 2, for usage errors and for every
    expected failure (rigl_hw.errors); Ctrl-C exits 130; a bug keeps its traceback;
  - `--json` on every command that reports: exactly one JSON object on stdout, messages on stderr;
  - one spelling per option (older spellings stay accepted, hidden from --help); `--out` names a
    directory (DIR, RUN_DIR) or a file (FILE.csv, FILE.onnx), as its metavar says.
`python -m rigl_hw` and the `rigl-hw` console script both call `main`.
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

# the subcommand modules (importing `.map` makes `map` a name of this module: the builtin is not used here)
from . import demo, export, flops, hardware, map, simulate, study, trace, train
from ._common import (EXIT_BAD_INPUT, EXIT_INTERRUPTED, CliError, Parser, parse_and_run, report_error, run_guarded,
                      standalone_main)

__all__ = ["main", "build_parser", "option_table", "format_option_table", "Parser", "CliError", "run_guarded",
           "report_error", "standalone_main", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED"]

SUBCOMMANDS = (flops, train, trace, simulate, map, hardware, export, study, demo)   # the order of `--help`


def build_parser() -> argparse.ArgumentParser:
    """The `rigl-hw` parser with every subcommand."""
    parser = Parser(prog="rigl-hw",
                    description="Sparse training (RigL and baselines) and what it costs on sparse hardware.")
    parser.add_argument("--version", action="version", version="rigl-hw 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and run one command; every expected failure is one line on stderr and exit 2."""
    return parse_and_run(build_parser(), argv)


# ------------------------------------------------------------------------------------ option table
def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    """(command path, parser) of every leaf command: 'flops', 'trace synth', 'hardware show', ..."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(prefix.strip(), parser)]
    out = []
    for name, p in subs[0].choices.items():
        out += _commands(p, f"{prefix} {name}")
    return out


def option_table(parser: argparse.ArgumentParser | None = None) -> list[dict[str, Any]]:
    """One row per option (or positional) of every command: command, option, aliases (hidden older
    spellings), metavar, choices, default, required, help. Built from the parsers themselves."""
    rows = []
    for command, p in _commands(parser or build_parser()):
        shown: dict[str, dict[str, Any]] = {}
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            if a.help == argparse.SUPPRESS:           # a hidden alias: listed with its option
                shown[a.dest]["aliases"].extend(a.option_strings)
                continue
            row = {"command": command, "option": a.option_strings[0] if a.option_strings else a.dest.upper(),
                   "aliases": list(a.option_strings[1:]), "metavar": a.metavar,
                   "choices": list(a.choices) if a.choices is not None else None,
                   "default": None if a.default in (None, argparse.SUPPRESS) else a.default,
                   "required": bool(a.required), "flag": a.nargs == 0, "help": a.help}
            if not a.option_strings and a.metavar:
                row["option"] = a.metavar
            shown[a.dest] = row
            rows.append(row)
    return rows


def format_option_table(rows: list[dict[str, Any]] | None = None) -> str:
    """`option_table()` as a Markdown table (docs/cli.md holds its output; a test keeps them equal)."""
    lines = ["| command | option | value | also accepted | help |", "|---|---|---|---|---|"]
    for r in rows if rows is not None else option_table():
        if r["flag"]:
            value = ""
        elif r["choices"] is not None:
            value = "|".join(str(c) for c in r["choices"])
        else:
            value = r["metavar"] or r["option"].lstrip("-").replace("-", "_").upper()
        if not r["option"].startswith("-"):
            value = "|".join(str(c) for c in r["choices"]) if r["choices"] is not None else ""
        help_ = (r["help"] or "").replace("%%", "%").replace("|", "\\|")
        if r["required"] and r["option"].startswith("-"):
            help_ += " (required)"
        value = value.replace("|", "\\|")
        option = r["option"].replace("|", "\\|")
        lines.append(f"| {r['command']} | `{option}` | {'`' + value + '`' if value else ''} | "
                     f"{', '.join('`' + a + '`' for a in r['aliases'])} | {help_} |")
    return "\n".join(lines) + "\n"
