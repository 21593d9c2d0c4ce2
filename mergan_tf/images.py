"""Image grids and PNG files (release `tflib/save_images.py` behaviour, NHWC)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from mergan_tf.run_dir import atomic_path


def to_uint8(images) -> np.ndarray:
    """[-1, 1] floats to uint8 as the release writes samples: (x + 1) * 255 / 2."""
    x = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray, rows: int | None = None, pad: int = 0) -> np.ndarray:
    """Tiles uint8 images [N, H, W, C] into one [rows*H, cols*W, C] image.

    Args:
      images: uint8 NHWC.
      rows: number of rows; default the most square layout (10x10 for 100 images).
      pad: pixels of black between tiles.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"make_grid expects NHWC images, got shape {images.shape}")
    n, h, w, c = images.shape
    rows = rows or int(math.floor(math.sqrt(n)))
    while n % rows:
        rows -= 1
    cols = n // rows
    grid = np.zeros((rows * (h + pad) - pad, cols * (w + pad) - pad, c), dtype=images.dtype)
    for i in range(n):
        r, col = divmod(i, cols)
        grid[r * (h + pad):r * (h + pad) + h, col * (w + pad):col * (w + pad) + w] = images[i]
    return grid


def save_png(image: np.ndarray, path: str) -> None:
    """Writes a uint8 [H, W, 1|3] image atomically (temporary name, then rename)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    with atomic_path(path, keep_extension=True) as tmp:
        Image.fromarray(image).save(tmp)
