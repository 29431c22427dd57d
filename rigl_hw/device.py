"""Which torch device a training run uses (`--device auto|cpu|cuda`) and its DDP backend.

auto picks "cuda" when torch.cuda.is_available(), else "cpu"; "cuda" without CUDA is a one-line
TrainConfigError (exit 2 on the CLI). Under torchrun each rank uses cuda:LOCAL_RANK. DDP runs over
nccl on CUDA and gloo on CPU. torch is imported inside the functions.
"""

from __future__ import annotations

import os

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> str:
    """'cpu' or 'cuda' for a requested device name (see the module docstring)."""
    import torch

    from .train_config import TrainConfigError

    if name not in DEVICES:
        raise TrainConfigError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainConfigError("--device cuda: no CUDA device is available to torch "
                               f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); use --device cpu")
    return name


def torch_device(kind: str):
    """The torch.device of this process: cuda:LOCAL_RANK under torchrun, else cuda:0 / cpu."""
    import torch

    if kind == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def ddp_backend(kind: str) -> str:
    """nccl on CUDA, gloo on CPU."""
    return "nccl" if kind == "cuda" else "gloo"
