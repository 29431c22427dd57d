"""`studies.methods_small` in quick mode: every file written, report computed from the CSV."""

import pandas as pd
import pytest

from studies import methods_small


def test_methods_small_quick(tmp_path):
    out = methods_small.run(tmp_path / "study", quick=True)
    df = pd.read_csv(out / "results.csv")
    assert set(df.method) == set(methods_small.METHODS) and set(df.task) == set(methods_small.TASKS)
    assert len(df) == len(methods_small.METHODS) * len(methods_small.TASKS)
    sparse = df[df.method.isin(["static", "set", "snfs", "rigl"])]
    for task, g in sparse.groupby("task"):
        assert g.nonzeros.nunique() == 1                                   # same budget for every sparse method
    small = df[df.method == "small_dense"].set_index("task").nonzeros
    budget = sparse.groupby("task").nonzeros.first()
    # small-dense fits the budget: nonzeros + a 1-bit mask per weight (90% sparse: about 1.3 x nonzeros)
    assert all(0.5 * budget[t] < small[t] <= 1.36 * budget[t] for t in budget.index), (small, budget)
    assert (out / "methods_small.png").stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "QUICK MODE" in report and "RigL >= SET >= Static" in report
    row = df[(df.task == "digits_mlp") & (df.method == "rigl")].iloc[0]
    assert f"{row.eval_accuracy:.4f}" in report
    assert (out / "runs" / "digits_mlp" / "rigl" / "seed0" / "trace" / "trace.json").exists()
    # the learned-mask section: a row of balance.csv equals a direct compare of that run's trace
    from simulator.trace_run import compare_trace

    bal = pd.read_csv(out / "balance.csv")
    assert set(bal.method) == set(methods_small.BALANCE_METHODS) and len(bal) == 2 * len(methods_small.BALANCE_METHODS)
    b = bal[(bal.task == "digits_mlp") & (bal.method == "rigl")].iloc[0]
    c = compare_trace(out / "runs" / "digits_mlp" / "rigl" / "seed0" / "trace", methods_small.BALANCE_PRESET)
    assert b.run_cycles_real_over_random == pytest.approx(c["ratio"]["cycles"])
    fw = c["layers"][c["layers"]["pass"] == "forward"]
    assert b.worst_forward_real_over_random == pytest.approx(fw["ratio"].max())
    assert f"{b.run_cycles_real_over_random:.4f}" in report
    again = methods_small.run(tmp_path / "study", quick=True)              # finished runs are reused
    assert pd.read_csv(again / "results.csv")[["eval_loss"]].equals(df[["eval_loss"]])
