"""`ImageData`, the labelled dataset every source returns, and its label check."""

import dataclasses

import numpy as np

from mergan_tf.data.errors import DataError


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

