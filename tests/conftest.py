"""Shared pytest set-up: quiet TensorFlow, the real MNIST files beside the project."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MERGAN_OFFLINE", "1")

import pytest  # noqa: E402

# The real MNIST subset beside the project, or $MERGAN_MNIST_DIR (e.g. for a git worktree).
MNIST_DIR = os.path.abspath(os.environ.get("MERGAN_MNIST_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "mnist"))


@pytest.fixture(scope="session")
def mnist_data():
    """The real MNIST subset of ../shared/data/mnist (skipped where it is absent)."""
    if not os.path.exists(os.path.join(MNIST_DIR, "train-images-idx3-ubyte.gz")):
        pytest.skip(f"real MNIST files not found at {MNIST_DIR}")
    from mergan_tf.data import load_dataset
    return load_dataset("mnist", data_dir=MNIST_DIR, verbose=False)
