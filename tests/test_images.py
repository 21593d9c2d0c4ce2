"""mergan_tf.images on its own: the release's uint8 conversion, grid layout, PNG files."""

import os

import numpy as np
import pytest
from PIL import Image

from mergan_tf import images


def test_to_uint8_by_hand():
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, -2.0, 0.999], np.float32)
    # (x + 1) * 127.5, rounded to nearest (127.5 -> 128), clipped to [0, 255].
    expected = np.array([0, 64, 128, 191, 255, 255, 0, 255], np.uint8)
    got = images.to_uint8(x)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(images.to_uint8(x.reshape(2, 2, 2, 1)),
                                  expected.reshape(2, 2, 2, 1))


def tiles(n, h=2, w=3, c=1):
    """n images, image i filled with the value i + 1."""
    return np.stack([np.full((h, w, c), i + 1, np.uint8) for i in range(n)])


def test_make_grid_layout():
    grid = images.make_grid(tiles(6), pad=1)
    # Default rows: floor(sqrt(6)) = 2, so 2 rows x 3 columns, 1 black pixel between tiles.
    assert grid.shape == (2 * 2 + 1, 3 * 3 + 2, 1) and grid.dtype == np.uint8
    for i in range(6):
        r, c = divmod(i, 3)
        np.testing.assert_array_equal(grid[r * 3:r * 3 + 2, c * 4:c * 4 + 3], i + 1)
    assert not grid[2].any() and not grid[:, 3].any() and not grid[:, 7].any()
    assert images.make_grid(tiles(100, 32, 32)).shape == (320, 320, 1)  # the release's 10x10
    # rows that do not divide n fall to the next divisor: 6 images in 4 rows -> 3 x 2.
    assert images.make_grid(tiles(6), rows=4).shape == (3 * 2, 2 * 3, 1)
    assert images.make_grid(tiles(5, c=3), rows=1).shape == (2, 15, 3)
    with pytest.raises(ValueError, match="NHWC"):
        images.make_grid(np.zeros((4, 2, 2), np.uint8))


@pytest.mark.parametrize("channels,mode", [(1, "L"), (3, "RGB")])
def test_save_png_round_trip(channels, mode, tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (5, 7, channels), dtype=np.uint8)
    path = str(tmp_path / "sub" / "grid.png")
    images.save_png(image, path)
    assert os.listdir(tmp_path / "sub") == ["grid.png"]  # written under a temporary name
    with Image.open(path) as png:
        assert png.mode == mode and png.size == (7, 5)
        np.testing.assert_array_equal(np.asarray(png).reshape(5, 7, channels), image)
