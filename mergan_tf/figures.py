"""Qualitative figures of a run: Figure 3, the "remembering" mosaic (Fig. 5), the
evolution of one class over training (Fig. 7), the GIF.

- Figure 3: after the last task, rows = classes, columns = latent vectors (same z in
  every row).
- Remembering mosaic (the paper's Fig. 5): per run, rows = classes (LSUN: categories),
  columns = the snapshot after each task, one block per latent vector; runs side by side,
  titled by method.
- Evolution (the paper's Fig. 7, LSUN bedroom): one class's image for a few latent vectors
  at log-spaced iterations (0, 1, 2, 4, ... and each task's last) of every task from the
  one that learned it, cut from the training grids; one row per run and latent vector.
- Training GIF (the release's `mnist.gif`): one frame per (task, iteration) of the run's
  `samples/Task_{t}_Iter_{i}_{c}.png` grids, in training order.

`make_figures` writes Figure 3 and each run's mosaic as labelled PNGs (class names on the
rows, "after task t" or the latent vector on the columns, the method in the title);
`figure3_grid` and `remembering_mosaic` return the raw pixel grids.

Images are generated as the trainer's grids are, from the run's 100 fixed latent vectors
(`fixed_noise.npy`) in the run's batch regime (batch statistics depend on the batch; see
`mergan_tf.sampling`): each class one batch, or for JT mixed batches of every learned
class. The first columns are shown, so a Figure 3 row equals the first row of the last grid.
"""

from __future__ import annotations

import math
import os
import re
from typing import Iterator, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from mergan_tf import export  # noqa: E402
from mergan_tf import images as image_lib  # noqa: E402
from mergan_tf import sampling, snapshots  # noqa: E402
from mergan_tf.run_dir import FIXED_NOISE, SAMPLES, atomic_path  # noqa: E402

_SAMPLE_RE = re.compile(r"^Task_(\d+)_Iter_(\d+)_(\d+)\.png$")
_UNLEARNED_GRAY = 96  # cells of classes a snapshot has not learned yet


def fixed_noise(run_dir: str) -> np.ndarray:
    """The run's fixed latent vectors [100, z_dim] (those of every training grid)."""
    path = os.path.join(run_dir, FIXED_NOISE)
    if not os.path.exists(path):
        raise snapshots.SnapshotError(f"{run_dir} has no {FIXED_NOISE}; is it a run directory?")
    return np.load(path).astype(np.float32)


def class_images(generator, noise: np.ndarray, classes: Sequence[int],
                 regime: str) -> dict[int, np.ndarray]:
    """{class: uint8 [N, H, W, C]} of every class from the same `noise`, in the batch
    regime `regime` (see `sampling.sample_same_noise`), as the trainer's grids."""
    def sample_fn(z, labels):
        return generator(tf.constant(z), tf.constant(labels, tf.int32)).numpy()
    return {c: image_lib.to_uint8(x)
            for c, x in sampling.sample_same_noise(sample_fn, noise, classes, regime).items()}


def _regime(run_dir: str) -> str:
    return sampling.regime_of(snapshots.load_run_config(run_dir).method.name)


def snapshot_generators(run_dir: str) -> Iterator[tuple[int, object, dict]]:
    """(task, generator, snapshot info) for every snapshot, restored into one model."""
    tasks = snapshots.list_snapshots(run_dir)
    if not tasks:
        raise snapshots.SnapshotError(f"no task snapshots in {run_dir}/snapshots")
    generator, info = snapshots.load_generator(run_dir, tasks[0])
    yield tasks[0], generator, info
    for task in tasks[1:]:
        yield task, generator, snapshots.restore_into(run_dir, task, generator=generator)


def figure3_grid(run_dir: str, num_z: int = 10, pad: int = 2) -> np.ndarray:
    """Figure 3 of one run: rows = classes learned by the last snapshot, columns =
    the first `num_z` fixed latent vectors. Returns a uint8 [H, W, C] image."""
    noise = fixed_noise(run_dir)
    if not 0 < num_z <= len(noise):
        raise ValueError(f"num_z must be in 1..{len(noise)}, got {num_z}")
    last = snapshots.list_snapshots(run_dir)[-1:]
    if not last:
        raise snapshots.SnapshotError(f"no task snapshots in {run_dir}/snapshots")
    generator, info = snapshots.load_generator(run_dir, last[0])
    images = class_images(generator, noise, info["classes"], _regime(run_dir))
    rows = [images[c][:num_z] for c in info["classes"]]
    return image_lib.make_grid(np.concatenate(rows), rows=len(rows), pad=pad)


def remembering_mosaic(run_dir: str, z_indices: Sequence[int] = (0, 1),
                       pad: int = 2) -> tuple[np.ndarray, list[int], list[int]]:
    """One run's block of the remembering figure.

    Returns:
      (uint8 image, classes, tasks): one block per z index stacked vertically; in a
      block, rows = the run's classes in task order, columns = the snapshot after each
      task, the same latent vector everywhere; gray where a class is not learned yet.
    """
    cfg = snapshots.load_run_config(run_dir)
    noise = fixed_noise(run_dir)
    classes = list(cfg.classes)
    shape = (cfg.model.image_size, cfg.model.image_size, cfg.model.channels)
    cells = {}  # (class, task) -> uint8 images of the chosen z indices
    tasks = []
    regime = sampling.regime_of(cfg.method.name)
    for task, generator, info in snapshot_generators(run_dir):
        tasks.append(task)
        for c, images in class_images(generator, noise, info["classes"], regime).items():
            cells[(c, task)] = images[list(z_indices)]
    blank = np.full(shape, _UNLEARNED_GRAY, np.uint8)
    blocks = []
    for k in range(len(z_indices)):
        tiles = [cells[(c, t)][k] if (c, t) in cells else blank for c in classes for t in tasks]
        blocks.append(image_lib.make_grid(np.stack(tiles), rows=len(classes), pad=pad))
    gap = np.full((4 * pad, blocks[0].shape[1], shape[2]), 255, np.uint8)
    stacked = [part for block in blocks for part in (block, gap)][:-1]
    return np.concatenate(stacked), classes, tasks


def class_labels(run_dir: str, classes: Sequence[int]) -> list[str]:
    """Row labels of classes: their names (an LSUN run's categories, Fashion-MNIST's
    names), else the class ids."""
    cfg = snapshots.load_run_config(run_dir)
    names = export.class_names(cfg.data.dataset, cfg.model.num_label_slots, cfg.data.categories)
    return [names[c] if 0 <= c < len(names) else str(c) for c in classes]


def task_labels(tasks: Sequence[int]) -> list[str]:
    """Column labels of snapshots: "after task t"."""
    return [f"after task {t}" for t in tasks]


def _run_title(run_dir: str) -> str:
    cfg = snapshots.load_run_config(run_dir)
    return f"{cfg.method.name.upper()}\n{os.path.basename(os.path.normpath(run_dir))}"


def _run_heading(run_dir: str) -> str:
    """The method and the run directory's name on one line, e.g. "RA (mnist_ra)"."""
    method, name = _run_title(run_dir).split("\n")
    return f"{method} ({name})"


def figure3_labels(run_dir: str, num_z: int = 10) -> dict:
    """Labels of a run's Figure 3: {"title": method, run and "after task t" of the last
    snapshot, "rows": class names, "columns": "z0", "z1", ... (the latent vectors)}."""
    last = snapshots.list_snapshots(run_dir)[-1:]
    if not last:
        raise snapshots.SnapshotError(f"no task snapshots in {run_dir}/snapshots")
    classes = snapshots.read_snapshot_info(run_dir, last[0])["classes"]
    return {"title": f"{_run_heading(run_dir)}: {task_labels(last)[0]}",
            "rows": class_labels(run_dir, classes),
            "columns": [f"z{k}" for k in range(num_z)]}


def mosaic_labels(run_dir: str, classes: Sequence[int], tasks: Sequence[int]) -> dict:
    """Labels of a run's remembering mosaic: {"title": method and run, "rows": class
    names, "columns": "after task t" of every snapshot}."""
    return {"title": _run_heading(run_dir), "rows": class_labels(run_dir, classes),
            "columns": task_labels(tasks)}


def _show(ax, image: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str],
          pad: int, blocks: int = 1, gap: int = 0, fontsize: float = 7) -> None:
    """Draws a `make_grid` image (or `blocks` of them stacked with `gap` pixels between)
    with a label at the centre of every row and column of cells."""
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0,
              vmax=255, interpolation="nearest")
    cell_w = (image.shape[1] + pad) / len(col_labels)
    block_h = (image.shape[0] - (blocks - 1) * gap) / blocks
    cell_h = (block_h + pad) / len(row_labels)
    rotate = max(len(c) for c in col_labels) > 3  # "after task t" would overlap
    ax.set_xticks([j * cell_w + (cell_w - pad) / 2 for j in range(len(col_labels))],
                  list(col_labels), fontsize=fontsize, rotation=45 if rotate else 0,
                  ha="right" if rotate else "center", rotation_mode="anchor")
    ax.set_yticks([b * (block_h + gap) + i * cell_h + (cell_h - pad) / 2
                   for b in range(blocks) for i in range(len(row_labels))],
                  list(row_labels) * blocks, fontsize=fontsize)
    ax.tick_params(length=0)


def save_labelled_grid(image: np.ndarray, out_path: str, labels: dict, xlabel: str,
                       ylabel: str, pad: int = 2, blocks: int = 1, gap: int = 0,
                       tile: int = 32) -> str:
    """A raw grid as a PNG a reader can read alone: `labels["rows"]` on the left,
    `labels["columns"]` below, `labels["title"]` on top; tiles drawn at >= 64 pixels."""
    zoom = max(1.0, 64 / tile)
    fig, ax = plt.subplots(figsize=(image.shape[1] * zoom / 100 + 0.5,
                                    image.shape[0] * zoom / 100 + 0.5))
    _show(ax, image, labels["rows"], labels["columns"], pad, blocks, gap, fontsize=9)
    ax.set_title(labels["title"], fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    return _save_matplotlib(fig, out_path, dpi=100, tight=True)


def save_figure3(run_dir: str, out_path: str, num_z: int = 10, pad: int = 2) -> str:
    """Figure 3 as a labelled PNG: classes on the rows, latent vectors on the columns,
    method and "after task t" in the title."""
    grid = figure3_grid(run_dir, num_z, pad)
    tile = snapshots.load_run_config(run_dir).model.image_size
    return save_labelled_grid(grid, out_path, figure3_labels(run_dir, num_z),
                              "latent vector (the same z in every row)", "class", pad,
                              tile=tile)


def save_mosaic(run_dir: str, out_path: str, z_indices: Sequence[int] = (0, 1),
                pad: int = 2) -> str:
    """One run's remembering mosaic as a labelled PNG: classes on the rows (one block per
    latent vector), "after task t" on the columns, the method in the title."""
    mosaic, classes, tasks = remembering_mosaic(run_dir, z_indices, pad)
    tile = snapshots.load_run_config(run_dir).model.image_size
    return save_labelled_grid(mosaic, out_path, mosaic_labels(run_dir, classes, tasks),
                              "snapshot (gray: class not learned yet)",
                              f"class; one block per latent vector {tuple(z_indices)}",
                              pad, blocks=len(z_indices), gap=4 * pad, tile=tile)


def save_remembering_figure(run_dirs: Sequence[str], out_path: str,
                            z_indices: Sequence[int] = (0, 1), pad: int = 2) -> str:
    """The remembering mosaics of several runs side by side, titled by method."""
    fig, axes = plt.subplots(1, len(run_dirs), squeeze=False,
                             figsize=(2.2 + 2.2 * len(run_dirs), 2.5 + 1.6 * len(z_indices)))
    for ax, run_dir in zip(axes[0], run_dirs):
        mosaic, classes, tasks = remembering_mosaic(run_dir, z_indices, pad)
        _show(ax, mosaic, class_labels(run_dir, classes), [str(t) for t in tasks], pad,
              blocks=len(z_indices), gap=4 * pad)
        ax.set_xlabel("after task")
        ax.set_title(_run_title(run_dir), fontsize=9)
    axes[0][0].set_ylabel("class (one block per latent vector)")
    fig.tight_layout()
    return _save_matplotlib(fig, out_path)


def _save_matplotlib(fig, out_path: str, dpi: int = 150, tight: bool = False) -> str:
    """Writes a figure atomically; `tight` crops it to what is drawn (labels included)."""
    with atomic_path(out_path, keep_extension=True) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return out_path


def sample_frames(run_dir: str) -> list[tuple[int, int, dict[int, str]]]:
    """(task, iteration, {class: grid PNG}) of the run's sample grids, in training order."""
    root = os.path.join(run_dir, SAMPLES)
    frames: dict[tuple[int, int], dict[int, str]] = {}
    for name in os.listdir(root) if os.path.isdir(root) else []:
        m = _SAMPLE_RE.match(name)
        if m:
            task, iteration, cls = (int(g) for g in m.groups())
            frames.setdefault((task, iteration), {})[cls] = os.path.join(root, name)
    return [(t, i, frames[(t, i)]) for t, i in sorted(frames)]


GIF_CAPTION = 12  # pixels above each class grid of a GIF frame for its class label


def gif_class_captions(run_dir: str, classes: Sequence[int]) -> dict[int, str]:
    """The label over each class grid of the GIF: "class c", or the class's name where it
    has one ("bedroom", "Trouser")."""
    try:
        names = class_labels(run_dir, classes)
    except snapshots.SnapshotError:  # samples without a readable config: the ids
        names = [str(c) for c in classes]
    return {c: f"class {c}" if name == str(c) else name for c, name in zip(classes, names)}


def _gif_frame(task: int, iteration: int, grids: dict[int, str], slots: list[int],
               cols: int, cell: int, mode: str, captions: dict[int, str],
               header: int = 14, gap: int = 4) -> Image.Image:
    """One GIF frame: the class grids in their slots, each under its caption, below a
    "task T  iter I" line."""
    rows, step_x, step_y = -(-len(slots) // cols), cell + gap, GIF_CAPTION + cell + gap
    frame = Image.new(mode, (cols * step_x - gap, header + rows * step_y - gap))
    draw = ImageDraw.Draw(frame)
    white = 255 if mode == "L" else (255, 255, 255)
    for cls, path in grids.items():
        r, c = divmod(slots.index(cls), cols)
        with Image.open(path) as grid:
            tile = grid.convert(mode).resize((cell, cell), Image.BILINEAR)
        frame.paste(tile, (c * step_x, header + r * step_y + GIF_CAPTION))
        draw.text((c * step_x + 2, header + r * step_y), captions.get(cls, str(cls)), fill=white)
    draw.text((4, 2), f"task {task}  iter {iteration}", fill=white)
    return frame


def save_training_gif(run_dir: str, out_path: str, cell: int = 160, max_cols: int = 5,
                      duration_ms: int = 120) -> str:
    """The animated GIF of a run's class grids over training (the release's mnist.gif).

    Args:
      run_dir: the run directory (its `samples/Task_*_Iter_*_*.png`).
      out_path: the GIF to write.
      cell: side in pixels of each class grid in a frame.
      max_cols: class grids per frame row; each class keeps its slot in every frame.
      duration_ms: display time of each frame.

    Returns:
      `out_path`; the GIF has one frame per (task, iteration) with sample grids, each
      grid under its class label (`gif_class_captions`).
    """
    frames = sample_frames(run_dir)
    if not frames:
        raise FileNotFoundError(f"no samples/Task_*_Iter_*_*.png grids in {run_dir}")
    seen = sorted({c for _, _, grids in frames for c in grids})
    try:
        order = list(snapshots.load_run_config(run_dir).classes)
    except snapshots.SnapshotError:
        order = []
    slots = [c for c in order if c in seen] + [c for c in seen if c not in order]
    cols = min(max_cols, len(slots))
    with Image.open(next(iter(frames[0][2].values()))) as probe:
        mode = "L" if probe.mode == "L" else "RGB"
    captions = gif_class_captions(run_dir, slots)
    images = (_gif_frame(t, i, grids, slots, cols, cell, mode, captions)
              for t, i, grids in frames)
    first = next(images)
    with atomic_path(out_path, keep_extension=True) as tmp:
        first.save(tmp, save_all=True, append_images=images, duration=duration_ms, loop=0)
    return out_path


def grid_tile(grid: np.ndarray, index: int, num_images: int, size: int) -> np.ndarray:
    """Image `index` of a training grid of `num_images` tiles of `size` pixels (the layout
    of `images.make_grid` without padding)."""
    rows = int(math.floor(math.sqrt(num_images)))
    while num_images % rows:
        rows -= 1
    r, c = divmod(index, num_images // rows)
    return grid[r * size:(r + 1) * size, c * size:(c + 1) * size]


def log_spaced(iterations: Sequence[int]) -> list[int]:
    """0, the powers of two and the last of a task's sampled iterations (Fig. 7 steps)."""
    its = sorted(set(iterations))
    return [i for i in its if i == 0 or i & (i - 1) == 0 or i == its[-1]]


def evolution_strip(run_dir: str, cls: int, z_indices: Sequence[int] = (0, 1),
                    pad: int = 2) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """One run's row(s) of Figure 7: class `cls` over training, from its sample grids.

    Returns:
      (uint8 image with one row per z index, [(task, iteration)] of the columns).

    Raises:
      FileNotFoundError: the run has no sample grid of `cls`.
    """
    cfg = snapshots.load_run_config(run_dir)
    n, size = cfg.output.num_fixed_noise, cfg.model.image_size
    bad = [k for k in z_indices if not 0 <= k < n]
    if bad:
        raise ValueError(f"z indices {bad} outside the {n} fixed latent vectors")
    by_task: dict[int, dict[int, str]] = {}
    for task, iteration, grids in sample_frames(run_dir):
        if cls in grids:
            by_task.setdefault(task, {})[iteration] = grids[cls]
    if not by_task:
        raise FileNotFoundError(f"no samples/Task_*_Iter_*_{cls}.png grids in {run_dir}: "
                                f"class {cls} was never sampled")
    columns, tiles = [], {k: [] for k in z_indices}
    for task in sorted(by_task):
        for iteration in log_spaced(by_task[task]):
            columns.append((task, iteration))
            with Image.open(by_task[task][iteration]) as img:
                grid = np.asarray(img.convert("L" if cfg.model.channels == 1 else "RGB"))
            grid = grid.reshape(grid.shape[0], grid.shape[1], -1)
            for k in z_indices:
                tiles[k].append(grid_tile(grid, k, n, size))
    strip = np.stack([t for k in z_indices for t in tiles[k]])
    return image_lib.make_grid(strip, rows=len(z_indices), pad=pad), columns


def save_evolution_figure(run_dirs: Sequence[str], out_path: str, cls: int = 0,
                          z_indices: Sequence[int] = (0, 1), pad: int = 2) -> str:
    """Figure 7: the evolution strips of several runs stacked, titled by method, with the
    (task, iteration) of every column."""
    strips = [evolution_strip(r, cls, z_indices, pad) for r in run_dirs]
    width = max(s.shape[1] for s, _ in strips)
    fig, axes = plt.subplots(len(run_dirs), 1, squeeze=False,
                             figsize=(2 + width / 60, 0.6 + 1.3 * len(run_dirs) * len(z_indices)))
    for ax, run_dir, (strip, columns) in zip(axes[:, 0], run_dirs, strips):
        ax.imshow(strip[..., 0] if strip.shape[-1] == 1 else strip, cmap="gray", vmin=0,
                  vmax=255, interpolation="nearest")
        cell = strip.shape[1] / len(columns)
        ax.set_xticks([(i + 0.5) * cell for i in range(len(columns))],
                      [f"T{t}\n{i}" for t, i in columns], fontsize=5)
        ax.set_yticks([])
        ax.set_ylabel(_run_title(run_dir).replace("\n", " "), fontsize=7)
    name = class_labels(run_dirs[0], [cls])[0]
    axes[0, 0].set_title(f"{name}: one row per latent vector {list(z_indices)}; columns = "
                         "task, iteration (log-spaced)", fontsize=8)
    fig.tight_layout()
    return _save_matplotlib(fig, out_path)


def _unique_names(run_dirs: Sequence[str]) -> list[str]:
    names = []
    for run_dir in run_dirs:
        base = os.path.basename(os.path.normpath(run_dir)) or "run"
        name, k = base, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def make_figures(run_dirs: Sequence[str], out_dir: str, num_z: int = 10,
                 mosaic_z: Sequence[int] = (0, 1), evolution_class: int | None = 0,
                 gif: bool = True) -> dict[str, list[str]]:
    """Every figure of the runs; returns {"figure3": [...], "mosaic": [...],
    "remembering": [...], "evolution": [...], "gif": [...]} with the paths written.

    Per run: Figure 3 (`<run>_figure3.png`) and its remembering mosaic
    (`<run>_mosaic.png`) as labelled PNGs (`save_figure3`, `save_mosaic`), and the training
    GIF (`gif=False` skips it); for all runs: `remembering.png` (Fig. 5) and, with
    `evolution_class` not None, `evolution_class_<c>.png` (Fig. 7).
    """
    written: dict[str, list[str]] = {k: [] for k in
                                     ("figure3", "mosaic", "remembering", "evolution", "gif")}
    for run_dir, name in zip(run_dirs, _unique_names(run_dirs)):
        written["figure3"].append(
            save_figure3(run_dir, os.path.join(out_dir, f"{name}_figure3.png"), num_z))
        written["mosaic"].append(
            save_mosaic(run_dir, os.path.join(out_dir, f"{name}_mosaic.png"), mosaic_z))
        if gif:
            path = os.path.join(out_dir, f"{name}_training.gif")
            written["gif"].append(save_training_gif(run_dir, path))
    written["remembering"].append(
        save_remembering_figure(run_dirs, os.path.join(out_dir, "remembering.png"), mosaic_z))
    if evolution_class is not None:
        path = os.path.join(out_dir, f"evolution_class_{evolution_class}.png")
        written["evolution"].append(save_evolution_figure(run_dirs, path, evolution_class, mosaic_z))
    return written
