"""A class-per-folder image tree (`--data_source image_folder`), as Keras'
`image_dataset_from_directory` reads it: `<data_dir>/<class>/<images>`, or
`<data_dir>/train/<class>/...` with an optional `<data_dir>/test/<class>/...`."""

import os

import numpy as np

from mergan_tf.data.errors import DataError, listing

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def load_image_folder(data_dir: str | None, image_size: int, channels: int | None):
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
                        f"own sub-folder (e.g. {directory}/cat/1.png); found {listing(directory)}")
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
