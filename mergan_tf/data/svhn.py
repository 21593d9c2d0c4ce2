"""SVHN's format-2 cropped digits: ``train_32x32.mat`` and ``test_32x32.mat`` (MATLAB v5)."""

import os
import zlib

import numpy as np

from mergan_tf.data.errors import DataError
from mergan_tf.data.image_data import check_labels

SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
# Where the official SVHN files come from (the Stanford SVHN page; "Format 2: Cropped Digits").
SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
SVHN_FILES_HINT = (f"SVHN's format-2 cropped-digit files {' and '.join(SVHN_FILES)} (the "
                   f"official ones: {SVHN_URL}, 'Format 2: Cropped Digits')")


def load_svhn_mat(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Loads an SVHN cropped-digits file such as ``train_32x32.mat``.

    Args:
        path: The .mat file; ``X`` is uint8 [32, 32, 3, N], ``y`` is [N, 1] with the
            digit 0 stored as 10.

    Returns:
        uint8 images [N, 32, 32, 3] and int64 labels [N] with 10 mapped to 0.

    Raises:
        DataError: If the file cannot be read or lacks well-formed 'X'/'y' arrays.
    """
    mat = _read_mat(path)
    missing = [k for k in ("X", "y") if k not in mat]
    if missing:
        raise DataError(f"{path} lacks the key(s) {missing} (found {sorted(mat)}); "
                        "expected SVHN format 2 with 'X' [32,32,3,N] and 'y' [N,1].")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[2] not in (1, 3):
        raise DataError(f"{path}: 'X' has shape {list(x.shape)}, expected "
                        "[32, 32, 3, N] (SVHN format 2).")
    if x.shape[3] != len(y):
        raise DataError(f"{path}: 'X' holds {x.shape[3]} images but 'y' holds "
                        f"{len(y)} labels; re-download the file.")
    _check_svhn_arrays(path, x, y)
    images = np.ascontiguousarray(np.transpose(x, (3, 0, 1, 2))).astype(np.uint8)
    labels = y.astype(np.int64)
    labels[labels == 10] = 0  # SVHN stores the digit 0 as class 10.
    return images, labels


def _read_mat(path):
    """The 'X' and 'y' variables of a .mat file; DataError naming the file and the fix."""
    import scipy.io  # pylint: disable=import-outside-toplevel
    from scipy.io.matlab import MatReadError  # pylint: disable=import-outside-toplevel

    try:
        mat = scipy.io.loadmat(path, variable_names=("X", "y"))
    except PermissionError as e:
        raise DataError(f"cannot read SVHN file {path}: {e}. Fix its permissions "
                        f"(chmod a+r {path}).") from e
    except (OSError, ValueError, NotImplementedError, TypeError, MatReadError,
            zlib.error) as e:
        # NotImplementedError is scipy's answer to MATLAB v7.3 (HDF5) files; a truncated
        # file gives OSError or MatReadError, a corrupt compressed one zlib.error.
        raise DataError(f"cannot read SVHN file {path}: {e}; expected a complete MATLAB "
                        "(v5) file with 'X' uint8 [32, 32, 3, N] and 'y' [N, 1]. The file "
                        f"is truncated or corrupt: re-download it from {SVHN_URL} "
                        "(format 2, cropped digits).") from e
    return mat


def _check_svhn_arrays(path, x, y):
    """SVHN format 2: 'X' holds pixels 0..255 (uint8; any integer type within that range
    is accepted) and 'y' the labels 1..10 (10 is the digit 0; 0 is accepted too)."""
    if not np.issubdtype(x.dtype, np.integer):
        low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        raise DataError(f"{path}: 'X' holds {x.dtype} pixels in [{low:g}, {high:g}], but SVHN "
                        "format 2 stores uint8 pixels 0..255 (floats would be cut to black "
                        "images); convert it, e.g. X = np.round(X * 255).astype(np.uint8) for "
                        "values in [0, 1], or re-download the file.")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise DataError(f"{path}: 'X' holds pixel values in [{x.min()}, {x.max()}], outside "
                        "0..255; re-download the file (SVHN format 2, uint8 pixels).")
    if not np.issubdtype(y.dtype, np.number) or (
            y.size and not np.array_equal(y, np.round(y))):
        raise DataError(f"{path}: 'y' holds {y.dtype} values that are not whole class "
                        "numbers; SVHN format 2 stores the labels 1..10.")
    check_labels(y.astype(np.int64), 11, f"{path} ('y', SVHN labels 1..10, 10 = digit 0)")


def load_svhn_dir(data_dir: str):
    """Loads ``train_32x32.mat`` and, if present, ``test_32x32.mat``: ``(train, test)``
    pairs as `load_svhn_mat` returns, the test pair (None, None) without its file."""
    train_path, test_path = (os.path.join(data_dir, f) for f in SVHN_FILES)
    train = load_svhn_mat(train_path)
    test = load_svhn_mat(test_path) if os.path.isfile(test_path) else (None, None)
    return train, test
