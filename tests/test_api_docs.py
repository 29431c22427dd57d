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
    assert {"flops", "train", "simulate", "export"} <= commands
    assert all(callable(getattr(api, n)) for n in ("flops", "train", "simulate", "export", "read_trace"))
