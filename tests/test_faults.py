"""Fault injection (issue 12): I/O failures, corrupt files, self-overwrite, SIGKILL, stale caches.

Each failing case asserts exit 2, exactly one stderr line `rigl-hw: error: ...`, no traceback, the
inputs byte-for-byte unchanged and no partial output (no output file, no temp file left behind).
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rigl_hw.cli import main

ROOT = Path(__file__).resolve().parent.parent
FAULTS = [errno.ENOSPC, errno.EROFS, errno.EFBIG, errno.ENAMETOOLONG]
SYNTH = ["trace", "synth", "--model", "mlp", "--distribution", "erk", "--sparsity", "0.9", "--steps", "60",
         "--delta-t", "20", "--t-end", "40", "--batch", "8"]


def tree_digest(*paths: Path) -> dict[str, str]:
    """sha256 of every file under the given paths (the inputs), by relative path."""
    out = {}
    for p in paths:
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def temp_leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


def assert_clean_error(code: int, err: str, needle: str | None = None) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("rigl-hw: error: "), err
    assert "Traceback" not in err
    if needle:
        assert needle in err, err


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("inputs") / "trace"
    assert main([*SYNTH, "--out", str(d)]) == 0
    return d


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("inputs") / "run"
    assert main(["train", "--model", "mlp", "--dataset", "digits", "--steps", "8", "--delta-t", "4",
                 "--out", str(d), "--no-progress"]) == 0
    return d


def _raise(code: int, path) -> OSError:
    return OSError(code, os.strerror(code), str(path))


# --------------------------------------------------------------------- ENOSPC / EROFS / EFBIG / ENAMETOOLONG
@pytest.mark.parametrize("code", FAULTS, ids=[errno.errorcode[c] for c in FAULTS])
@pytest.mark.parametrize("where", ["rename", "write"])
def test_trace_synth_io_faults(tmp_path, capsys, monkeypatch, code, where):
    out = tmp_path / "t"
    if where == "rename":
        monkeypatch.setattr(os, "replace", lambda a, b, **k: (_ for _ in ()).throw(_raise(code, b)))
    else:
        real_open = io.open

        def bad_open(file, mode="r", *a, **k):
            if any(m in mode for m in "wax") and str(tmp_path) in str(file):
                raise _raise(code, file)
            return real_open(file, mode, *a, **k)
        monkeypatch.setattr(io, "open", bad_open)
        monkeypatch.setattr(builtins, "open", bad_open)
    c, err = run_cli(capsys, *SYNTH, "--out", out)
    monkeypatch.undo()
    assert_clean_error(c, err, os.strerror(code))
    assert not out.exists() and temp_leftovers(tmp_path) == []


@pytest.mark.parametrize("code", FAULTS, ids=[errno.errorcode[c] for c in FAULTS])
def test_simulate_out_faults(tmp_path, capsys, monkeypatch, trace_dir, code):
    before = tree_digest(trace_dir)
    out = tmp_path / "table.csv"
    monkeypatch.setattr(os, "replace", lambda a, b, **k: (_ for _ in ()).throw(_raise(code, b)))
    c, err = run_cli(capsys, "simulate", trace_dir, "--hardware", "dense-32x32", "--out", out)
    monkeypatch.undo()
    assert_clean_error(c, err, str(out))
    assert not out.exists() and temp_leftovers(tmp_path) == [] and tree_digest(trace_dir) == before


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_train_checkpoint_faults_leave_no_run_dir(tmp_path, capsys, monkeypatch, code):
    out = tmp_path / "run"
    monkeypatch.setattr(os, "replace", lambda a, b, **k: (_ for _ in ()).throw(_raise(code, b)))
    c, err = run_cli(capsys, "train", "--model", "mlp", "--dataset", "digits", "--steps", "4", "--out", out,
                     "--no-progress")
    monkeypatch.undo()
    assert_clean_error(c, err, os.strerror(code))
    assert not out.exists() and list(tmp_path.iterdir()) == []          # no half-made run directory


def test_export_write_fault(tmp_path, capsys, monkeypatch, run_dir):
    before = tree_digest(run_dir)
    out = tmp_path / "m.onnx"
    monkeypatch.setattr(os, "replace", lambda a, b, **k: (_ for _ in ()).throw(_raise(errno.ENOSPC, b)))
    c, err = run_cli(capsys, "export", run_dir / "checkpoint.pt", "--out", out)
    monkeypatch.undo()
    assert_clean_error(c, err)
    assert not out.exists() and temp_leftovers(tmp_path) == [] and tree_digest(run_dir) == before


def test_long_name_temp_suffix_does_not_overflow(tmp_path, capsys, trace_dir):
    out = tmp_path / ("x" * 250 + ".csv")     # 254 bytes: fine itself, a temp suffix would pass 255
    c, err = run_cli(capsys, "simulate", trace_dir, "--hardware", "dense-32x32", "--out", out)
    assert c == 0, err
    assert out.exists() and temp_leftovers(tmp_path) == []
    c, err = run_cli(capsys, "simulate", trace_dir, "--hardware", "dense-32x32", "--out", tmp_path / ("y" * 300))
    assert_clean_error(c, err, "File name too long")


def test_rlimit_fsize(tmp_path, capsys):
    """A real file-size limit (RLIMIT_FSIZE; Python ignores SIGXFSZ, so writes past it fail with EFBIG)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    argv = [*SYNTH[:-2], "--batch", "8", "--steps", "400", "--out", str(tmp_path / "t")]   # steps.csv ~ 8 KB
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        c = main(argv)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert_clean_error(c, capsys.readouterr().err, "File too large")
    assert not (tmp_path / "t").exists() and temp_leftovers(tmp_path) == []


# --------------------------------------------------------------------------------- corrupt files
def _copy_tree(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage", ["truncate", "flip_quarter", "flip_middle", "flip_three_quarters"])
def test_corrupt_masks_npz(tmp_path, capsys, trace_dir, damage):
    t = _copy_tree(trace_dir, tmp_path / "t")
    f = t / "masks.npz"
    data = bytearray(f.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        # bytes inside the compressed data of the largest array (a flip in an unused zip header field
        # changes nothing and reads fine, so positions are taken inside a member's data)
        import struct
        import zipfile

        with zipfile.ZipFile(f) as z:
            member = max(z.infolist(), key=lambda i: i.compress_size)
        name_len, extra_len = struct.unpack("<HH", data[member.header_offset + 26: member.header_offset + 30])
        start = member.header_offset + 30 + name_len + extra_len
        frac = {"flip_quarter": 0.25, "flip_middle": 0.5, "flip_three_quarters": 0.75}[damage]
        data[start + int(frac * member.compress_size)] ^= 0x10
    f.write_bytes(bytes(data))
    before = tree_digest(t)
    out = tmp_path / "o.csv"
    c, err = run_cli(capsys, "simulate", t, "--hardware", "dense-32x32", "--out", out)
    assert_clean_error(c, err)
    assert not out.exists() and tree_digest(t) == before


def test_trace_array_edits_are_caught(tmp_path, capsys, run_dir):
    """Same byte count, other meaning: a transposed layer, corrupted change pointers, out-of-range indices."""
    src = run_dir / "trace"
    arrays = dict(np.load(src / "masks.npz"))
    doc = json.loads((src / "trace.json").read_text())
    cases = {}
    t = json.loads(json.dumps(doc))
    t["layers"][0]["weight_shape"] = t["layers"][0]["weight_shape"][::-1]
    cases["transposed"] = (t, arrays, "checksum")
    a = dict(arrays)
    a["changed_ptr_0"] = a["changed_ptr_0"].copy()
    a["changed_ptr_0"][1] += 1
    cases["pointer"] = (doc, a, "checksum")
    b = dict(arrays)
    b["changed_idx_0"] = b["changed_idx_0"].copy()
    b["changed_idx_0"][0] = 10**9
    cases["index"] = (doc, b, "checksum")
    # the same edits in a trace written before checksums: the consistency checks catch them
    old = {k: v for k, v in doc.items() if k != "checksums"}
    cases["pointer_old"] = (old, a, "dropped + grown")
    cases["index_old"] = (old, b, "out of range")
    for name, (meta, arrs, needle) in cases.items():
        d = tmp_path / name
        d.mkdir()
        np.savez(d / "masks.npz", **arrs)
        (d / "trace.json").write_text(json.dumps(meta))
        (d / "steps.csv").write_bytes((src / "steps.csv").read_bytes())
        c, err = run_cli(capsys, "simulate", d, "--hardware", "dense-32x32")
        assert_clean_error(c, err, needle)


@pytest.mark.parametrize("damage", ["truncate", "flip_data", "flip_head"])
def test_corrupt_checkpoint_refused_by_resume_and_export(tmp_path, capsys, run_dir, damage):
    r = _copy_tree(run_dir, tmp_path / "run")
    f = r / "checkpoint.pt"
    data = bytearray(f.read_bytes())
    if damage == "truncate":
        data = data[: len(data) * 2 // 3]
    elif damage == "flip_data":
        data[len(data) // 2] ^= 0x01           # inside a weight tensor: only the checksum sees it
    else:                                       # inside the pickled structure (data.pkl comes first)
        data[data.index(b"data.pkl") + 120] ^= 0x20
    f.write_bytes(bytes(data))
    before = tree_digest(r)
    c, err = run_cli(capsys, "train", "--resume", r, "--no-progress")
    assert_clean_error(c, err)
    c, err = run_cli(capsys, "export", f, "--out", tmp_path / "m.onnx")
    assert_clean_error(c, err)
    assert tree_digest(r) == before and not (tmp_path / "m.onnx").exists()


def test_nan_weights_and_unknown_model_refused(tmp_path, capsys, run_dir):
    import torch

    from rigl_hw.checkpoint import content_checksum

    for kind in ("nan", "model"):
        r = _copy_tree(run_dir, tmp_path / kind)
        obj = torch.load(r / "checkpoint.pt", weights_only=True)
        if kind == "nan":
            obj["model_state"]["fc1.weight"][0, 0] = float("nan")
        else:
            obj["model"]["name"] = "resnet9000"
        obj["checksum"] = content_checksum(obj)       # a consistent file: the content check must refuse it
        torch.save(obj, r / "checkpoint.pt")
        c, err = run_cli(capsys, "train", "--resume", r, "--no-progress")
        assert_clean_error(c, err, "non-finite" if kind == "nan" else "resnet9000")
        c, err = run_cli(capsys, "export", r / "checkpoint.pt", "--out", tmp_path / "m.onnx")
        assert_clean_error(c, err, "non-finite" if kind == "nan" else "resnet9000")


def test_hardware_not_utf8(tmp_path, capsys, trace_dir):
    hw = tmp_path / "hw.toml"
    hw.write_bytes(b'name = "caf\xe9"\n')
    c, err = run_cli(capsys, "simulate", trace_dir, "--hardware", hw)
    assert_clean_error(c, err, "not UTF-8")


# ------------------------------------------------------------------------------------ self-overwrite
def test_self_overwrite_refused(tmp_path, capsys, trace_dir, run_dir):
    t = _copy_tree(trace_dir, tmp_path / "t")
    r = _copy_tree(run_dir, tmp_path / "r")
    hw = tmp_path / "hw.toml"
    hw.write_bytes((ROOT / "simulator" / "presets" / "dense-32x32.toml").read_bytes())
    os.symlink(r / "checkpoint.pt", tmp_path / "link.onnx")
    before = tree_digest(t, r, hw)
    for argv in (["simulate", t, "--hardware", "dense-32x32", "--out", t / "masks.npz"],
                 ["simulate", t, "--hardware", hw, "--out", hw],
                 ["simulate", t, "--hardware", "dense-32x32", "--plot", t / "trace.json"],
                 ["export", r / "checkpoint.pt", "--out", r / "checkpoint.pt"],
                 ["export", r, "--out", r / "checkpoint.pt"],
                 ["export", r / "checkpoint.pt", "--out", tmp_path / "link.onnx"]):
        c, err = run_cli(capsys, *argv)
        assert_clean_error(c, err, "would overwrite the input")
    assert tree_digest(t, r, hw) == before


# ---------------------------------------------------------------------------- SIGKILL mid-write
KILLER = """
import os, signal, sys
import rigl_hw.checkpoint as ck
calls = {{"n": 0}}
real = os.fsync
def fsync(fd):
    calls["n"] += 1
    if calls["n"] == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)      # mid-write: the temp file is on disk, not yet renamed
    return real(fd)
ck.os.fsync = fsync
from rigl_hw.cli import main
sys.exit(main({argv!r}))
"""


@pytest.mark.parametrize("kill_at", [1, 2], ids=["first-checkpoint", "second-checkpoint"])
def test_sigkill_during_checkpoint_write_then_restart(tmp_path, capsys, kill_at):
    run = tmp_path / "run"
    argv = ["train", "--model", "mlp", "--dataset", "digits", "--steps", "12", "--checkpoint-every", "4",
            "--delta-t", "4", "--out", str(run), "--no-progress"]
    p = subprocess.run([sys.executable, "-c", KILLER.format(kill_at=kill_at, argv=argv)], capture_output=True,
                       text=True, timeout=180, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert temp_leftovers(tmp_path)                           # the kill left its temp file/directory
    if kill_at == 1:
        assert not run.exists()                               # the run directory never appeared half made
        assert main(argv) == 0                                # a fresh start works and cleans up
    else:
        from rigl_hw.checkpoint import load_checkpoint

        assert load_checkpoint(run)["step"] == 4              # the previous checkpoint is intact
        assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert temp_leftovers(tmp_path) == []
    from rigl_hw.checkpoint import load_checkpoint

    assert load_checkpoint(run)["step"] == 12
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 13 and rows[0].startswith("step,")    # header + one row per step, no gaps


# ------------------------------------------------------------------------------ divergence
def test_divergence_stops_with_one_line_and_keeps_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    import rigl_hw.train as train_mod

    real = train_mod.loss_of
    calls = {"n": 0}

    def poisoned(data, logits, y):         # finite for 6 steps, then NaN for ever
        calls["n"] += 1
        loss = real(data, logits, y)
        return loss if calls["n"] <= 6 else loss * float("nan")

    monkeypatch.setattr(train_mod, "loss_of", poisoned)
    run = tmp_path / "run"
    c, err = run_cli(capsys, "train", "--model", "mlp", "--dataset", "digits", "--steps", "40", "--checkpoint-every",
                     "4", "--out", run, "--no-progress")
    assert_clean_error(c, err, "training diverged")
    assert "10 steps in a row" in err and "last good checkpoint" in err
    from rigl_hw.checkpoint import load_checkpoint

    assert load_checkpoint(run)["step"] == 4            # the checkpoint at step 8 would be mid-divergence
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 5                               # header + steps 0..3, matching the checkpoint


# ----------------------------------------------------------------------- edited file behind the cache
def test_sweep_cache_sees_an_edited_hardware_file(tmp_path, monkeypatch, capsys):
    from studies import sweep

    hw = tmp_path / "hw.toml"
    preset = (ROOT / "simulator" / "presets" / "dense-32x32.toml").read_text()
    hw.write_text(preset)
    points = [{"preset": str(hw), "model": "mlp"}]
    fn = sweep.flops_point
    salt = sweep.CACHE_SALT + ":" + fn.__module__ + "." + fn.__qualname__
    cache = tmp_path / "cache"
    cache.mkdir()
    key = sweep.point_key(points[0], salt)
    (cache / f"{key}.json").write_text(json.dumps({"point": points[0], "result": {"clock": 1}}))

    def no_cluster(*a, **k):
        raise sweep.SweepError("would compute")
    monkeypatch.setattr(sweep, "_client", no_cluster)
    res = sweep.run_sweep(fn, points, cache, progress=False)
    assert res.cached == 1 and res.rows[0]["clock"] == 1                  # unchanged file: reused
    assert "reused 1" in capsys.readouterr().err
    hw.write_text(preset.replace("clock_hz = 1.0e9", "clock_hz = 2.0e9").replace("clock_hz = 1e9", "clock_hz = 2e9"))
    assert sweep.point_key(points[0], salt) != key                         # content, not path
    with pytest.raises(sweep.SweepError, match="would compute"):           # edited file: recomputed
        sweep.run_sweep(fn, points, cache, progress=False)
    monkeypatch.setattr(sweep, "_SOURCE_HASH", "different-code")
    hw.write_text(preset)
    assert sweep.point_key(points[0], salt) != key                         # a code change invalidates too


def test_bad_workers_and_scheduler_refused_before_start(capsys):
    for argv in (["--workers", "0"], ["--workers", "-3"], ["--workers", "100000"], ["--scheduler", "not a url"],
                 ["--scheduler", "tcp://host"]):
        c, err = run_cli(capsys, "study", "uniform-vs-erk", "--out", "/nonexistent/never/made", *argv)
        assert_clean_error(c, err)
