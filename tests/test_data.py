"""Offline data sets and deterministic, resumable batching."""

import numpy as np
import pytest
import torch

from rigl_hw.data import BatchStream, DataError, build_corpus, corpus_files, eval_batches, load_dataset


def test_digits_shapes_split_and_standardisation():
    flat = load_dataset("digits", "mlp")
    img = load_dataset("digits", "small_cnn")
    assert flat.x_train.shape[1:] == (64,) and img.x_train.shape[1:] == (1, 8, 8)
    assert flat.n_train + flat.n_test == 1797 and flat.task == "classify" and flat.num_classes == 10
    assert torch.equal(flat.x_train.reshape(-1, 1, 8, 8), img.x_train)      # same split, same order
    m = flat.x_train.mean(0)
    assert float(m.abs().max()) < 1e-4                                       # standardised on train
    again = load_dataset("digits", "mlp")
    assert torch.equal(again.x_test, flat.x_test) and torch.equal(again.y_train, flat.y_train)
    other = load_dataset("digits", "mlp", split_seed=1)
    assert not torch.equal(other.y_test, flat.y_test)


@pytest.mark.parametrize("model,shape", [("wide_resnet_22_2", (3, 32, 32)), ("resnet50", (3, 224, 224)),
                                         ("small_cnn", (1, 8, 8))])
def test_synthetic_matches_any_model_input(model, shape):
    d = load_dataset("synthetic", model, seed=3)
    assert d.x_train.shape[1:] == shape and d.x_train.dtype == torch.float32
    assert d.x_train.numel() * 4 <= 100e6                                    # size capped for big inputs
    assert set(d.y_train.unique().tolist()) <= set(range(10))
    same = load_dataset("synthetic", model, seed=3)
    assert torch.equal(same.x_train, d.x_train)
    assert not torch.equal(load_dataset("synthetic", model, seed=4).x_train, d.x_train)


def test_synthetic_lm_for_char_gru():
    d = load_dataset("synthetic", "char_gru", seq_len=16)
    assert d.task == "lm" and d.x_train.shape[1] == 16 and d.x_train.dtype == torch.int64
    assert torch.equal(d.x_train[:, 1:], d.y_train[:, :-1])                 # targets are inputs shifted


def test_bytes_corpus_is_deterministic_and_shifted():
    assert corpus_files() == corpus_files()
    a, info = build_corpus(20_000)
    b, _ = build_corpus(20_000)
    assert a == b and len(a) == 20_000 and info["bytes"] == 20_000
    d = load_dataset("bytes", "char_gru", seq_len=32, corpus_bytes=20_000)
    assert d.x_train.shape[1] == 32 and torch.equal(d.x_train[:, 1:], d.y_train[:, :-1])
    assert int(d.x_train.max()) < 256 and d.n_test >= 1


def test_bytes_falls_back_to_generated_corpus(monkeypatch):
    monkeypatch.setattr("rigl_hw.data.corpus_files", lambda: [])
    corpus, info = build_corpus(10_000)
    assert info["source"] == "generated" and len(corpus) == 10_000


def test_dataset_model_mismatch_and_unknown_names():
    with pytest.raises(DataError, match="mlp or small_cnn"):
        load_dataset("digits", "wide_resnet_22_2")
    with pytest.raises(DataError, match="char_gru"):
        load_dataset("bytes", "mlp")
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("imagenet", "mlp")


def test_cifar10_missing_dir_and_files(tmp_path):
    with pytest.raises(DataError, match="needs --data-dir"):
        load_dataset("cifar10", "wide_resnet_22_2")
    with pytest.raises(DataError, match="does not exist") as e:
        load_dataset("cifar10", "wide_resnet_22_2", data_dir=str(tmp_path / "nope"))
    assert "\n" not in str(e.value)
    (tmp_path / "data_batch_1.bin").write_bytes(b"")
    with pytest.raises(DataError, match="data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, "
                                        "data_batch_5.bin, test_batch.bin"):
        load_dataset("cifar10", "wide_resnet_22_2", data_dir=str(tmp_path))


def _fake_cifar(folder, n=20, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = np.concatenate([rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 3072))], 1).astype(np.uint8)
        rec.tofile(folder / name)


def test_cifar10_binary_layout_and_augmentation(tmp_path):
    _fake_cifar(tmp_path / "cifar-10-batches-bin")
    d = load_dataset("cifar10", "wide_resnet_22_2", data_dir=str(tmp_path))
    assert d.x_train.shape == (100, 3, 32, 32) and d.x_test.shape == (20, 3, 32, 32)
    s1, s2 = BatchStream(d, 8, seed=1), BatchStream(d, 8, seed=1)
    for _ in range(3):
        (x1, y1), (x2, y2) = s1.next(), s2.next()
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    (tmp_path / "bad").mkdir()
    _fake_cifar(tmp_path / "bad")
    (tmp_path / "bad" / "test_batch.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="not a CIFAR-10 binary batch"):
        load_dataset("cifar10", "wide_resnet_22_2", data_dir=str(tmp_path / "bad"))


def test_batch_stream_epochs_determinism_and_resume():
    d = load_dataset("digits", "mlp")
    s = BatchStream(d, 100, seed=5)
    seen = torch.cat([s.next()[1] for _ in range(d.n_train // 100)])
    assert seen.numel() == (d.n_train // 100) * 100                           # one epoch, tail dropped
    for _ in range(7):                                                        # cross an epoch boundary
        s.next()
    state = s.state_dict()
    ahead = [s.next() for _ in range(20)]
    r = BatchStream(d, 100, seed=999)
    r.load_state_dict(state)
    for (xa, ya), (xb, yb) in zip(ahead, [r.next() for _ in range(20)]):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    with pytest.raises(DataError, match="batches of"):
        BatchStream(d, 50, seed=0).load_state_dict(state)


def test_batch_stream_ddp_shards_cover_the_global_batch():
    d = load_dataset("digits", "mlp")
    full = BatchStream(d, 8, seed=2).next()
    parts = [BatchStream(d, 8, seed=2, rank=r, world_size=2).next() for r in (0, 1)]
    assert torch.equal(torch.cat([p[0] for p in parts]), full[0])
    with pytest.raises(DataError, match="not divisible"):
        BatchStream(d, 7, seed=0, world_size=2)
    with pytest.raises(DataError, match="larger than"):
        BatchStream(d, 10_000, seed=0)


def test_eval_batches_cover_test_split():
    d = load_dataset("digits", "mlp")
    xs = torch.cat([x for x, _ in eval_batches(d, 100)])
    assert torch.equal(xs, d.x_test)
    assert sum(x.shape[0] for x, _ in eval_batches(d, 100, max_samples=150)) == 150
