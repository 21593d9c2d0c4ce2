"""MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST, ...), as described on LeCun's page.

A directory holds four files, ``train-images-idx3-ubyte`` and friends, each gzipped
(``.gz``) or not; some mirrors spell them with a dot (``train-images.idx3-ubyte``).
"""

import gzip
import os
import zlib

import numpy as np

from mergan_tf.data.errors import DataError, listing
from mergan_tf.data.image_data import check_labels

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# (stem, rank suffix) of the four files; LeCun's names use "-", some mirrors use ".".
_IDX_FILES = {
    "train_images": ("train-images", "idx3-ubyte"),
    "train_labels": ("train-labels", "idx1-ubyte"),
    "test_images": ("t10k-images", "idx3-ubyte"),
    "test_labels": ("t10k-labels", "idx1-ubyte"),
}
IDX_FILE_NAMES = ", ".join(f"{stem}-{suffix}[.gz]" for stem, suffix in _IDX_FILES.values())
"""The four file names, for messages."""


def read_idx(path: str) -> np.ndarray:
    """Reads an IDX file (gzipped or raw) as described on LeCun's MNIST page.

    Args:
        path: File path; a name ending in ".gz" is decompressed.

    Returns:
        An array shaped by the header dimensions, in native byte order.

    Raises:
        DataError: If the file is unreadable, has a bad magic number or holds a
            different number of bytes than its header announces.
    """
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file: bad magic number {raw[:4].hex()} "
                        "(expected 00 00 <type code> <rank>). Check that the file is "
                        "an MNIST-format IDX file, gzipped only if it ends in .gz.")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: its {ndim}-dimensional header needs "
                        f"{header} bytes, got {len(raw)}. Re-download the file.")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "longer than its header says"
        raise DataError(f"{path} is {what}: header dims {list(dims)} need {expected} "
                        f"bytes of data, got {got}. Re-download the file.")
    data = np.frombuffer(raw, dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _read_bytes(path):
    """The (decompressed) bytes of an IDX file; DataError naming the file and the fix."""
    gzipped = path.endswith(".gz")
    try:
        with (gzip.open if gzipped else open)(path, "rb") as f:
            raw = f.read()
    except PermissionError as e:
        raise DataError(f"cannot read IDX file {path}: {e}. Fix its permissions "
                        f"(chmod a+r {path}).") from e
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        expected = ("a complete gzip-compressed MNIST-format IDX file (the name ends in "
                    ".gz)" if gzipped else "an uncompressed MNIST-format IDX file")
        raise DataError(f"cannot read IDX file {path}: {e}; expected {expected}. The file "
                        "is truncated or corrupt: re-download or re-extract it.") from e
    return raw


def find_idx_file(data_dir: str, kind: str) -> str | None:
    """The path of one of the four IDX files in any accepted spelling, or None.

    Args:
        data_dir: The directory.
        kind: "train_images", "train_labels", "test_images" or "test_labels".
    """
    stem, suffix = _IDX_FILES[kind]
    for sep in ("-", "."):
        for ext in ("", ".gz"):
            path = os.path.join(data_dir, f"{stem}{sep}{suffix}{ext}")
            if os.path.isfile(path):
                return path
    return None


def load_idx_dir(data_dir: str, num_classes: int | None = None):
    """Loads the four MNIST-format IDX files of a directory.

    Accepts ``train-images-idx3-ubyte`` and the dotted ``train-images.idx3-ubyte``
    spellings, each gzipped (``.gz``) or not. The test pair is optional.

    Args:
        data_dir: Directory holding the files.
        num_classes: The dataset's number of classes, when known: a label outside
            0..num_classes-1 is refused.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: uint8 images [N, H, W, C] and int64
        labels [N]; the test pair is ``(None, None)`` when neither test file exists.

    Raises:
        DataError: If a training file or one file of the test pair is missing, or a
            file is corrupt or the counts disagree.
    """
    paths = {k: find_idx_file(data_dir, k) for k in _IDX_FILES}
    test_missing = paths["test_images"] is None and paths["test_labels"] is None
    missing = [f"{stem}-{suffix}[.gz]" for k, (stem, suffix) in _IDX_FILES.items()
               if paths[k] is None and not (k.startswith("test") and test_missing)]
    if missing:
        raise DataError(f"{data_dir}: missing IDX file(s) {', '.join(missing)}; found "
                        f"{listing(data_dir)}. Put all four MNIST-format files there.")
    train = _read_idx_pair(paths["train_images"], paths["train_labels"], num_classes)
    test = (None, None) if test_missing else _read_idx_pair(
        paths["test_images"], paths["test_labels"], num_classes)
    return train, test


def _read_idx_pair(image_path, label_path, num_classes=None):
    """Reads an IDX image file and its label file into NHWC uint8 / int64 arrays."""
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.dtype != np.uint8:
        raise DataError(f"{image_path}: expected uint8 images [N, H, W] or "
                        f"[N, H, W, C], got {images.dtype} {list(images.shape)}.")
    if labels.ndim != 1:
        raise DataError(f"{label_path}: expected labels [N], got {list(labels.shape)}.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{label_path}: expected integer labels (IDX type ubyte), got "
                        f"{labels.dtype}; this is not an MNIST-format label file.")
    if num_classes is not None:
        check_labels(labels, num_classes, label_path)
    if len(images) != len(labels):
        raise DataError(f"{image_path} holds {len(images)} images but {label_path} "
                        f"holds {len(labels)} labels; use files from the same release.")
    return images, labels.astype(np.int64)
