"""CLI: JSON schema of `flops`, one-line errors with exit code 2, light `import rigl_hw`."""

import json
import subprocess
import sys

import pytest

from rigl_hw.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rigl_hw", *args], capture_output=True, text=True, timeout=300)


def test_flops_json_schema(capsys):
    assert main(["flops", "--model", "resnet50", "--distribution", "erk", "--sparsity", "0.8",
                 "--method", "rigl", "--delta-t", "100", "--multiplier", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"model", "width", "distribution", "sparsity", "params", "inference_flops", "train_flops", "layers"}
    assert set(out["params"]) == {"dense", "sparse"}
    assert set(out["inference_flops"]) == {"dense", "sparse", "ratio"}
    assert {"dense", "sparse", "ratio"} <= set(out["train_flops"])
    assert out["train_flops"]["ratio"] == pytest.approx(2.09, abs=0.02)
    names = [l["name"] for l in out["layers"]]
    assert names[0] == "conv1" and names[-1] == "fc" and "layer1.0.conv1" in names
    row = out["layers"][0]
    assert set(row) == {"name", "kind", "shape", "params", "sparsity", "inference_flops_dense", "inference_flops"}
    assert sum(l["params"] for l in out["layers"]) == out["params"]["dense"]
    assert sum(l["inference_flops"] for l in out["layers"]) == out["inference_flops"]["sparse"]
    assert sum(round(l["params"] * (1 - l["sparsity"])) for l in out["layers"]) == out["params"]["sparse"]


def test_flops_without_method_has_no_train_flops(capsys):
    assert main(["flops", "--model", "mlp", "--distribution", "uniform", "--sparsity", "0.5", "--json"]) == 0
    assert "train_flops" not in json.loads(capsys.readouterr().out)


def test_flops_table(capsys):
    assert main(["flops", "--model", "mobilenet_v1", "--distribution", "uniform", "--sparsity", "0.75",
                 "--width", "1.98"]) == 0
    text = capsys.readouterr().out
    assert "inference FLOPs per sample" in text and "blocks.0.dw" in text


@pytest.mark.parametrize("args, needle", [
    (["--sparsity", "1.0"], "sparsity must be in [0, 1)"),
    (["--sparsity", "-0.2"], "sparsity must be in [0, 1)"),
    (["--model", "resnet18"], "unknown model"),
    (["--distribution", "gauss"], "unknown distribution"),
    (["--width", "0"], "width must be > 0"),
    (["--method", "rigl"], "needs --delta-t"),
    (["--method", "magic", "--delta-t", "5"], "unknown method"),
])
def test_bad_input_one_line_exit_2(capsys, args, needle):
    base = {"--model": "mlp", "--distribution": "erk", "--sparsity": "0.5"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    argv = ["flops"] + [x for kv in base.items() for x in kv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_subprocess_exit_code_and_no_traceback():
    p = run_cli("flops", "--model", "mlp", "--distribution", "erk", "--sparsity", "2")
    assert p.returncode == 2
    assert p.stderr.strip().startswith("rigl-hw: error:") and "Traceback" not in p.stderr
    assert p.stdout == ""


def test_import_rigl_hw_does_not_import_torch():
    code = ("import sys, rigl_hw, rigl_hw.distributions, rigl_hw.flops, rigl_hw.schedules, rigl_hw.trace, "
            "rigl_hw.layers, rigl_hw.zoo; print('torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stdout.strip() == "False", p.stderr
