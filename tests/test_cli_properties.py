"""Property test (issue 12): CLI commands run in-process on generated bad arguments never raise a
traceback; each ends with exit 2 and exactly one stderr line `rigl-hw: error: ...`, and leaves no
output behind. Each example takes a valid command and replaces one option's value with a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rigl_hw.cli import main

# one table for this test and the census script (every (option, bad value) pair is run there)
from studies.bench.bad_input_census import commands  # noqa: E402
from studies.bench.bad_input_census import mutate  # noqa: E402,F401


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
