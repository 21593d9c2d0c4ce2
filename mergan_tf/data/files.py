"""The ``files`` source: a directory of MNIST-format IDX files or SVHN .mat files."""

import os

from mergan_tf.data import classes, idx, svhn
from mergan_tf.data.errors import DataError, listing


def files_hint(name: str) -> str:
    """What --data_dir must hold for dataset `name`, for messages."""
    if name == "svhn":
        return svhn.SVHN_FILES_HINT
    return f"its four MNIST-format IDX files ({idx.IDX_FILE_NAMES})"


def load_files(name: str, data_dir: str | None):
    """Loads IDX or SVHN .mat files from `data_dir`: `(train, test, where)`, the test pair
    (None, None) without test files."""
    if data_dir is None:
        raise DataError("source='files' needs a data directory: pass --data_dir.")
    data_dir = os.path.abspath(os.path.expanduser(data_dir))
    if not os.path.isdir(data_dir):
        raise DataError(f"data directory {data_dir} does not exist or is not a "
                        f"directory; pass --data_dir with {files_hint(name)}, or omit it "
                        "to use TFDS.")
    if not os.access(data_dir, os.R_OK | os.X_OK):
        raise DataError(f"data directory {data_dir} is not readable; fix its "
                        f"permissions (chmod u+rx {data_dir}) or pass another --data_dir.")
    has_idx = idx.find_idx_file(data_dir, "train_images") is not None
    has_mat = os.path.isfile(os.path.join(data_dir, svhn.SVHN_FILES[0]))
    # A directory holding both formats: SVHN wants the .mat files, the rest IDX.
    if has_mat and (name == "svhn" or not has_idx):
        train, test = svhn.load_svhn_dir(data_dir)
        return train, test, f"svhn .mat files in {data_dir}"
    if has_idx or idx.find_idx_file(data_dir, "train_labels"):
        train, test = idx.load_idx_dir(data_dir, classes.num_classes(name))
        return train, test, f"idx files in {data_dir}"
    if name == "svhn":
        raise DataError(f"{data_dir} has no {svhn.SVHN_FILES[0]}: --dataset svhn reads "
                        f"{svhn.SVHN_FILES_HINT}; found {listing(data_dir)}.")
    raise DataError(f"{data_dir} holds neither MNIST-format IDX files "
                    f"({idx.IDX_FILE_NAMES}) nor SVHN's {' / '.join(svhn.SVHN_FILES)}; "
                    f"found {listing(data_dir)}.")
