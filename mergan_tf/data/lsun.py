"""LSUN scene categories at model resolution (64x64 RGB uint8), as the release trains on.

The release (`tflib/lsun.py`) reads `<data_dir>/<category>/{train,val}/<image files>` with
100,000 training images per category and trains the four tasks bedroom, kitchen,
church_outdoor, tower; its LSUN evaluation classifier knows the ten categories of
`LSUN_CATEGORIES` with the ids given there. Labels of the loaded data are TASK indices
(0..len(categories)-1), as the release's generator is conditioned; `evaluator_ids` maps
them to the classifier's ids.

Sources, resolved by `load_lsun`:

* ``files``: the release's folder layout `<data_dir>/<category>/train/` (and `val/`);
  .jpg/.jpeg/.png/.webp files, found recursively (LSUN's own `data.py export` nests them).
* ``lmdb``: LSUN's download format `<data_dir>/<category>_train_lmdb` (and `_val_lmdb`),
  whose values are encoded images; needs the `lmdb` package.
* ``tfds``: `tfds:lsun/<category>` when already prepared locally; never downloaded here
  (the LSUN archives are tens of gigabytes).

Every image is center-cropped to a square and resized to `image_size` with PIL's bilinear
filter, which widens with the scale factor when shrinking (antialiased, like
`tf.image.resize(..., antialias=True)`). The release resized without cropping
(`scipy.misc.imresize`), which stretches non-square images.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import os
from typing import Callable, Iterable, Sequence

import numpy as np
from absl import logging
from PIL import Image

from mergan_tf import configs
from mergan_tf.data import tfds as tfds_source
from mergan_tf.data.errors import DataError, listing
from mergan_tf.data.image_data import ImageData

LSUN_CATEGORIES = configs.LSUN_CATEGORIES
"""The release's LSUN evaluation classifier: category name -> class id (read-only)."""

TASK_CATEGORIES = configs.LSUN_TASKS
"""The release's LSUN task sequence (evaluator ids 0, 1, 8, 6)."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
_SOURCES = configs.DATA_SOURCES["lsun"]
_SPLITS = (("train", "train", "train"), ("test", "val", "validation"))  # ours, folder/lmdb, tfds
_LMDB_CHUNK = 1024
_LAYOUT = ("<data_dir>/<category>/train/<images> (optionally .../val/<images>), or LSUN's "
           "<data_dir>/<category>_train_lmdb")


def evaluator_ids(categories: Sequence[str] = TASK_CATEGORIES) -> list[int]:
    """The evaluation classifier's class ids of `categories` (task order).

    Raises:
        DataError: For a category the classifier does not know.
    """
    unknown = [c for c in categories if c not in LSUN_CATEGORIES]
    if unknown:
        raise DataError(f"LSUN categories {unknown} are not among the evaluation "
                        f"classifier's {list(LSUN_CATEGORIES)}.")
    return [LSUN_CATEGORIES[c] for c in categories]


@dataclasses.dataclass(frozen=True)
class _Part:
    """The images of one category and split, planned before any is decoded."""

    label: int
    split: str                                     # "train" or "test"
    count: int
    fill: Callable[[np.ndarray], None]             # decodes `count` images into the array


# 40+ lines only through its Args/Returns docstring; the code is 19 lines.
def load_lsun(data_dir: str | None = None, categories: Sequence[str] = TASK_CATEGORIES,
              image_size: int = 64, max_images_per_class: int | None = None,
              source: str = "auto", verbose: bool = True) -> ImageData:
    """Loads LSUN categories as one labelled dataset of `image_size` RGB images.

    Args:
        data_dir: Directory of the image folders and/or LMDB exports; with
            ``source="tfds"`` the TFDS data directory (None: TFDS's default).
        categories: LSUN category names; label i is `categories[i]`.
        image_size: Output side in pixels (release 64).
        max_images_per_class: Keep only the first N images of each category and split
            (sorted by path below the split folder, or by LMDB key), None for all. The
            release used 100,000 training images per category.
        source: "auto" (per category: folders, else an LMDB export, in `data_dir`;
            without `data_dir`, TFDS if every category is prepared), "files", "lmdb" or
            "tfds".
        verbose: Print one line naming the source and the counts.

    Returns:
        An `ImageData` named "lsun": uint8 [N, S, S, 3] train images from `train/`, test
        images from `val/` for the categories that have one (None if none has), int64
        labels, `class_names` = the categories.

    Raises:
        DataError: Bad arguments, a missing category or `data_dir`, a category without
            images, an unreadable image (named), a missing `lmdb` package, TFDS data not
            prepared, or more images than fit in memory.
    """
    categories = _check_arguments(categories, image_size, max_images_per_class, source)
    if source == "tfds" or (source == "auto" and data_dir is None):
        parts, where = _plan_tfds(data_dir, categories, image_size, max_images_per_class,
                                  strict=source == "tfds")
    else:
        parts, where = _plan_dir(data_dir, categories, image_size, max_images_per_class, source)
    _check_memory(sum(p.count for p in parts), image_size)
    train = _assemble([p for p in parts if p.split == "train"], image_size)
    test = _assemble([p for p in parts if p.split == "test"], image_size)
    data = ImageData("lsun", where, train[0], train[1], test[0], test[1], len(categories),
                     tuple(categories))
    if verbose:
        n_test = 0 if test[0] is None else len(test[0])
        logging.info("Loaded lsun %s from %s: %d train / %d test images of %s.",
                     list(categories), where, len(train[0]), n_test, [image_size, image_size, 3])
    return data


def load_evaluator_data(data_dir: str | None = None,
                        categories: Sequence[str] = tuple(LSUN_CATEGORIES),
                        image_size: int = 64, max_images_per_class: int | None = None,
                        source: str = "auto", verbose: bool = True) -> ImageData:
    """LSUN categories labelled with the evaluation classifier's ids (`LSUN_CATEGORIES`).

    What `scripts/train_classifier.py --dataset lsun` trains on: by default all ten
    categories of the release's classifier; a subset keeps the ten ids (a category's label
    is its id, not its position) and `num_classes` stays 10.

    Raises:
        DataError: As `load_lsun`, and for a category the classifier does not know.
    """
    ids = np.asarray(evaluator_ids(categories), np.int64)
    data = load_lsun(data_dir, categories, image_size, max_images_per_class, source, verbose)
    test_labels = None if data.test_labels is None else ids[data.test_labels]
    return ImageData("lsun", data.source, data.train_images, ids[data.train_labels],
                     data.test_images, test_labels, len(LSUN_CATEGORIES), tuple(LSUN_CATEGORIES))


def _check_arguments(categories, image_size, max_images_per_class, source):
    """Validates the arguments of `load_lsun`; returns the categories as a tuple."""
    if isinstance(categories, str):
        categories = (categories,)
    categories = tuple(categories)
    if not categories or len(set(categories)) != len(categories):
        raise DataError(f"categories must be distinct LSUN category names, got {categories}.")
    if source not in _SOURCES:
        raise DataError(f"unknown LSUN source {source!r}; use one of {_SOURCES}.")
    if image_size < 1:
        raise DataError(f"image_size must be >= 1, got {image_size}.")
    if max_images_per_class is not None and max_images_per_class < 1:
        raise DataError(f"max_images_per_class must be >= 1 or None, got {max_images_per_class}.")
    return categories


# ---------------------------------------------------------------------- images, memory


def decode_image(data: str | bytes, size: int, name: str | None = None) -> np.ndarray:
    """Decodes an image file or encoded bytes; center-crops to a square; resizes to `size`.

    Args:
        data: A file path, or the encoded bytes (jpg, png, webp, ...).
        size: Output side in pixels.
        name: What to call the image in errors (default: the path).

    Returns:
        uint8 [size, size, 3] RGB.

    Raises:
        DataError: Naming the image when PIL cannot read it.
    """
    name = name or str(data)
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            img = img.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {name}: {e}. Delete or replace the file.") from e
    return _crop_resize(img, size)


def _crop_resize(img: Image.Image, size: int) -> np.ndarray:
    """Center square crop, then an antialiased bilinear resize of the crop alone."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    if (w, h) != (side, side):
        # Crop first: resize(box=...) would let the filter reach outside the square.
        img = img.crop((left, top, left + side, top + side))
    if side != size:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _decode_into(out: np.ndarray, items: Iterable, decode: Callable[..., np.ndarray]):
    """Decodes `items` into consecutive rows of `out` with a few threads (PIL drops the GIL)."""
    workers = max(1, min(8, os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for i, image in enumerate(pool.map(decode, items)):
            out[i] = image


def _check_memory(num_images, size):
    """Refuses a load that cannot fit in physical memory, before decoding anything."""
    need = num_images * size * size * 3
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > 0.8 * have:
        raise DataError(f"{num_images} LSUN images of {size}x{size}x3 need {need / 2**30:.1f} "
                        f"GiB, more than this machine's memory ({have / 2**30:.1f} GiB); pass "
                        "max_images_per_class (the release used 100000).")


def _assemble(parts, size):
    """Concatenates the planned parts of one split into (images, labels), or (None, None)."""
    if not parts:
        return None, None
    images = np.empty((sum(p.count for p in parts), size, size, 3), np.uint8)
    labels = np.empty(len(images), np.int64)
    start = 0
    for p in parts:
        p.fill(images[start:start + p.count])
        labels[start:start + p.count] = p.label
        start += p.count
    return images, labels


# ---------------------------------------------------------------- folders and LMDB


def _plan_dir(data_dir, categories, size, limit, source):
    """Plans every category's splits from `data_dir` (image folders or LMDB exports)."""
    if data_dir is None:
        raise DataError(f"source={source!r} needs data_dir with the LSUN images: {_LAYOUT}.")
    data_dir = os.path.abspath(os.path.expanduser(data_dir))
    if not os.path.isdir(data_dir):
        raise DataError(f"LSUN data directory {data_dir} does not exist; expected {_LAYOUT}.")
    parts, kinds = [], set()
    for label, category in enumerate(categories):
        kind = source if source != "auto" else _detect(data_dir, category)
        plan = _plan_folders if kind == "files" else _plan_lmdb
        parts += plan(data_dir, category, label, size, limit)
        kinds.add({"files": "image folders", "lmdb": "LMDB exports"}[kind])
    return parts, f"lsun {' + '.join(sorted(kinds))} in {data_dir}"


def _detect(data_dir, category):
    """'files' or 'lmdb': which layout holds `category`."""
    if os.path.isdir(os.path.join(data_dir, category)):
        return "files"
    if os.path.isdir(os.path.join(data_dir, f"{category}_train_lmdb")):
        return "lmdb"
    raise DataError(f"LSUN category {category!r} not found in {data_dir}: expected the folder "
                    f"{category}/train/ with its images (release layout "
                    f"<data_dir>/<category>/{{train,val}}/<images>) or LSUN's "
                    f"{category}_train_lmdb; found {listing(data_dir)}.")


def _plan_folders(data_dir, category, label, size, limit):
    """The train (and, if present, val) folder of one category in the release's layout."""
    category_dir = os.path.join(data_dir, category)
    if not os.path.isdir(os.path.join(category_dir, "train")):
        found = listing(category_dir) if os.path.isdir(category_dir) else "no such folder"
        raise DataError(f"LSUN category {category!r}: missing folder {category_dir}/train "
                        f"(found {found}); expected the release layout "
                        "<data_dir>/<category>/{train,val}/<images>.")
    parts = []
    for split, folder, _ in _SPLITS:
        split_dir = os.path.join(category_dir, folder)
        if split == "test" and not os.path.isdir(split_dir):
            continue
        paths = list_images(split_dir)
        if not paths:
            raise DataError(f"LSUN category {category!r}: {split_dir} holds no images "
                            f"({'/'.join(IMAGE_EXTENSIONS)}); found {listing(split_dir)}.")
        paths = paths[:limit]
        fill = lambda out, paths=paths: _decode_into(out, paths, lambda p: decode_image(p, size))
        parts.append(_Part(label, split, len(paths), fill))
    return parts


def list_images(folder: str) -> list[str]:
    """Image files below `folder` (recursively; hidden entries skipped), sorted by path."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [os.path.join(root, f) for f in files
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found, key=lambda p: os.path.relpath(p, folder).split(os.sep))


def _import_lmdb():
    """The `lmdb` module, or a DataError saying how to get it."""
    try:
        import lmdb  # pylint: disable=import-outside-toplevel
    except ImportError as e:
        raise DataError("reading LSUN's LMDB exports (<category>_train_lmdb) needs the lmdb "
                        "package: pip install lmdb. Or export the images to "
                        "<data_dir>/<category>/train/ (LSUN's data.py export).") from e
    return lmdb


def _open_lmdb(lmdb, path):
    """Opens an LMDB export read-only; DataError naming it when that fails."""
    try:
        return lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False,
                         max_readers=4)
    except lmdb.Error as e:
        raise DataError(f"cannot open LMDB {path}: {e}. Re-download or re-extract it.") from e


def _plan_lmdb(data_dir, category, label, size, limit):
    """The `<category>_train_lmdb` (and `_val_lmdb`) export of one category."""
    lmdb = _import_lmdb()
    parts = []
    for split, folder, _ in _SPLITS:
        path = os.path.join(data_dir, f"{category}_{folder}_lmdb")
        if not os.path.isdir(path):
            if split == "test":
                continue
            raise DataError(f"LSUN category {category!r}: missing LMDB {path}; expected "
                            f"{_LAYOUT}.")
        with _open_lmdb(lmdb, path) as env:
            count = int(env.stat()["entries"])
        if count == 0:
            raise DataError(f"LSUN category {category!r}: the LMDB {path} holds no images.")
        count = min(count, limit or count)
        parts.append(_Part(label, split, count,
                           lambda out, path=path: _fill_from_lmdb(lmdb, path, out, size)))
    return parts


def _fill_from_lmdb(lmdb, path, out, size):
    """Decodes the first len(out) values of an LMDB (in key order) into `out`."""
    with _open_lmdb(lmdb, path) as env, env.begin(write=False) as txn:
        cursor, start = txn.cursor(), 0
        more = cursor.first()
        while more and start < len(out):
            chunk = []
            while more and len(chunk) < min(_LMDB_CHUNK, len(out) - start):
                chunk.append((cursor.key(), cursor.value()))
                more = cursor.next()
            _decode_into(out[start:start + len(chunk)], chunk, lambda kv: decode_image(
                bytes(kv[1]), size, name=f"{kv[0].decode(errors='replace')} in {path}"))
            start += len(chunk)
    if start < len(out):
        raise DataError(f"the LMDB {path} yielded {start} images, fewer than its "
                        f"{len(out)} entries; re-download it.")


# ------------------------------------------------------------------------------- TFDS


def _plan_tfds(tfds_dir, categories, size, limit, strict):
    """Plans `tfds:lsun/<category>` for every category; never downloads."""
    builders = {}
    for category in categories:
        try:
            builders[category] = tfds_source.find_builder(f"lsun/{category}", tfds_dir)
        except ImportError as e:
            raise DataError("reading tfds:lsun needs tensorflow_datasets (pip install "
                            f"tensorflow-datasets); or pass data_dir with {_LAYOUT}.") from e
        except (ValueError, KeyError) as e:  # TFDS has no such config
            raise DataError(f"TFDS has no dataset lsun/{category}: {e}") from e
    missing = [c for c, b in builders.items() if not tfds_source.is_prepared(b)]
    if missing:
        where = builders[missing[0]].data_dir if builders[missing[0]] else tfds_dir
        hint = "" if strict else "no data_dir was given and "
        raise DataError(f"{hint}tfds:lsun/{missing[0]} is not prepared locally (looked in "
                        f"{where}); it is not downloaded here. Pass data_dir with {_LAYOUT}.")
    parts = []
    for label, category in enumerate(categories):
        builder = builders[category]
        for split, _, tfds_split in _SPLITS:
            if tfds_split not in builder.info.splits:
                continue
            count = builder.info.splits[tfds_split].num_examples
            count = min(count, limit or count)
            parts.append(_Part(label, split, count, lambda out, b=builder, s=tfds_split:
                               _fill_from_tfds(b, s, out, size)))
    return parts, f"tfds:lsun (prepared in {builders[categories[0]].data_dir_root})"


def _fill_from_tfds(builder, split, out, size):
    """Decodes the first len(out) examples of a TFDS split into `out`."""
    ds = builder.as_dataset(split=split).take(len(out))
    for i, example in enumerate(ds.as_numpy_iterator()):
        out[i] = _crop_resize(Image.fromarray(example["image"]).convert("RGB"), size)
