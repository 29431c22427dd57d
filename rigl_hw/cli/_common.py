"""The CLI's one convention, shared by every subcommand module: parser, error path, value types, output.

- Errors: one line `rigl-hw: error: ...` on stderr, exit code 2 (`EXIT_BAD_INPUT`), for usage errors
  (`Parser.error`) and for every expected failure while a command runs (`run_guarded`, using
  rigl_hw.errors); anything else is a bug and keeps its traceback. Ctrl-C: exit 130.
- `--json` (`add_json`): exactly one JSON object on stdout (`print_json`), nothing else there.
- One spelling per option; an older spelling stays accepted as a hidden alias (`add_alias`).
argparse only: importing this module imports neither numpy nor torch.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Callable, Sequence

from ..errors import EXIT_BAD_INPUT, RiglHwError, user_message

EXIT_INTERRUPTED = 130


class CliError(RiglHwError):
    """A user-facing error: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's one error format: one line `rigl-hw: error: ...`, exit 2 (no usage dump)."""

    def error(self, message: str):  # type: ignore[override]
        where = self.prog[len("rigl-hw "):] if self.prog.startswith("rigl-hw ") else ""
        print(f"rigl-hw: error: {where + ': ' if where else ''}{message} (see `{self.prog} --help`)",
              file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """A value outside `choices`: "invalid choice: unknown <option> 'x'; choose from a, b, c"."""
        if action.choices is not None and value not in action.choices:
            if action.option_strings:
                what = action.option_strings[0].lstrip("-")
            elif action.metavar == "COMMAND":
                what = "command"
            else:                              # a positional: named by its command (`rigl-hw study X`)
                what = self.prog.split()[-1]
            raise argparse.ArgumentError(action, f"invalid choice: unknown {what} {value!r}; choose from "
                                                 + ", ".join(map(str, action.choices)))


# ------------------------------------------------------------------------------------ value types
def positive_int(text: str) -> int:
    """An integer > 0 (steps, batch, workers, intervals): 0 and negatives are refused, not defaulted."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {v}")
    return v


def finite_float(text: str) -> float:
    """A finite number (nan and inf are refused)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def input_shape(args: argparse.Namespace) -> tuple[int, ...] | None:
    """The parsed `--input-shape` of `args` (None when absent)."""
    from ..user_model import parse_input_shape

    return parse_input_shape(getattr(args, "input_shape", None))


# ------------------------------------------------------------------------------------ options
INPUT_SHAPE_HELP = ("per-sample input shape (no batch dimension) of a package.module:factory model, "
                    "C,H,W for images or F for features; for FILE.onnx: fills symbolic dimensions")


def add_input_shape(p: argparse.ArgumentParser, **kw: Any) -> argparse.Action:
    """`--input-shape C,H,W|F`, the same on every command that takes `--model`."""
    return p.add_argument("--input-shape", default=None, metavar="C,H,W|F", help=INPUT_SHAPE_HELP, **kw)


def add_json(p: argparse.ArgumentParser) -> argparse.Action:
    """`--json`: the command's report as exactly one JSON object on stdout."""
    return p.add_argument("--json", action="store_true",
                          help="print the report as exactly one JSON object on stdout (messages stay on stderr)")


def add_alias(p: argparse.ArgumentParser, alias: str, of: argparse.Action) -> argparse.Action:
    """Accept `alias` as a hidden second spelling of option `of` (same destination, type and choices)."""
    return p.add_argument(alias, dest=of.dest, type=of.type, choices=of.choices, nargs=of.nargs,
                          metavar=of.metavar, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def print_json(obj: Any) -> None:
    """One JSON object on one line of stdout (Paths and numpy scalars as their str/number)."""
    def default(o: Any) -> Any:
        if hasattr(o, "item"):
            return o.item()
        return str(o)
    print(json.dumps(obj, default=default))


def say(msg: str) -> None:
    """A message for the user on stderr (stdout is for the report / JSON)."""
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ running
def report_error(e: BaseException) -> int | None:
    """Print the one-line message of an expected failure and return exit code 2; None for a bug."""
    msg = user_message(e)
    if msg is None:
        return None
    print(f"rigl-hw: error: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run_guarded(args: argparse.Namespace) -> int:
    """Run `args.func(args)`; an expected failure (rigl_hw.errors) becomes one line on stderr and exit 2,
    Ctrl-C exit 130; an unexpected exception keeps its traceback (it is a bug)."""
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("rigl-hw: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `rigl-hw hardware show X | head`: the reader left, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # noqa: BLE001 - mapped to a one-line message if it is an expected failure
        code = report_error(e)
        if code is None:
            raise
        return code


def parse_and_run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse `argv` and run the chosen command under `run_guarded`; --help / --version return 0."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:      # --help / --version (0) or a usage error (2, already printed)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_BAD_INPUT)
    return run_guarded(args)


def standalone_main(prog: str, description: str, add_arguments: Callable[[argparse.ArgumentParser], Any],
                    run: Callable[[argparse.Namespace], int], argv: Sequence[str] | None) -> int:
    """A one-command entry point (`python -m rigl_hw.train`, `python -m export.cli`) with the same
    options, errors and exit codes as the `rigl-hw` subcommand."""
    parser = Parser(prog=prog, description=description)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parse_and_run(parser, argv)
