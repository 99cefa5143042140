"""MNIST in its real on-disk format: LeCun's idx ubyte files, gzip-compressed, in mnist/ or MNIST/raw/."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

import datasets
from core.errors import UserError


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">i", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("folder", ["mnist", "MNIST/raw"])
def test_mnist_reads_idx_gz(tmp_path, folder) -> None:
    d = tmp_path / folder
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    tr, te = rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 256, (3, 28, 28))
    _write_idx(d / "train-images-idx3-ubyte.gz", tr)
    _write_idx(d / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3, 4]))
    _write_idx(d / "t10k-images-idx3-ubyte.gz", te)
    _write_idx(d / "t10k-labels-idx1-ubyte.gz", np.array([5, 6, 9]))
    pool = datasets.load_pool("mnist", tmp_path, input_dim=1, num_cls=10)
    assert pool.x.shape == (8, 1, 28, 28) and pool.y.tolist() == [0, 1, 2, 3, 4, 5, 6, 9]
    expected = (te[2] / 255.0 - 0.1307) / 0.3081   # train first, then test; torchvision's mean / std
    np.testing.assert_allclose(pool.x[7, 0].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_mnist_missing_or_corrupt(tmp_path) -> None:
    with pytest.raises(UserError, match="dataset mnist not found"):
        datasets.load_pool("mnist", tmp_path, input_dim=1, num_cls=10)
    d = tmp_path / "mnist"
    d.mkdir()
    for n in datasets.MNIST_FILES:
        with gzip.open(d / f"{n}.gz", "wb") as f:
            f.write(b"\x00\x00\x09\x01garbage")
    with pytest.raises(UserError, match="not an idx file"):
        datasets.load_pool("mnist", tmp_path, input_dim=1, num_cls=10)
