"""Property test (issue 12): CLI commands run in-process on generated bad arguments never raise a
traceback; each ends with exit 2 and exactly one stderr line `rigl-hw: error: ...`, and leaves no
output behind. Each example takes a valid command and replaces one option's value with a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rigl_hw.cli import main

BAD_NUMBERS = ["0", "-1", "-3", "nan", "inf", "-inf", "1e400", "1e30", "abc", "", " ", "1.5.2", "0x10",
               "9" * 400, "\u00e9", "--", "1e-400"]
BAD_INTS = ["0", "-1", "-7", "abc", "", "1.5", "nan", "1e9999", "9" * 30]
BAD_FRACTIONS = ["1", "1.0", "2", "-0.1", "nan", "inf", "x", "1e9", ""]
BAD_NAMES = ["", "nope", "../../etc/passwd", "\u00e9\u00e9", "x" * 300, "resnet50;rm", "\x7f"]


def _bad_paths(tmp: Path) -> list[str]:
    garbage = tmp / "garbage.bin"
    garbage.write_bytes(b"\x00\xff" * 64)
    text = tmp / "text.txt"
    text.write_text("hello\n")
    (tmp / "emptydir").mkdir(exist_ok=True)
    return [str(tmp / "missing"), str(garbage), str(text), str(tmp / "emptydir"), "/", "/proc/self/mem",
            str(tmp / ("y" * 300)), ""]


def commands(tmp: Path, trace: Path, ckpt: Path) -> dict[str, tuple[list[str], dict[str, list[str]]]]:
    """command -> (valid argv, option -> bad values)."""
    paths = _bad_paths(tmp)
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
                   "--batch-size": BAD_INTS, "--lr": ["-1", "nan", "inf", "x", "0"], "--optimizer": BAD_NAMES,
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


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from export.checkpoint import make_checkpoint

    base = tmp_path_factory.mktemp("prop")
    trace = base / "trace"
    assert main(["trace", "synth", "--model", "mlp", "--distribution", "erk", "--sparsity", "0.9", "--steps", "40",
                 "--delta-t", "10", "--t-end", "30", "--batch", "4", "--out", str(trace)]) == 0
    ckpt = make_checkpoint(base / "c.pt", "mlp", sparsity=0.5)
    return base, trace, Path(ckpt)


@st.composite
def bad_invocation(draw, table):
    name = draw(st.sampled_from(sorted(table)))
    argv, bad = table[name]
    option = draw(st.sampled_from(sorted(bad)))
    value = draw(st.sampled_from(bad[option]))
    return mutate(argv, option, value)


def test_generated_bad_arguments_never_traceback(inputs, capsys):
    base, trace, ckpt = inputs
    work = base / "work"
    work.mkdir(exist_ok=True)
    table = commands(work, trace, ckpt)
    seen: list[list[str]] = []

    @settings(max_examples=120, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(bad_invocation(table))
    def check(argv):
        seen.append(argv)
        code = main(argv)                 # an unexpected exception would propagate: the test fails
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert "Traceback" not in err, (argv, err)
        assert code == 2, (argv, code, err)
        assert len(lines) == 1 and lines[0].startswith("rigl-hw: error: "), (argv, err)
        leftovers = [p for p in work.rglob("*") if p.name.endswith(".tmp") or p.name in ("o.csv", "m.onnx", "out")]
        assert not leftovers, (argv, leftovers)

    check()
    assert len(seen) >= 60
