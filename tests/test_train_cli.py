"""`rigl-hw train` arguments: a run, a resume, and one-line errors with exit code 2."""

import argparse

import pytest
import torch

from rigl_hw.cli.train import add_train_arguments, config_from_args, main

BASE = ["--model", "mlp", "--dataset", "digits", "--method", "rigl", "--distribution", "erk", "--sparsity", "0.9",
        "--batch-size", "16", "--delta-t", "5", "--no-progress"]


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rigl-hw: error: "), err
    return err[0]


def test_train_then_resume_via_cli(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*BASE, "--steps", "20", "--eval-every", "10", "--checkpoint-every", "10", "--out", str(run)]) == 0
    assert "trained rigl mlp for 20 steps" in capsys.readouterr().err
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["config"]["delta_t"] == 5 and ck["config"]["checkpoint_every"] == 10
    # resuming a finished run is a no-op that still reports; settings come from the checkpoint
    assert main(["--resume", str(run), "--no-progress"]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 20


def test_defaults_and_resume_merge(tmp_path):
    p = add_train_arguments(argparse.ArgumentParser())
    cfg, resume = config_from_args(p.parse_args(["--out", str(tmp_path / "r")]))
    assert not resume and cfg.method == "rigl" and cfg.sparsity == 0.9 and cfg.delta_t == 100


@pytest.mark.parametrize("argv,match", [
    (["--steps", "20", "--delta-t", "0"], "delta_t"),
    (["--steps", "20", "--alpha", "1.5"], "alpha"),
    (["--steps", "20", "--t-end", "30"], "t_end"),
    (["--steps", "20", "--sparsity", "1.0"], "sparsity"),
    (["--steps", "20", "--dataset", "cifar10", "--model", "wide_resnet_22_2", "--data-dir", "/nonexistent/cifar"],
     "does not exist"),
    (["--steps", "20", "--model", "resnet9"], "unknown model"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, match):
    assert main([*BASE, *argv, "--out", str(tmp_path / "run")]) == 2
    assert match in _one_error_line(capsys)


def test_resume_errors_exit_2(tmp_path, capsys):
    assert main(["--resume", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in _one_error_line(capsys)
    run = tmp_path / "run"
    assert main([*BASE, "--steps", "10", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main([*BASE, "--steps", "10", "--out", str(run)]) == 2               # would overwrite a run
    assert "--resume" in _one_error_line(capsys)
    assert main(["--resume", str(run), "--sparsity", "0.8"]) == 2               # changes the computation
    assert "sparsity: 0.9 -> 0.8" in _one_error_line(capsys)
    assert main(["--resume", str(run), "--out", str(tmp_path / "elsewhere")]) == 2
    assert "drop --out" in _one_error_line(capsys)
    (run / "checkpoint.pt").write_bytes(b"garbage")
    assert main(["--resume", str(run)]) == 2
    assert "corrupt" in _one_error_line(capsys)
    assert main(["--model", "mlp"]) == 2
    assert "--out" in _one_error_line(capsys)


def test_ctrl_c_writes_a_checkpoint_and_exits_cleanly(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.Popen([sys.executable, "-m", "rigl_hw.train", *BASE, "--steps", "100000", "--out", str(run)],
                         cwd=root, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (run / "metrics.csv").exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.1)
    time.sleep(1.0)                                   # well inside the training loop by now
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    step = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert 0 < step < 100000
