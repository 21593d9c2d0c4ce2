"""mergan_tf.figures on its own, on a tiny SFT run (2 tasks x 2 iterations, DIM 4)."""

import dataclasses

import numpy as np
import pytest

from mergan_tf import configs, figures, images, snapshots
from mergan_tf.run_dir import prepare_run_dir
from mergan_tf.trainer import Trainer

CLASSES = (3, 5)


@pytest.fixture(scope="module")
def run_dir(mnist_data, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("figures_run"))
    cfg = configs.preset_config("mnist", "sft")
    cfg = configs.validate(cfg.replace(
        classes=CLASSES, out_dir=out, model=dataclasses.replace(cfg.model, dim=4),
        train=dataclasses.replace(cfg.train, iters=2),
        output=dataclasses.replace(cfg.output, sample_every=1, log_every=1, export=False)))
    prepare_run_dir(cfg)
    Trainer(cfg, mnist_data).train()
    return out


def test_figure3_grid_rows_are_classes_columns_are_latent_vectors(run_dir):
    grid = figures.figure3_grid(run_dir, num_z=4, pad=2)
    assert grid.shape == (2 * 32 + 2, 4 * 32 + 3 * 2, 1) and grid.dtype == np.uint8
    generator, info = snapshots.load_generator(run_dir, 2)
    assert info["classes"] == list(CLASSES)
    noise = figures.fixed_noise(run_dir)
    assert noise.shape == (100, 128)
    for row, c in enumerate(CLASSES):
        # Each class is generated as one batch of all 100 vectors, as the training grids.
        expected = figures.class_images(generator, noise, CLASSES, "class")[c][:4]
        for k in range(4):
            tile = grid[row * 34:row * 34 + 32, k * 34:k * 34 + 32]
            np.testing.assert_array_equal(tile, expected[k])
    with pytest.raises(ValueError, match="num_z must be in 1..100"):
        figures.figure3_grid(run_dir, num_z=101)


def test_remembering_mosaic_is_gray_where_a_class_is_not_learned(run_dir):
    mosaic, classes, tasks = figures.remembering_mosaic(run_dir, z_indices=(0, 1), pad=2)
    assert (classes, tasks) == (list(CLASSES), [1, 2])
    block = 2 * 32 + 2  # 2 classes x 2 tasks per latent vector
    assert mosaic.shape == (2 * block + 8, 2 * 32 + 2, 1)
    np.testing.assert_array_equal(mosaic[34:66, 0:32], 96)  # class 5 after task 1
    assert (mosaic[0:32, 0:32] != 96).any()  # class 3 after task 1 is an image
    np.testing.assert_array_equal(mosaic[block:block + 8], 255)  # the gap between blocks


def test_grid_tiles_and_log_spaced_iterations():
    grid = images.make_grid(np.stack([np.full((2, 2, 1), i, np.uint8) for i in range(6)]))
    for i in range(6):
        np.testing.assert_array_equal(figures.grid_tile(grid, i, 6, 2), i)
    assert figures.log_spaced([9, 0, 1, 2, 3, 4, 5, 8, 2]) == [0, 1, 2, 4, 8, 9]


def test_a_directory_without_a_run(tmp_path):
    with pytest.raises(snapshots.SnapshotError, match="no fixed_noise.npy"):
        figures.figure3_grid(str(tmp_path))
    np.save(tmp_path / "fixed_noise.npy", np.zeros((100, 128), np.float32))
    with pytest.raises(snapshots.SnapshotError, match="no task snapshots"):
        figures.figure3_grid(str(tmp_path))
