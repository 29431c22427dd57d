"""The CLI's option surface, walked from the parsers themselves: every option has help, closed sets have
`choices=` (equal to the package constants they mirror), one spelling per option across commands
(older spellings hidden but accepted), `--json` on every command, `--out` says file or directory,
docs/cli.md holds the current option table, and building the parser imports nothing heavy."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rigl_hw.cli import _commands, build_parser, format_option_table, main, option_table

ROOT = Path(__file__).resolve().parents[1]

# destinations whose values form a closed set, on whichever command has them
CLOSED = {"distribution", "method", "decay", "dataset", "optimizer", "lr_schedule", "device", "mode", "objective",
          "pass_name", "baseline", "format", "name"}
OPEN = {("hardware show", "name")}          # a preset name or a TOML path
CONCEPT = {"batch_size": "batch"}           # TrainConfig's field name for the CLI's --batch


def _leaves():
    return _commands(build_parser())


def _visible(p: argparse.ArgumentParser):
    return [a for a in p._actions if not isinstance(a, argparse._HelpAction) and a.help != argparse.SUPPRESS]


def test_every_option_has_help_and_every_parser_formats():
    for command, p in _leaves():
        p.format_help()                      # a stray % in a help string fails here
        for a in _visible(p):
            assert a.help and len(a.help) > 8, (command, a.option_strings or a.dest)


def test_closed_sets_have_choices():
    listed = re.compile(r"\b[a-z_]+ \| [a-z_]+\b")      # "a | b | c" written in a help string
    for command, p in _leaves():
        for a in _visible(p):
            if a.dest in CLOSED and (command, a.dest) not in OPEN and a.nargs != 0:
                assert a.choices is not None, (command, a.option_strings or a.dest)
            if a.choices is None and a.nargs != 0:
                assert not listed.search(a.help), (command, a.option_strings, a.help)


def test_choices_equal_their_sources():
    from export.onnx_export import FORMATS
    from rigl_hw import data, device, distributions, flops, schedules, trace_synth, train_config
    from rigl_hw.cli import _choices as c
    from simulator import engine, mapped, mapper, nest
    from studies.index import STUDIES

    assert c.DISTRIBUTIONS == distributions.DISTRIBUTIONS and c.METHODS == flops.METHODS
    assert c.SYNTH_METHODS == trace_synth.SYNTH_METHODS and c.DECAY_SCHEDULES == schedules.DECAY_SCHEDULES
    assert c.DATASETS == data.DATASETS and c.DEVICES == device.DEVICES
    assert c.OPTIMIZERS == train_config.OPTIMIZERS and c.LR_SCHEDULES == train_config.LR_SCHEDULES
    assert c.SIM_MODES == (*engine.MODES, "compare") and c.MAPPINGS == mapped.MAPPINGS
    assert c.OBJECTIVES == mapper.OBJECTIVES == engine.OBJECTIVES and c.PASSES == nest.PASSES
    assert c.EXPORT_FORMATS == FORMATS and c.STUDY_NAMES == (*STUDIES, "all")
    from rigl_hw.methods import METHODS

    assert set(c.METHODS) == set(METHODS)


def test_one_spelling_per_option():
    spellings: dict[str, set[str]] = {}
    dests: dict[str, set[str]] = {}
    for command, p in _leaves():
        for a in _visible(p):
            if not a.option_strings:
                continue
            assert len(a.option_strings) == 1, (command, a.option_strings)   # aliases are hidden, not shown
            concept = CONCEPT.get(a.dest, a.dest)
            spellings.setdefault(concept, set()).add(a.option_strings[0])
            dests.setdefault(a.option_strings[0], set()).add(concept)
    assert {k: v for k, v in spellings.items() if len(v) > 1} == {}
    assert {k: v for k, v in dests.items() if len(v) > 1} == {}
    assert "--batch-size" not in dests and "--batch" in dests


def test_hidden_aliases_are_accepted():
    parser = build_parser()
    new = parser.parse_args(["train", "--batch", "8", "--out", "r"])
    old = parser.parse_args(["train", "--batch-size", "8", "--out", "r"])
    assert new.batch_size == old.batch_size == 8
    a = parser.parse_args(["map", "--hardware", "dense-32x32", "--layer", "gemm M=2 N=2 K=2", "--mapping", "m.toml"])
    b = parser.parse_args(["map", "--hardware", "dense-32x32", "--layer", "gemm M=2 N=2 K=2", "--mapping-file",
                           "m.toml"])
    assert a.mapping_file == b.mapping_file == "m.toml"
    assert parser.parse_args(["train", "--out", "r"]).batch_size is None        # absent: still "not given"
    rows = {(r["command"], r["option"]): r for r in option_table()}
    assert rows[("train", "--batch")]["aliases"] == ["--batch-size"]
    assert rows[("map", "--mapping-file")]["aliases"] == ["--mapping"]
    assert "--batch-size" not in parser._subparsers._group_actions[0].choices["train"].format_help()


def test_every_command_reports_json_and_out_says_file_or_directory():
    kinds = {"DIR", "RUN_DIR", "FILE.csv", "FILE.onnx"}
    for command, p in _leaves():
        opts = {s: a for a in p._actions for s in a.option_strings}
        assert "--json" in opts and opts["--json"].nargs == 0, command
        if "--out" in opts:
            a = opts["--out"]
            assert a.metavar in kinds and a.help.startswith("output "), (command, a.metavar, a.help)
            is_dir = a.metavar.endswith("DIR")
            assert ("directory" in a.help) == is_dir and ("file" in a.help.split("(")[0]) == (not is_dir), command


def test_choice_errors_are_one_line_naming_the_choices(capsys):
    for argv, needle in [(["trace", "synth", "--model", "mlp", "--distribution", "erk", "--sparsity", "0.9",
                           "--steps", "4", "--delta-t", "2", "--t-end", "3", "--batch", "2", "--out", "x",
                           "--decay", "linear"], "unknown decay 'linear'; choose from cosine, constant, inverse_power"),
                         (["study", "nope", "--out", "x"], "unknown study 'nope'"),
                         (["bogus"], "unknown command 'bogus'"),
                         (["train", "--optimizer", "lion", "--out", "x"], "unknown optimizer 'lion'")]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("rigl-hw: error: ") and needle in err[0], (argv, err)


def test_docs_cli_md_holds_the_current_table():
    text = (ROOT / "docs" / "cli.md").read_text()
    begin, end = "<!-- option table: begin -->\n", "<!-- option table: end -->"
    assert begin in text and end in text
    table = text.split(begin, 1)[1].split(end, 1)[0]
    assert table == format_option_table(), ("docs/cli.md is stale; regenerate it with "
                                            "`python -c 'from rigl_hw.cli import format_option_table as f; "
                                            "print(f(), end=\"\")'`")


@pytest.mark.parametrize("code", [
    "import sys; from rigl_hw.cli import build_parser; build_parser(); "
    "print(sorted(m for m in ('numpy', 'torch', 'numba', 'pandas', 'onnx', 'dask') if m in sys.modules))",
])
def test_building_the_parser_imports_nothing_heavy(code):
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0 and p.stdout.strip() == "[]", (p.stdout, p.stderr)
    h = subprocess.run([sys.executable, "-m", "rigl_hw", "trace", "synth", "--help"], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert h.returncode == 0 and "--decay {cosine,constant,inverse_power}" in h.stdout and h.stderr == ""


def test_no_import_cycle_between_cli_modules():
    """Each subcommand module imports only the shared `_common`/`_choices`, never the package or a sibling."""
    for f in (ROOT / "rigl_hw" / "cli").glob("*.py"):
        if f.name in ("__init__.py", "__main__.py"):
            continue
        src = f.read_text()
        assert not re.search(r"^\s*from \. import|^\s*from rigl_hw\.cli import|^\s*from \.(?!_common|_choices)\w+ import",
                             src, re.M), f.name
