"""`--json` on the commands that gained it (hardware list, trace synth, map with a user model, train,
study): exactly one JSON object on stdout, its figures checked against independent computations;
and `rigl-hw map --model module:factory` against the same layers given one by one with --layer."""

from __future__ import annotations

import json

import pytest

from rigl_hw.cli import main

REF = "test_user_model:make_net"   # conv 3x3 1->8 (pad 1) on 1x8x8, max-pool 2, linear 128->10 (tests/ on sys.path)
HW = "skip-bitmask-32x32"


def _one_object(capsys) -> dict:
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1, out[:400]
    obj = json.loads(out)
    assert isinstance(obj, dict)
    return obj


def test_hardware_list_json(capsys):
    from simulator.hardware import list_presets, load_hardware

    assert main(["hardware", "list", "--json"]) == 0
    rows = _one_object(capsys)["presets"]
    assert [r["name"] for r in rows] == list(list_presets())
    for r in rows:
        spec = load_hardware(r["name"])
        assert (r["rows"], r["cols"], r["dataflow"], r["sparsity"]) == \
            (spec.pe_array.rows, spec.pe_array.cols, spec.dataflow, spec.sparsity.mode)


def test_trace_synth_json_summary(tmp_path, capsys):
    from rigl_hw.trace import read_trace
    from rigl_hw.zoo import model_allocation

    out = tmp_path / "t"
    assert main(["trace", "synth", "--model", "mlp", "--distribution", "erk", "--sparsity", "0.9", "--steps", "40",
                 "--delta-t", "10", "--t-end", "30", "--batch", "4", "--out", str(out), "--json"]) == 0
    s = _one_object(capsys)
    _, alloc = model_allocation("mlp", "erk", 0.9)
    assert s["nonzeros"] == int(sum(alloc.nonzeros)) and s["params"] == int(sum(alloc.n_params))
    assert [r["nonzeros"] for r in s["layers"]] == [int(z) for z in alloc.nonzeros]
    assert s["update_steps"] == [10, 20] and s["mask_updates"] == 2      # every ΔT steps before T_end
    assert s["steps"] == read_trace(out).total_steps == 40 and s["batch"] == 4 and s["masks"] == "synthetic"


@pytest.fixture(scope="module")
def map_json(tmp_path_factory):
    """`rigl-hw map --model test_user_model:make_net --input-shape 1,8,8 --batch 4 --json`."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["map", "--hardware", HW, "--model", REF, "--input-shape", "1,8,8", "--batch", "4",
                     "--pass", "all", "--json"]) == 0
    return json.loads(buf.getvalue())


def test_map_user_model_equals_its_layers_one_by_one(map_json, capsys):
    rows = map_json["layers"]
    assert [(r["name"], r["pass"]) for r in rows] == [(n, p) for n in ("conv", "head")
                                                       for p in ("forward", "backward_data", "backward_weight")]
    # the same layers written by hand: conv N=4 C=1 M=8 R=S=3 P=Q=8 (pad 1 keeps 8x8); head: N=4, K=128, M=10
    for name, text in (("conv", "conv N=4 C=1 M=8 R=3 S=3 P=8 Q=8 stride=1"), ("head", "gemm M=10 N=4 K=128")):
        assert main(["map", "--hardware", HW, "--layer", text, "--pass", "all", "--json"]) == 0
        one = _one_object(capsys)["layers"]
        mine = [r for r in rows if r["name"] == name]
        assert [r["cycles"] for r in one] == [r["cycles"] for r in mine]
        assert [r["energy_pj"] for r in one] == pytest.approx([r["energy_pj"] for r in mine], rel=1e-12)
        assert [r["macs"] for r in one] == [r["macs"] for r in mine]
    assert rows[0]["macs"] == 4 * 8 * 64 * 9 and rows[3]["macs"] == 4 * 128 * 10     # N M P Q R S C; N K M
    assert map_json["totals"]["cycles"] == sum(r["cycles"] for r in rows)


def test_api_map_model_and_map_layer_match_the_cli(map_json):
    from rigl_hw import api
    from simulator.hardware import load_hardware

    m = api.map_model(REF, HW, input_shape=(1, 8, 8), batch=4, pass_name="all")
    assert m.cycles == map_json["totals"]["cycles"]
    assert m.energy_j == pytest.approx(map_json["totals"]["energy_pj"] * 1e-12, rel=1e-12)
    assert m.time_s == pytest.approx(m.cycles / load_hardware(HW).pe_array.clock_hz)
    table = m.to_pandas()
    assert list(table["name"]) == [r["name"] for r in map_json["layers"]]
    assert table["cycles"].sum() == m.cycles and "dram_read_bytes" in table.columns
    one = api.map_layer("gemm M=10 N=4 K=128", HW)
    assert one.cycles == next(r["cycles"] for r in map_json["layers"] if (r["name"], r["pass"]) == ("head", "forward"))
    assert "head" not in one.format() and "== gemm / forward" in one.format()
    with pytest.raises(ValueError, match="exactly one of --layer and --model"):
        api.map_model(None, HW)  # type: ignore[arg-type]


def test_map_user_model_errors_are_one_line(capsys):
    assert main(["map", "--hardware", HW, "--model", REF]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs --input-shape" in err[0]


def test_train_json_summary(tmp_path, capsys):
    from rigl_hw.trace import read_trace

    run = tmp_path / "run"
    assert main(["train", "--model", "mlp", "--dataset", "digits", "--steps", "12", "--batch", "16",
                 "--delta-t", "4", "--no-progress", "--device", "cpu", "--out", str(run), "--json"]) == 0
    cap = capsys.readouterr()
    s = json.loads(cap.out)
    assert len(cap.out.strip().splitlines()) == 1 and "trained rigl mlp for 12 steps" in cap.err
    assert s["steps_done"] == s["total_steps"] == 12 and s["batch"] == 16 and not s["interrupted"]
    assert s["nonzeros"] == int(read_trace(run / "trace").initial_nonzeros().sum())   # RigL keeps the count
    assert set(s["eval"]) >= {"eval_loss", "eval_accuracy"} and s["checkpoint"] == str(run / "checkpoint.pt")


def test_study_json(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["study", "update-interval", "--quick", "--workers", "1", "--no-progress", "--out", str(out),
                 "--json"]) == 0
    s = _one_object(capsys)
    assert s["study"] == "update-interval" and s["reports"] == [str(out / "report.md")]
    assert (out / "report.md").is_file() and s["result"] == str(out)
