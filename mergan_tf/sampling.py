"""How a generator is sampled: the batch-norm regime a run was trained in.

The generator's conditional batch norm always normalises with the statistics of the batch
it is given (as the release does), so an image depends on the other labels of its call. A
run is therefore sampled in the regime it was trained in:

* ``"class"``: one class per batch. The sequential methods train every task on batches of
  a single class (replays: one batch-norm group per previous class); the release's
  `mergan.py` draws its grids and runs its test mode that way.
* ``"mixed"``: every learned class in equal counts in each batch. Joint training (JT)
  trains on batches whose labels mix all classes; the release's `joint.py` draws its grid
  and runs its test mode on batches of 100 holding the labels 0..9 ten times each.

`sample_same_noise` is the one function the class grids, the forgetting monitor and the
figures use; `metrics` draws its evaluation batches with `mixed_batch_labels`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

CLASS = "class"
MIXED = "mixed"
REGIMES = (CLASS, MIXED)
# The release's joint.py test batch: labels 0..9 ten times (100 images).
MIXED_BATCH = 100
# Methods trained on mixed-label batches; every other method is sampled one class per batch.
_MIXED_METHODS = ("jt",)


def regime_of(method: str) -> str:
    """The batch regime of a method's runs ("mixed" for JT, else "class")."""
    return MIXED if method in _MIXED_METHODS else CLASS


def check_regime(regime: str) -> str:
    if regime not in REGIMES:
        raise ValueError(f"unknown batch regime {regime!r}; choose one of {', '.join(REGIMES)}")
    return regime


def mixed_per_class(num_classes: int, batch: int = MIXED_BATCH) -> int:
    """Images of each class in one mixed batch: batch // classes (at least 1); the
    release's 10 per class for ten classes."""
    if num_classes < 1:
        raise ValueError("a mixed batch needs at least one class")
    return max(1, batch // num_classes)


def mixed_batch_labels(classes: Sequence[int], per_class: int) -> np.ndarray:
    """int32 labels of one mixed batch: `classes` repeated `per_class` times, interleaved
    as the release's [0, 1, ..., 9] * 10."""
    return np.tile(np.asarray(classes, np.int32), per_class)


def describe(regime: str, num_classes: int) -> str:
    """One sentence for reports (eval.md, export metadata)."""
    if check_regime(regime) == CLASS:
        return "one class per generator batch (each class its own batch-norm batch), as trained"
    per = mixed_per_class(num_classes)
    return (f"mixed batches as trained (release joint.py): each generator batch holds "
            f"{per} images of every one of the {num_classes} learned classes "
            f"({per * num_classes} images), scored per class")


def sample_same_noise(sample_fn: Callable, z: np.ndarray, classes: Sequence[int],
                      regime: str) -> dict[int, np.ndarray]:
    """Images of every class in `classes` from the same latent vectors `z` [n, z_dim].

    "class": one `sample_fn` call per class holding all of `z`. "mixed": `z` is cut into
    near-equal chunks of at most `mixed_per_class(len(classes))` rows, and each call holds
    one chunk for every class, so every batch has equal counts of each class.

    Returns:
      {class: float32 images [n, H, W, C]} in the order of `z`.
    """
    z = np.asarray(z, np.float32)
    classes = [int(c) for c in classes]
    if check_regime(regime) == CLASS:
        return {c: np.asarray(sample_fn(z, np.full([len(z)], c, np.int32)), np.float32)
                for c in classes}
    chunks = np.array_split(z, -(-len(z) // mixed_per_class(len(classes))))
    parts: dict[int, list[np.ndarray]] = {c: [] for c in classes}
    for chunk in chunks:
        m = len(chunk)
        images = np.asarray(sample_fn(np.tile(chunk, (len(classes), 1)),
                                      np.repeat(np.asarray(classes, np.int32), m)), np.float32)
        for k, c in enumerate(classes):
            parts[c].append(images[k * m:(k + 1) * m])
    return {c: np.concatenate(parts[c]) for c in classes}
