"""Every ```python block of docs/api.md runs, in order, in one namespace, in a fresh directory."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_api_md_examples_run(tmp_path, monkeypatch, capsys):
    import sys

    blocks = _blocks()
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))         # the user-model block edits sys.path
    namespace: dict = {"__name__": "api_md"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"docs/api.md block {i + 1}", "exec"), namespace)  # noqa: S102 - our own docs
    assert (tmp_path / "mlp.onnx").is_file() and (tmp_path / "pruned.onnx").is_file()
    sys.modules.pop("mynets", None)


def test_api_import_does_not_import_torch():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, rigl_hw.api; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_api_names_match_the_cli():
    from rigl_hw import api
    from rigl_hw.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert {"flops", "train", "simulate", "map", "export"} <= commands
    assert all(callable(getattr(api, n)) for n in ("flops", "train", "simulate", "map_layer", "map_model", "export",
                                                   "read_trace"))


def test_api_map_arguments_are_the_cli_options():
    """map_layer / map_model take the `rigl-hw map` options (dashes as underscores; --pass -> pass_name)."""
    import inspect

    from rigl_hw import api
    from rigl_hw.cli import build_parser

    p = build_parser()._subparsers._group_actions[0].choices["map"]
    cli = {a.dest for a in p._actions} - {"help", "json", "func"}
    got = (set(inspect.signature(api.map_layer).parameters) | set(inspect.signature(api.map_model).parameters))
    assert got == cli, (got ^ cli)
