"""TensorFlow Datasets: find a builder, check whether it is prepared, read it as arrays.

TFDS retries for minutes without a network, so nothing here downloads unless the caller
has checked `is_prepared` or `network_available` first (see `sources.load_dataset`).
"""

import logging
import os
import socket
import threading

import numpy as np
from absl import logging as absl_logging

from mergan_tf.data.errors import DataError

_TFDS_NAMES = {"svhn": "svhn_cropped"}
# Host TFDS downloads MNIST and most image datasets from.
_TFDS_HOST = ("storage.googleapis.com", 443)


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


def find_builder(name: str, tfds_dir: str | None):
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


def is_prepared(builder) -> bool:
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


def prepared_builder(name: str, tfds_dir: str | None):
    """The builder of a TFDS (image, label) dataset prepared in `tfds_dir` (None: as
    `find_builder`); never downloads (for --dataset tfds:NAME).

    Raises:
        DataError: If TFDS has no such dataset, it is not prepared there, or it is not an
            (image, label) dataset.
    """
    builder = find_builder(name, tfds_dir)
    if builder is None:
        raise DataError(f"unknown dataset tfds:{name}: TFDS has no dataset of that name and "
                        f"none is prepared under that name in {tfds_dir or 'the TFDS data dir'}.")
    if not is_prepared(builder):
        raise DataError(f"tfds:{name} is not prepared in {builder.data_dir}; --dataset tfds:NAME "
                        "never downloads: prepare it first (tfds build NAME --data_dir DIR) "
                        "and pass --data_dir DIR.")
    _check_supervised(builder)
    return builder


def image_classification_info(name: str, tfds_dir: str | None) -> tuple[int, int]:
    """(channels, number of classes) of a prepared TFDS dataset, from its builder's info.

    Raises:
        DataError: As `prepared_builder`, and for images without a fixed channel count.
    """
    info = prepared_builder(name, tfds_dir).info
    channels = info.features[info.supervised_keys[0]].shape[-1]
    if channels not in (1, 3):
        raise DataError(f"tfds:{name} has images of {channels} channel(s); the models take "
                        "1 (grayscale) or 3 (RGB).")
    return int(channels), int(info.features["label"].num_classes)


def _check_supervised(builder):
    """DataError unless the builder's examples are (image, label) pairs."""
    if builder.info.supervised_keys is None or "label" not in builder.info.features:
        raise DataError(f"tfds:{builder.name} is not an (image, label) dataset; pass "
                        "--data_dir with IDX or SVHN .mat files instead.")


def load_builder(builder, verbose: bool):
    """Loads (downloading if needed) a TFDS image classification dataset, as
    `(train, test, where, class_names)` with the test pair (None, None) without a test split."""
    _check_supervised(builder)
    prepared = is_prepared(builder)
    if not prepared:
        if verbose:
            absl_logging.info("Downloading tfds:%s to %s ...", builder.name, builder.data_dir)
        builder.download_and_prepare()
    splits = {}
    for split in ("train", "test"):
        if split in builder.info.splits:
            splits[split] = _split_arrays(builder, split)
    if "train" not in splits:
        raise DataError(f"tfds:{builder.name} has no 'train' split; pass --data_dir "
                        "with the dataset's files instead.")
    labels = builder.info.features["label"]
    where = (f"tfds:{builder.name} ({'prepared in' if prepared else 'downloaded to'} "
             f"{builder.data_dir_root})")
    return splits["train"], splits.get("test", (None, None)), where, tuple(labels.names)


def _split_arrays(builder, split):
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
