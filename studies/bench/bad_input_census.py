"""Census of bad and hostile inputs across every subcommand (issue 12): how each one ends.

Runs each case in-process (`rigl_hw.cli.main`, with a 120 s alarm) or, where a process must die or be
limited, in a subprocess, and sorts the outcome:
  clean error   exit 2, exactly one stderr line `rigl-hw: error: ...`, no traceback
  traceback     an exception escaped, or "Traceback" on stderr
  exit 0        the bad input was accepted
  hang          the alarm or the subprocess timeout fired
  data loss     an input file changed (sha256 before/after)
  partial file  an output or a temp file was left behind by a failed command
Cases: every (option, bad value) of the argument table below (the property test in
tests/test_cli_properties.py draws from the same table), I/O faults at write and rename (ENOSPC,
EROFS, EFBIG, ENAMETOOLONG) for each writing command, RLIMIT_FSIZE, truncated and bit-flipped trace
and checkpoint files, edited trace arrays, NaN and unknown-model checkpoints, bad hardware files,
self-overwrite, divergence, a 512 MiB memory limit, and a SIGKILL during a checkpoint write.

Run: PYTHONPATH=. .venv/bin/python studies/bench/bad_input_census.py [--json] [--show all|bad|none] [--timeout S]
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
if __name__ == "__main__":   # run as a script: studies/bench/simulator.py must not shadow the simulator package
    sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

# ------------------------------------------------------------------------------ the argument table
BAD_NUMBERS = ["0", "-1", "-3", "nan", "inf", "-inf", "1e400", "1e30", "abc", "", " ", "1.5.2", "0x10",
               "9" * 400, "\u00e9", "--", "1e-400"]
BAD_INTS = ["0", "-1", "-7", "abc", "", "1.5", "nan", "1e9999"]
BAD_FRACTIONS = ["1", "1.0", "2", "-0.1", "nan", "inf", "x", "1e9", ""]
BAD_NAMES = ["", "nope", "../../etc/passwd", "\u00e9\u00e9", "x" * 300, "resnet50;rm", "\x7f"]


def bad_paths(tmp: Path) -> list[str]:
    """Paths that are not what a command expects: missing, garbage, text, a directory, special files."""
    garbage = tmp / "garbage.bin"
    garbage.write_bytes(b"\x00\xff" * 64)
    text = tmp / "text.txt"
    text.write_text("hello\n")
    (tmp / "emptydir").mkdir(exist_ok=True)
    return [str(tmp / "missing"), str(garbage), str(text), str(tmp / "emptydir"), "/", "/proc/self/mem",
            str(tmp / ("y" * 300)), ""]


def commands(tmp: Path, trace: Path, ckpt: Path) -> dict[str, tuple[list[str], dict[str, list[str]]]]:
    """command -> (valid argv, option -> bad values); positional arguments are named in capitals."""
    paths = bad_paths(tmp)
    out = str(tmp / "out")
    return {
        "flops": (["flops", "--model", "mlp", "--distribution", "erk", "--sparsity", "0.9", "--method", "rigl",
                   "--delta-t", "100"],
                  {"--model": BAD_NAMES, "--width": BAD_NUMBERS + ["1e6", "65"], "--distribution": BAD_NAMES,
                   "--sparsity": BAD_FRACTIONS, "--power": ["nan", "inf", "x"], "--method": BAD_NAMES,
                   "--delta-t": BAD_INTS, "--multiplier": ["0", "-1", "nan", "inf", "x"], "--steps": BAD_INTS,
                   "--batch": BAD_INTS, "--t-end": BAD_INTS}),
        "synth": (["trace", "synth", "--model", "mlp", "--distribution", "erk", "--sparsity", "0.9", "--steps", "40",
                   "--delta-t", "10", "--t-end", "30", "--batch", "4", "--out", out],
                  {"--model": BAD_NAMES, "--width": BAD_NUMBERS + ["1e6"], "--distribution": BAD_NAMES,
                   "--sparsity": BAD_FRACTIONS, "--steps": BAD_INTS + ["100000000"], "--delta-t": BAD_INTS,
                   "--alpha": ["0", "-1", "2", "nan", "x"], "--t-end": BAD_INTS + ["1000"], "--batch": BAD_INTS,
                   "--decay": BAD_NAMES, "--method": BAD_NAMES + ["pruning", "small_dense"],
                   "--seed": ["x", "1.5", ""], "--out": [str(trace / "trace.json"), paths[1], "/proc/x",
                                                         str(tmp / ("y" * 300))]}),
        "simulate": (["simulate", str(trace), "--hardware", "dense-32x32", "--out", str(tmp / "o.csv")],
                     {"TRACE": paths + [str(trace / "masks.npz")], "--hardware": BAD_NAMES + paths,
                      "--mode": BAD_NAMES, "--out": [str(trace / "masks.npz"), str(trace), str(tmp / "no" / "x.csv"),
                                                     str(tmp / ("y" * 300))],
                      "--plot": [str(trace / "trace.json"), str(tmp / "no" / "x.png")]}),
        "hardware": (["hardware", "show", "dense-32x32"], {"NAME": BAD_NAMES + paths}),
        "export": (["export", str(ckpt), "--out", str(tmp / "m.onnx")],
                   {"CKPT": paths, "--format": BAD_NAMES, "--out": [str(ckpt), str(tmp / "no" / "m.onnx"), "/"],
                    "--opset": ["x", "", "1.5"], "--abs-tol": ["x", ""]}),
        "study": (["study", "uniform-vs-erk", "--out", str(tmp / "never")],
                  {"NAME": BAD_NAMES, "--workers": BAD_INTS + ["100000"],
                   "--scheduler": ["not a url", "tcp://", "http://x:1", "tcp://h:99999", "::::", ""]}),
        "train": (["train", "--model", "mlp", "--dataset", "digits", "--steps", "2", "--out", str(tmp / "run")],
                  {"--model": BAD_NAMES, "--dataset": BAD_NAMES, "--method": BAD_NAMES,
                   "--distribution": BAD_NAMES, "--sparsity": BAD_FRACTIONS, "--steps": BAD_INTS,
                   "--batch": BAD_INTS, "--lr": ["-1", "nan", "inf", "x", "0"], "--optimizer": BAD_NAMES,
                   "--delta-t": BAD_INTS, "--alpha": ["0", "-1", "2", "nan"], "--decay": BAD_NAMES,
                   "--resume": paths}),
    }


def mutate(argv: list[str], option: str, value: str) -> list[str]:
    """argv with `option`'s value replaced (positional options are named in capitals)."""
    out = list(argv)
    positional = {"TRACE": 1, "NAME": 2 if argv[0] == "hardware" else 1, "CKPT": 1}
    if option in positional:
        out[positional[option]] = value
    elif option in out:
        out[out.index(option) + 1] = value
    else:
        out += [option, value]
    return out


# ------------------------------------------------------------------------------------ running a case
@dataclass
class Outcome:
    name: str
    kind: str                  # clean | traceback | exit0 | hang
    data_loss: bool = False
    partial: bool = False
    detail: str = ""


@dataclass
class Env:
    tmp: Path
    trace: Path
    run: Path
    ckpt: Path
    inputs: list[Path] = field(default_factory=list)


def digest(paths) -> dict[str, str]:
    out = {}
    for p in paths:
        p = Path(p)
        files = [p] if p.is_file() else (sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [])
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def leftovers(root: Path, outputs) -> list[Path]:
    temps = [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    return temps + [Path(o) for o in outputs if o and Path(o).exists()]


class _Alarm(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Alarm()


def run_inprocess(name: str, argv: list[str], inputs, outputs, root: Path,
                  patch: Callable[[], contextlib.AbstractContextManager] | None = None,
                  timeout_s: int = 120) -> Outcome:
    from rigl_hw.cli import main

    before = digest(inputs)
    err = io.StringIO()
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(timeout_s)
    code: int | None = None
    kind = ""
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
                (patch() if patch else contextlib.nullcontext()):
            code = main([str(a) for a in argv])
    except _Alarm:
        kind = "hang"
    except BaseException as e:  # noqa: BLE001 - an escaped exception is a traceback
        kind, err_text = "traceback", f"{type(e).__name__}: {e}"
        err.write(err_text)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    text = err.getvalue()
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not kind:
        if "Traceback" in text:
            kind = "traceback"
        elif code == 0:
            kind = "exit0"
        elif code == 2 and len(lines) == 1 and lines[0].startswith("rigl-hw: error: "):
            kind = "clean"
        else:
            kind = "traceback"
    left = leftovers(root, outputs) if kind != "exit0" else []
    return Outcome(name, kind, data_loss=digest(inputs) != before, partial=bool(left),
                   detail=(lines[-1] if lines else f"exit {code}")[:200] + (f" [left: {left[0].name}]" if left else ""))


@contextlib.contextmanager
def os_fault(code: int, where: str, root: Path):
    """Make every write (open for writing) or rename (os.replace) under `root` fail with `code`."""
    real_replace, real_open, real_bopen = os.replace, io.open, builtins.open

    def fail(path):
        return OSError(code, os.strerror(code), str(path))

    def replace(a, b, **k):
        if str(root) in str(b):
            raise fail(b)
        return real_replace(a, b, **k)

    def bad_open(file, mode="r", *a, **k):
        if isinstance(file, (str, os.PathLike)) and any(m in mode for m in "wax") and str(root) in str(file):
            raise fail(file)
        return real_open(file, mode, *a, **k)
    try:
        if where == "rename":
            os.replace = replace
        else:
            io.open = bad_open
            builtins.open = bad_open
        yield
    finally:
        os.replace, io.open, builtins.open = real_replace, real_open, real_bopen


# --------------------------------------------------------------------------------------- the cases
def prepare(tmp: Path) -> Env:
    from export.checkpoint import make_checkpoint
    from rigl_hw.cli import main

    trace = tmp / "inputs" / "trace"
    trace.parent.mkdir(parents=True)
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["trace", "synth", "--model", "mlp", "--distribution", "erk", "--sparsity", "0.9", "--steps",
                     "40", "--delta-t", "10", "--t-end", "30", "--batch", "4", "--out", str(trace)]) == 0
        run = tmp / "inputs" / "run"
        assert main(["train", "--model", "mlp", "--dataset", "digits", "--steps", "8", "--delta-t", "4",
                     "--out", str(run), "--no-progress"]) == 0
    ckpt = Path(make_checkpoint(tmp / "inputs" / "c.pt", "mlp", sparsity=0.5))
    return Env(tmp, trace, run, ckpt, [tmp / "inputs"])


def argument_cases(env: Env) -> list[tuple]:
    work = env.tmp / "work"
    work.mkdir(exist_ok=True)
    table = commands(work, env.trace, env.ckpt)
    cases = []
    for cmd, (argv, bad) in table.items():
        for opt, values in bad.items():
            for v in values:
                outs = [work / "o.csv", work / "m.onnx", work / "out", work / "run", work / "never"]
                cases.append((f"{cmd} {opt}={v[:24]!r}", mutate(argv, opt, v), env.inputs, outs, None))
    return cases


def fault_cases(env: Env) -> list[tuple]:
    out = env.tmp / "faults"
    out.mkdir(exist_ok=True)
    writers = {
        "trace synth": ["trace", "synth", "--model", "mlp", "--distribution", "erk", "--sparsity", "0.9",
                        "--steps", "40", "--delta-t", "10", "--t-end", "30", "--batch", "4", "--out", out / "t"],
        "simulate --out": ["simulate", env.trace, "--hardware", "dense-32x32", "--out", out / "o.csv"],
        "simulate --plot": ["simulate", env.trace, "--hardware", "dense-32x32", "--plot", out / "p.png"],
        "train": ["train", "--model", "mlp", "--dataset", "digits", "--steps", "4", "--out", out / "run",
                  "--no-progress"],
        "export": ["export", env.ckpt, "--out", out / "m.onnx"],
    }
    cases = []
    for wname, argv in writers.items():
        for code in (errno.ENOSPC, errno.EROFS, errno.EFBIG, errno.ENAMETOOLONG):
            for where in ("write", "rename"):
                outs = [out / "t", out / "o.csv", out / "p.png", out / "run", out / "m.onnx"]
                cases.append((f"{wname} {errno.errorcode[code]} at {where}", argv, env.inputs, outs,
                              lambda c=code, w=where: os_fault(c, w, out)))
    return cases


def corrupt_cases(env: Env) -> list[tuple]:
    import numpy as np
    import torch

    try:                                   # (the census also runs on trees from before checksums existed)
        from rigl_hw.checkpoint import content_checksum
    except ImportError:
        content_checksum = None

    base = env.tmp / "corrupt"
    base.mkdir()
    cases = []

    def trace_copy(name: str) -> Path:
        d = base / name
        shutil.copytree(env.trace if not name.startswith("real") else env.run / "trace", d)
        return d

    def sim(name, d):
        cases.append((name, ["simulate", d, "--hardware", "dense-32x32", "--out", base / f"{name}.csv"], [d],
                      [base / f"{name}.csv"], None))

    for dmg in ("truncate", "flip25", "flip50", "flip75", "empty"):
        d = trace_copy(f"npz-{dmg}")
        f = d / "masks.npz"
        b = bytearray(f.read_bytes())
        if dmg == "truncate":
            b = b[: len(b) // 2]
        elif dmg == "empty":
            b = bytearray()
        else:
            b[len(b) * int(dmg[4:]) // 100] ^= 0x10
        f.write_bytes(bytes(b))
        sim(f"masks.npz {dmg}", d)
    for dmg, text in (("not-utf8", b"\xff\xfe{"), ("not-json", b"{nope"), ("a-list", b"[1, 2]"),
                      ("huge-steps", None), ("zero-batch", None), ("transposed", None), ("no-layers", None)):
        d = trace_copy(f"json-{dmg}")
        if text is not None:
            (d / "trace.json").write_bytes(text)
        else:
            doc = json.loads((d / "trace.json").read_text())
            if dmg == "huge-steps":
                doc["total_steps"] = 10**20
            elif dmg == "zero-batch":
                doc["batch_size"] = 0
            elif dmg == "transposed":
                doc["layers"][0]["weight_shape"] = doc["layers"][0]["weight_shape"][::-1]
            else:
                doc["layers"] = []
            (d / "trace.json").write_text(json.dumps(doc))
        sim(f"trace.json {dmg}", d)
    for dmg in ("pointer", "index", "transposed-old", "pointer-old", "index-old", "negative-count"):
        d = trace_copy(f"real-{dmg}")
        arrays = dict(np.load(d / "masks.npz"))
        doc = json.loads((d / "trace.json").read_text())
        if dmg.endswith("-old"):
            doc.pop("checksums")
        if dmg.startswith("pointer"):
            arrays["changed_ptr_0"] = arrays["changed_ptr_0"].copy()
            arrays["changed_ptr_0"][1] += 1
        elif dmg.startswith("index"):
            arrays["changed_idx_0"] = arrays["changed_idx_0"].copy()
            arrays["changed_idx_0"][0] = 10**12
        elif dmg == "negative-count":
            arrays["dropped"] = -arrays["dropped"]
        else:
            doc["layers"][0]["weight_shape"] = doc["layers"][0]["weight_shape"][::-1]
        np.savez(d / "masks.npz", **arrays)
        (d / "trace.json").write_text(json.dumps(doc))
        if dmg != "transposed-old":       # same bytes, no checksum: not detectable (documented), not counted
            sim(f"real trace {dmg}", d)
    for dmg in ("truncate", "flip-data", "flip-pickle", "nan", "unknown-model", "empty"):
        r = base / f"run-{dmg}"
        shutil.copytree(env.run, r)
        f = r / "checkpoint.pt"
        b = bytearray(f.read_bytes())
        if dmg == "truncate":
            f.write_bytes(bytes(b[: len(b) * 2 // 3]))
        elif dmg == "flip-data":
            b[len(b) // 2] ^= 1
            f.write_bytes(bytes(b))
        elif dmg == "flip-pickle":
            b[b.index(b"data.pkl") + 120] ^= 0x20
            f.write_bytes(bytes(b))
        elif dmg == "empty":
            f.write_bytes(b"")
        else:
            obj = torch.load(f, weights_only=True)
            if dmg == "nan":
                obj["model_state"]["fc1.weight"][0, 0] = float("nan")
            else:
                obj["model"]["name"] = "resnet9000"
            if content_checksum is not None:
                obj["checksum"] = content_checksum(obj)
            torch.save(obj, f)
        cases.append((f"train --resume checkpoint {dmg}", ["train", "--resume", r, "--no-progress"], [r], [], None))
        cases.append((f"export checkpoint {dmg}", ["export", f, "--out", base / f"{dmg}.onnx"], [r],
                      [base / f"{dmg}.onnx"], None))
    preset = (ROOT / "simulator" / "presets" / "dense-32x32.toml").read_text()
    for dmg, text in (("not-utf8", b'name = "caf\xe9"\n'), ("rows-1e9", preset.replace("rows = 32", "rows = 1000000000")),
                      ("size-1e20", preset.replace("size_bytes = ", "size_bytes = 100000000000000000000#", 1)),
                      ("clock-1e30", preset.replace("clock_hz = 1.0e9", "clock_hz = 1.0e30")),
                      ("nested", "a = " + "[" * 5000 + "]" * 5000)):
        hw = base / f"hw-{dmg}.toml"
        hw.write_bytes(text if isinstance(text, bytes) else text.encode())
        cases.append((f"hardware {dmg}", ["simulate", env.trace, "--hardware", hw], [hw, env.trace], [], None))
        cases.append((f"hardware show {dmg}", ["hardware", "show", hw], [hw], [], None))
    return cases


def overwrite_cases(env: Env) -> list[tuple]:
    base = env.tmp / "overwrite"
    base.mkdir()
    t, r = base / "t", base / "r"
    shutil.copytree(env.trace, t)
    shutil.copytree(env.run, r)
    hw = base / "hw.toml"
    hw.write_bytes((ROOT / "simulator" / "presets" / "dense-32x32.toml").read_bytes())
    os.symlink(r / "checkpoint.pt", base / "link.onnx")
    ins = [t, r, hw]
    return [(f"self-overwrite {i}", a, ins, [], None) for i, a in enumerate([
        ["simulate", t, "--hardware", "dense-32x32", "--out", t / "masks.npz"],
        ["simulate", t, "--hardware", hw, "--out", hw],
        ["simulate", t, "--hardware", "dense-32x32", "--plot", t / "trace.json"],
        ["simulate", t, "--hardware", "dense-32x32", "--out", base / "x.csv", "--plot", base / "x.csv"],
        ["export", r / "checkpoint.pt", "--out", r / "checkpoint.pt"],
        ["export", r, "--out", r / "checkpoint.pt"],
        ["export", r / "checkpoint.pt", "--out", base / "link.onnx"],
        ["train", "--model", "mlp", "--dataset", "digits", "--steps", "2", "--out", r, "--no-progress"],
        ["trace", "synth", "--model", "mlp", "--distribution", "erk", "--sparsity", "0.9", "--steps", "40",
         "--delta-t", "10", "--t-end", "30", "--batch", "4", "--out", r],
    ])]


def value_cases(env: Env) -> list[tuple]:
    base = env.tmp / "values"
    base.mkdir()
    return [
        ("train --lr 1e30 (diverges)", ["train", "--model", "mlp", "--dataset", "digits", "--steps", "60", "--lr",
                                        "1e30", "--checkpoint-every", "10", "--out", base / "r1", "--no-progress"],
         env.inputs, [base / "r1"], None),
        ("train --steps 0", ["train", "--model", "mlp", "--dataset", "digits", "--steps", "0", "--out", base / "r2"],
         env.inputs, [base / "r2"], None),
        ("train --width 1e6", ["train", "--model", "mlp", "--dataset", "digits", "--steps", "2", "--width", "1e6",
                               "--out", base / "r3", "--no-progress"], env.inputs, [base / "r3"], None),
        ("flops resnet50 --width 1e6", ["flops", "--model", "resnet50", "--width", "1e6", "--distribution", "erk",
                                        "--sparsity", "0.9"], [], [], None),
        ("trace synth resnet50 --width 60", ["trace", "synth", "--model", "resnet50", "--width", "60", "--distribution",
                                             "erk", "--sparsity", "0.9", "--steps", "40", "--delta-t", "10", "--t-end",
                                             "30", "--batch", "4", "--out", base / "big"], [], [base / "big"], None),
    ]


def subprocess_cases(env: Env) -> list[Outcome]:
    """Cases that need their own process: a memory limit, a file-size limit, a SIGKILL mid-write."""
    py = sys.executable
    envv = {**os.environ, "PYTHONPATH": str(ROOT)}
    out: list[Outcome] = []
    base = env.tmp / "proc"
    base.mkdir()

    def classify(name, p, inputs_before, inputs, outputs, ok_exit0=False):
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        if "Traceback" in p.stderr:
            kind = "traceback"
        elif p.returncode == 0:
            kind = "clean" if ok_exit0 else "exit0"
        elif p.returncode == 2 and len(lines) == 1 and lines[0].startswith("rigl-hw: error: "):
            kind = "clean"
        else:
            kind = "traceback"
        left = leftovers(base, outputs) if kind != "exit0" and p.returncode != 0 else []
        out.append(Outcome(name, kind, digest(inputs) != inputs_before, bool(left), (lines[-1] if lines else "")[:200]))

    # 512 MiB address-space limit: simulate must finish or fail in one line, never hang
    code = ("import resource,sys; resource.setrlimit(resource.RLIMIT_AS,(512<<20,512<<20)); "
            f"from rigl_hw.cli import main; sys.exit(main(['simulate',{str(env.trace)!r},'--hardware','dense-32x32']))")
    before = digest([env.trace])
    try:
        p = subprocess.run([py, "-c", code], capture_output=True, text=True, timeout=180, env=envv)
        classify("simulate under a 512 MiB memory limit", p, before, [env.trace], [], ok_exit0=True)
    except subprocess.TimeoutExpired:
        out.append(Outcome("simulate under a 512 MiB memory limit", "hang"))
    # RLIMIT_FSIZE: writes past 4 KiB fail with EFBIG (Python ignores SIGXFSZ)
    code = ("import resource,sys; resource.setrlimit(resource.RLIMIT_FSIZE,(4096,4096)); "
            "from rigl_hw.cli import main; sys.exit(main(['trace','synth','--model','mlp','--distribution','erk',"
            f"'--sparsity','0.9','--steps','400','--delta-t','10','--t-end','30','--batch','4','--out',{str(base / 'fs')!r}]))")
    p = subprocess.run([py, "-c", code], capture_output=True, text=True, timeout=180, env=envv)
    classify("trace synth past RLIMIT_FSIZE", p, {}, [], [base / "fs"])
    # SIGKILL during the second checkpoint write, then resume: nothing lost, no temp file left
    run = base / "run"
    argv = ["train", "--model", "mlp", "--dataset", "digits", "--steps", "12", "--checkpoint-every", "4",
            "--delta-t", "4", "--out", str(run), "--no-progress"]
    killer = ("import os,signal,sys\nimport rigl_hw.checkpoint as ck\nn=[0]\nreal=os.fsync\n"
              "def f(fd):\n    n[0]+=1\n    if n[0]==2: os.kill(os.getpid(), signal.SIGKILL)\n    return real(fd)\n"
              f"ck.os.fsync=f\nfrom rigl_hw.cli import main\nsys.exit(main({argv!r}))\n")
    subprocess.run([py, "-c", killer], capture_output=True, text=True, timeout=180, env=envv)
    p = subprocess.run([py, "-m", "rigl_hw", "train", "--resume", str(run), "--no-progress"], capture_output=True,
                       text=True, timeout=180, env=envv)
    from rigl_hw.checkpoint import load_checkpoint

    lost = p.returncode != 0 or load_checkpoint(run)["step"] != 12
    rows = (run / "metrics.csv").read_text().strip().splitlines() if (run / "metrics.csv").exists() else []
    left = [q for q in base.rglob("*") if q.name.endswith(".tmp")]
    out.append(Outcome("SIGKILL during a checkpoint write, then --resume", "clean" if p.returncode == 0 else "traceback",
                       data_loss=lost or len(rows) != 13, partial=bool(left), detail=f"resume exit {p.returncode}"))
    return out


COUNT_KEYS = ("cases tried", "clean errors", "tracebacks", "exit 0 on bad input", "hangs", "data loss", "partial files")


def census(timeout_s: int = 120) -> tuple[dict[str, int], list[Outcome]]:
    tmp = Path(tempfile.mkdtemp(prefix="rigl-hw-census-"))
    try:
        env = prepare(tmp)
        results: list[Outcome] = []
        for group in (argument_cases, fault_cases, corrupt_cases, overwrite_cases, value_cases):
            for name, argv, inputs, outputs, patch in group(env):
                results.append(run_inprocess(name, argv, inputs, outputs, tmp, patch, timeout_s))
                for o in outputs:                 # each case starts from a clean slate
                    if o and Path(o).exists() and results[-1].kind == "exit0":
                        shutil.rmtree(o, ignore_errors=True) if Path(o).is_dir() else Path(o).unlink()
                for q in [q for q in tmp.rglob("*") if q.name.endswith(".tmp")]:
                    shutil.rmtree(q, ignore_errors=True) if q.is_dir() else q.unlink(missing_ok=True)
        results += subprocess_cases(env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    counts = dict(zip(COUNT_KEYS, (len(results), sum(r.kind == "clean" for r in results),
                                   sum(r.kind == "traceback" for r in results), sum(r.kind == "exit0" for r in results),
                                   sum(r.kind == "hang" for r in results), sum(r.data_loss for r in results),
                                   sum(r.partial for r in results))))
    return counts, results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the counts and every case as one JSON object")
    ap.add_argument("--show", choices=("all", "bad", "none"), default="bad", help="cases to list (default: bad ones)")
    ap.add_argument("--timeout", type=int, default=120, help="seconds before an in-process case counts as a hang")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    counts, results = census(args.timeout)
    if args.json:
        print(json.dumps({"counts": counts, "seconds": round(time.perf_counter() - t0, 1),
                          "cases": [r.__dict__ for r in results]}))
        return 0
    for r in results:
        bad = r.kind != "clean" or r.data_loss or r.partial
        if args.show == "all" or (args.show == "bad" and bad):
            flags = "".join([" DATA-LOSS" if r.data_loss else "", " PARTIAL" if r.partial else ""])
            print(f"{r.kind:<9}{flags} {r.name}: {r.detail}")
    print(" / ".join(COUNT_KEYS))
    print(" / ".join(str(counts[k]) for k in COUNT_KEYS) + f"   ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
