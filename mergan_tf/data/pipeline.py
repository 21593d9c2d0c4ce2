"""The per-task tf.data pipeline and the pixel conversions between uint8 and model range.

Images stay uint8 in memory (four times smaller than float32) and are converted to the
model range [-1, 1] per batch, inside the pipeline. Each continual-learning task draws
from its own `task_dataset`, which holds only the images of the task's classes.
"""

from typing import Sequence

import numpy as np
import tensorflow as tf

from mergan_tf.data.errors import DataError
from mergan_tf.data.image_data import ImageData


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


# 40+ lines only through its Args/Returns docstring; the code is 26 lines.
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
