"""Data sets that work offline, and deterministic, checkpointable batching.

`load_dataset(name, model, ...)` returns a `Dataset` of in-memory tensors shaped for the zoo model:
  digits     scikit-learn's bundled 8x8 digits (1,797 real images, no download), standardised with the
             training split's mean/std; the train/test split is fixed by `split_seed`. mlp (64) or
             small_cnn (1x8x8).
  synthetic  a seeded Gaussian mixture: 10 class means in a 16-d latent space, mapped to the model's
             input shape by a fixed random linear map, plus noise. Any float-input model; for the
             byte-level char_gru it is a seeded sparse Markov chain over 256 bytes instead.
  bytes      a byte-level corpus built from text already on the machine: the Python standard library's
             top-level *.py files (sorted by name), then /usr/share/common-licenses/*, capped at
             `corpus_bytes`; a generated pseudo-text corpus if neither is readable. Cut into sequences
             of seq_len + 1 bytes: inputs x = s[:-1], targets y = s[1:]. The last 10% is the test split.
  cifar10    the standard binary layout under `--data-dir` (data_batch_1..5.bin, test_batch.bin, in the
             directory or its cifar-10-batches-bin/ folder); per-channel normalised; random crop (pad 4)
             and horizontal flip on training batches.

`BatchStream` draws global batches from per-epoch permutations of a torch.Generator; its state (the
generator, the current permutation, the position) goes into checkpoints so a resumed run sees exactly
the batches of an uninterrupted one. Under DDP every rank runs the same stream and keeps its own slice.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

DATASETS = ("digits", "synthetic", "bytes", "cifar10")
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch.bin"
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
DEFAULT_CORPUS_BYTES = 1 << 20
SYNTHETIC_CLASSES = 10
LATENT_DIM = 16


class DataError(ValueError):
    """Unknown data set, a model it cannot feed, or missing data files. One line, with the fix."""

    user_error = True


@dataclass
class Dataset:
    """In-memory train/test tensors. task: "classify" (y: class ids) or "lm" (y: next bytes)."""

    name: str
    task: str
    num_classes: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    augment: str | None = None           # "cifar" -> crop + flip on training batches
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])


# ------------------------------------------------------------------------------------------ loading
def _model_input(model: str, input_shape=None) -> tuple[tuple[int, ...], str]:
    from .models import MODELS
    from .user_model import is_user_model, need_input_shape

    if is_user_model(model):   # package.module:factory models take float inputs of the given shape
        return need_input_shape(model, input_shape), "float32"

    if model not in MODELS:
        raise DataError(f"unknown model {model!r}; choose one of {', '.join(sorted(MODELS))}")
    e = MODELS[model]
    return tuple(e.input_shape), e.input_dtype


def load_dataset(name: str, model: str, *, seed: int = 0, split_seed: int = 0, data_dir: str | None = None,
                 seq_len: int = 64, corpus_bytes: int = DEFAULT_CORPUS_BYTES, n_train: int | None = None,
                 input_shape=None) -> Dataset:
    """The data set `name` shaped for `model` (see the module docstring): a zoo model, or a
    package.module:factory model with per-sample `input_shape`."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    shape, dtype = _model_input(model, input_shape)
    if seq_len < 2:
        raise DataError(f"seq_len must be >= 2, got {seq_len}")
    if name == "digits":
        if shape not in ((64,), (1, 8, 8)):
            raise DataError(f"dataset digits feeds 8x8 images to mlp or small_cnn (or a model with input shape 64 "
                            f"or 1,8,8), not {model}; use --dataset synthetic for other models")
        return _digits(shape, split_seed)
    if name == "cifar10":
        if shape != (3, 32, 32):
            raise DataError(f"dataset cifar10 feeds 3x32x32 images (wide_resnet_22_2), not {model} {shape}")
        return _cifar10(data_dir)
    if name == "bytes":
        if dtype != "int64":
            raise DataError(f"dataset bytes feeds byte sequences to char_gru, not {model}")
        return _bytes(seq_len, corpus_bytes)
    if dtype == "int64":
        return _synthetic_lm(seq_len, seed, n_train or 2048)
    return _synthetic_classify(shape, seed, n_train)


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _digits(shape: tuple[int, ...], split_seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.data.astype(np.float32)
    y = d.target.astype(np.int64)
    tr, te = _split(len(x), 0.2, split_seed)
    mean, std = x[tr].mean(0), x[tr].std(0) + 1e-6   # standardise with the training split only
    x = (x - mean) / std
    x = x.reshape((-1, *shape))
    prep = {"mean": mean.reshape(shape).tolist(), "std": std.reshape(shape).tolist(), "layout": _layout(shape),
            "input_shape": list(shape), "formula": "(x - mean) / std", "raw_input": "sklearn load_digits().data, "
            "pixel values 0..16 as float32, reshaped to input_shape"}
    return Dataset("digits", "classify", 10, torch.from_numpy(x[tr]), torch.from_numpy(y[tr]),
                   torch.from_numpy(x[te]), torch.from_numpy(y[te]),
                   info={"split_seed": split_seed, "preprocessing": prep})


def _layout(shape: tuple[int, ...]) -> str:
    """Axis order of a batch: NF (features), NCHW (images), NL (token sequences)."""
    return {1: "NF", 3: "NCHW"}.get(len(shape), "N" + "x" * len(shape))


def _synthetic_classify(shape: tuple[int, ...], seed: int, n_train: int | None) -> Dataset:
    numel = int(np.prod(shape))
    if n_train is None:   # keep the tensors under ~80 MB whatever the input size
        n_train = int(max(64, min(2048, 2e7 // numel)))
    n_test = max(32, n_train // 4)
    rng = np.random.default_rng([seed, 7919])
    means = rng.normal(0.0, 1.0, (SYNTHETIC_CLASSES, LATENT_DIM)).astype(np.float32)
    proj = (rng.normal(0.0, 1.0, (LATENT_DIM, numel)) / math.sqrt(LATENT_DIM)).astype(np.float32)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, SYNTHETIC_CLASSES, n)
        z = means[y] + 0.7 * rng.normal(0.0, 1.0, (n, LATENT_DIM)).astype(np.float32)
        x = z @ proj + 0.3 * rng.normal(0.0, 1.0, (n, numel)).astype(np.float32)
        return x.reshape((n, *shape)).astype(np.float32), y.astype(np.int64)

    xtr, ytr = draw(n_train)
    xte, yte = draw(n_test)
    return Dataset("synthetic", "classify", SYNTHETIC_CLASSES, torch.from_numpy(xtr), torch.from_numpy(ytr),
                   torch.from_numpy(xte), torch.from_numpy(yte), info={"seed": seed})


def _synthetic_lm(seq_len: int, seed: int, n_seq: int) -> Dataset:
    """A sparse random Markov chain over bytes: each byte has 4 likely successors."""
    rng = np.random.default_rng([seed, 104729])
    succ = rng.integers(0, 256, (256, 4))
    probs = rng.dirichlet(np.ones(4), 256)
    n_total = int(n_seq * 1.25)
    seqs = np.empty((n_total, seq_len + 1), dtype=np.int64)
    state = rng.integers(0, 256, n_total)
    u = rng.random((n_total, seq_len + 1))
    for t in range(seq_len + 1):
        seqs[:, t] = state
        choice = (u[:, t, None] > np.cumsum(probs[state], axis=1)).sum(1).clip(0, 3)
        state = succ[state, choice]
    return _lm_dataset("synthetic", seqs, {"seed": seed, "kind": "markov"})


def _lm_dataset(name: str, seqs: np.ndarray, info: dict[str, Any]) -> Dataset:
    n_test = max(1, len(seqs) // 10)
    tr, te = seqs[:-n_test], seqs[-n_test:]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return Dataset(name, "lm", 256, t(tr[:, :-1]), t(tr[:, 1:]), t(te[:, :-1]), t(te[:, 1:]), info=info)


def corpus_files() -> list[Path]:
    """The deterministic list of text files the bytes corpus is read from (may be empty)."""
    files: list[Path] = []
    stdlib = Path(os.__file__).parent
    files += sorted(p for p in stdlib.glob("*.py") if p.is_file())
    lic = Path("/usr/share/common-licenses")
    if lic.is_dir():
        files += sorted(p for p in lic.iterdir() if p.is_file())
    return files


def _generated_corpus(n: int) -> bytes:
    rng = np.random.default_rng(12345)
    words = ("the of and to in is that for it as was with be by on not he this are or his from at which but "
             "sparse dense mask weight gradient grow drop train step layer model network update top").split()
    out, size = [], 0
    while size < n:
        sent = " ".join(words[i] for i in rng.integers(0, len(words), rng.integers(4, 14)))
        s = sent.capitalize() + ".\n"
        out.append(s)
        size += len(s)
    return "".join(out).encode()[:n]


def build_corpus(max_bytes: int = DEFAULT_CORPUS_BYTES) -> tuple[bytes, dict[str, Any]]:
    """Concatenate `corpus_files()` up to max_bytes; fall back to a generated corpus."""
    chunks, size, used = [], 0, 0
    for p in corpus_files():
        if size >= max_bytes:
            break
        try:
            data = p.read_bytes()
        except OSError:
            continue
        chunks.append(data[: max_bytes - size])
        size += len(chunks[-1])
        used += 1
    source = "files"
    if size < 4096:
        chunks, source = [_generated_corpus(max_bytes)], "generated"
    corpus = b"".join(chunks)
    return corpus, {"source": source, "files": used, "bytes": len(corpus),
                    "sha256": hashlib.sha256(corpus).hexdigest()[:16]}


def _bytes(seq_len: int, corpus_bytes: int) -> Dataset:
    corpus, info = build_corpus(corpus_bytes)
    arr = np.frombuffer(corpus, dtype=np.uint8).astype(np.int64)
    n_seq = len(arr) // (seq_len + 1)
    if n_seq < 20:
        raise DataError(f"bytes corpus of {len(arr)} bytes is too small for seq_len {seq_len}; lower --seq-len")
    return _lm_dataset("bytes", arr[: n_seq * (seq_len + 1)].reshape(n_seq, seq_len + 1), info)


def _read_cifar(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    rec = 1 + 3 * 32 * 32
    if raw.size == 0 or raw.size % rec:
        raise DataError(f"{path} is not a CIFAR-10 binary batch ({raw.size} bytes is not a multiple of {rec}); "
                        "re-extract cifar-10-binary.tar.gz")
    raw = raw.reshape(-1, rec)
    return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0].astype(np.int64)


def _cifar10(data_dir: str | None) -> Dataset:
    if not data_dir:
        raise DataError("dataset cifar10 needs --data-dir pointing at the CIFAR-10 binary files "
                        "(data_batch_1..5.bin, test_batch.bin)")
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"--data-dir {root} does not exist; point it at the extracted cifar-10-batches-bin folder")
    if (root / "cifar-10-batches-bin").is_dir():
        root = root / "cifar-10-batches-bin"
    missing = [f for f in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE) if not (root / f).is_file()]
    if missing:
        raise DataError(f"--data-dir {root} lacks {', '.join(missing)}; it needs the CIFAR-10 binary version "
                        "(data_batch_1..5.bin, test_batch.bin)")
    parts = [_read_cifar(root / f) for f in CIFAR_TRAIN_FILES]
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    xte, yte = _read_cifar(root / CIFAR_TEST_FILE)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    norm = lambda a: (torch.from_numpy(a).float() / 255.0 - mean) / std  # noqa: E731
    return Dataset("cifar10", "classify", 10, norm(xtr), torch.from_numpy(ytr), norm(xte), torch.from_numpy(yte),
                   augment="cifar", info={"data_dir": str(root), "preprocessing": {
                       "mean": [[[m]] for m in CIFAR_MEAN], "std": [[[v]] for v in CIFAR_STD], "layout": "NCHW",
                       "input_shape": [3, 32, 32], "formula": "(x / 255 - mean) / std",
                       "raw_input": "CIFAR-10 uint8 pixels, channels first"}})


# ----------------------------------------------------------------------------------------- batching
def _augment_cifar(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random crop from a 4-pixel zero-padded image and random horizontal flip (standard CIFAR)."""
    n = x.shape[0]
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    off = torch.randint(0, 9, (n, 2), generator=g)
    flip = torch.rand(n, generator=g) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        a, b = int(off[i, 0]), int(off[i, 1])
        img = padded[i, :, a:a + 32, b:b + 32]
        out[i] = img.flip(-1) if flip[i] else img
    return out


class BatchStream:
    """Global batches of `batch_size` training samples, epoch after epoch, from one torch.Generator.

    Each epoch is a fresh permutation; the incomplete tail of an epoch is dropped. Under DDP every rank
    builds the same stream and `next()` returns the rank's contiguous slice of the global batch.
    """

    def __init__(self, data: Dataset, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if batch_size > data.n_train:
            raise DataError(f"batch size {batch_size} is larger than the {data.n_train} training samples of "
                            f"{data.name}; lower --batch")
        if batch_size % world_size:
            raise DataError(f"batch size {batch_size} is not divisible by the {world_size} DDP processes")
        self.data = data
        self.batch_size = batch_size
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(int(seed))
        self.epoch = 0
        self.pos = 0
        self.perm = torch.randperm(data.n_train, generator=self.generator)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pos + self.batch_size > self.perm.numel():
            self.epoch += 1
            self.pos = 0
            self.perm = torch.randperm(self.data.n_train, generator=self.generator)
        idx = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        x, y = self.data.x_train[idx], self.data.y_train[idx]
        if self.data.augment == "cifar":
            x = _augment_cifar(x, self.generator)   # same generator: same augmentation on every rank
        per = self.batch_size // self.world_size
        sl = slice(self.rank * per, (self.rank + 1) * per)
        return x[sl], y[sl]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self.perm.clone(), "epoch": self.epoch,
                "pos": self.pos, "batch_size": self.batch_size, "n_train": self.data.n_train}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["n_train"]) != self.data.n_train or int(state["batch_size"]) != self.batch_size:
            raise DataError(f"data stream state is for {state['n_train']} samples in batches of {state['batch_size']}, "
                            f"this run has {self.data.n_train} in batches of {self.batch_size}")
        self.generator.set_state(state["generator"])
        self.perm = state["perm"].clone()
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])


def eval_batches(data: Dataset, batch_size: int = 512, max_samples: int = 0):
    """Yield (x, y) over the test split in order (the first max_samples when > 0)."""
    n = data.n_test if max_samples <= 0 else min(max_samples, data.n_test)
    for a in range(0, n, batch_size):
        b = min(n, a + batch_size)
        yield data.x_test[a:b], data.y_test[a:b]
