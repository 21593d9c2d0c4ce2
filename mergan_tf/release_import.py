"""Import checkpoints of the original release (TF1 `mergan.py`/`joint.py`) as a run directory.

  python scripts/import_release.py --checkpoint result/mnist_RA/model/WGAN_GP.model9-4000 \
      --dataset mnist --method ra --out_dir runs/release_mnist_ra

Each `--checkpoint` prefix (comma-separated for several) becomes the task snapshot it was
written in: `WGAN_GP.model<class>-<iteration>` is the snapshot after the task of that class
in the release's order (MNIST/SVHN 0..9, LSUN bedroom, kitchen, church_outdoor, tower;
`--task T` overrides), `joint.py`'s `WGAN_GP.model-<iteration>` is the joint-training
snapshot of all ten classes. The run directory then holds what a run trained here holds
for evaluation, export, sampling and figures: `config.json` (the release's preset, the DIM
read from the checkpoint), `fixed_noise.npy`, `snapshots/task_NN/` (generator, critic, RNG
and step, as the trainer writes them), one sample grid per learned class
(`samples/Task_T_Iter_I_c.png`), `export/task_NN/` and `release_import.json` (what was
imported from where, and every file written). The weight mapping is `mergan_tf.release`.

The release does not record which method trained a checkpoint (`--RA`/`--JTR` are
command-line flags): pass `--method`; without it a `mergan.py` checkpoint is labelled
`sft` (the release's default) and `release_import.json` says the method was not given.

The checkpoint is only read. An existing non-empty `--out_dir` is refused unless
`--overwrite`, which only replaces what an earlier import wrote there.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from mergan_tf import configs, export, release, runlock, sampling, snapshots
from mergan_tf import images as image_lib
from mergan_tf.models import factory
from mergan_tf.run_dir import CONFIG, FIXED_NOISE, SAMPLES, write_json

IMPORT_JSON = "release_import.json"
IMPORT_FORMAT = "mergan_tf.release_import/1"
SEQUENTIAL_METHODS = ("sft", "ra", "jtr")
_NAME_RE = re.compile(r"^WGAN_GP\.model(?P<cls>.*)-(?P<iteration>\d+)$")


class ReleaseImportError(ValueError):
    """The import cannot go ahead (arguments, names, or the output directory)."""


@dataclasses.dataclass(frozen=True)
class Planned:
    """One checkpoint to import: the snapshot it becomes.

    Attributes:
      gan: the checked, converted weights.
      task: snapshot number (classes learned).
      iteration: the release's iteration from the file name (None when not in it).
      joint: written by `joint.py` (all classes at once).
      note: why the task is what it is, for the manifest.
    """

    gan: release.ReleaseGAN
    task: int
    iteration: Optional[int]
    joint: bool
    note: str


def task_order(dataset: str) -> tuple[str, ...]:
    """The release's class tokens in task order, as they appear in its checkpoint names."""
    preset = configs.PRESETS[dataset]
    return tuple(preset.categories) if preset.categories else tuple(str(c) for c in preset.classes)


def plan_checkpoint(path: str, dataset: str, task: Optional[int] = None) -> Planned:
    """Reads and checks one release checkpoint and decides which snapshot it becomes."""
    gan = release.read_gan(path, dataset)
    order = task_order(dataset)
    match = _NAME_RE.match(os.path.basename(gan.prefix))
    iteration = int(match["iteration"]) if match else None
    joint = bool(match) and match["cls"] == ""
    named = order.index(match["cls"]) + 1 if match and match["cls"] in order else None
    if joint:
        named = len(order)
    if task is None and named is None:
        raise ReleaseImportError(
            f"cannot tell the task of {gan.prefix} from its name (the release writes "
            f"WGAN_GP.model<class>-<iteration>, class one of {list(order)}, or joint.py's "
            f"WGAN_GP.model-<iteration>); pass --task T (1-based)")
    if task is not None and not 1 <= task <= len(order):
        raise ReleaseImportError(f"--task {task}: {dataset} has tasks 1..{len(order)}")
    if task is None:
        note = "task from the file name" + (" (joint.py: all classes)" if joint else "")
    else:
        note = "--task" + (f" (the file name says {named})" if named not in (None, task) else "")
    return Planned(gan, task or named, iteration, joint, note)


def resolve_method(method: Optional[str], joint: bool) -> tuple[str, bool]:
    """(method name, whether it was given) for checkpoints of `joint.py` or `mergan.py`."""
    if joint:
        if method not in (None, "jt"):
            raise ReleaseImportError(f"--method {method}: joint.py checkpoints "
                                     "(WGAN_GP.model-<iteration>) are joint training, --method jt")
        return "jt", True
    if method == "jt":
        raise ReleaseImportError("--method jt is joint.py's WGAN_GP.model-<iteration>; a "
                                 "mergan.py checkpoint is sft, ra or jtr")
    if method is not None and method not in SEQUENTIAL_METHODS:
        raise ReleaseImportError(f"--method {method!r}: choose one of {SEQUENTIAL_METHODS}")
    return method or "sft", method is not None


def import_config(dataset: str, dim: int, method: str, out_dir: str, seed: int = 0,
                  data_dir: Optional[str] = None) -> configs.RunConfig:
    """The release's preset for `dataset` and `method`, at the checkpoint's DIM."""
    cfg = configs.preset_config(dataset, method)
    cfg = cfg.replace(out_dir=out_dir, seed=seed,
                      model=dataclasses.replace(cfg.model, dim=dim),
                      data=dataclasses.replace(cfg.data, data_dir=data_dir))
    return configs.validate(cfg)


def _plan_all(paths: Sequence[str], dataset: str, task: Optional[int]) -> list[Planned]:
    if not paths:
        raise ReleaseImportError("give at least one --checkpoint")
    if task is not None and len(paths) > 1:
        raise ReleaseImportError("--task applies to a single --checkpoint; with several, each "
                                 "one's task comes from its file name")
    plans = [plan_checkpoint(p, dataset, task) for p in paths]
    tasks = [p.task for p in plans]
    if len(set(tasks)) < len(tasks):
        raise ReleaseImportError(f"two checkpoints give the same task: {tasks}; import one "
                                 "checkpoint per task")
    for kind, values in (("DIM", {p.gan.dim for p in plans}),
                         ("joint.py / mergan.py", {p.joint for p in plans})):
        if len(values) > 1:
            raise ReleaseImportError(f"the checkpoints come from different runs (they differ in "
                                     f"{kind}); import each run into its own --out_dir")
    return sorted(plans, key=lambda p: p.task)


def _read_manifest(out_dir: str) -> Optional[dict]:
    path = os.path.join(out_dir, IMPORT_JSON)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def prepare_out_dir(out_dir: str, overwrite: bool) -> None:
    """Creates `out_dir`; a non-empty one only with `overwrite`, and only if everything run-
    like in it came from an earlier import (whose files are then removed)."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ReleaseImportError(f"--out_dir {out_dir} is a file; choose a directory")
    entries = sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []
    if entries and not overwrite:
        raise ReleaseImportError(
            f"--out_dir {out_dir} is not empty ({release.listing(entries)}); choose a new or "
            f"empty directory, or pass --overwrite to replace an earlier import there")
    if not entries:
        os.makedirs(out_dir, exist_ok=True)
        return
    runlock.check_free(out_dir)
    previous = _read_manifest(out_dir)
    ours = set(previous["snapshots"]) if previous else set()
    foreign = [t for t in snapshots.list_snapshots(out_dir) if t not in ours]
    if foreign or (previous is None and CONFIG in entries):
        raise ReleaseImportError(
            f"--out_dir {out_dir} holds a run that no import wrote (config.json, snapshots "
            f"{foreign or 'none'}); --overwrite only replaces an earlier import: choose "
            f"another --out_dir")
    root = os.path.join(os.path.abspath(out_dir), "")
    for rel in (previous or {}).get("written", []):
        path = os.path.abspath(os.path.join(out_dir, rel))
        if not path.startswith(root):  # only ever inside out_dir
            continue
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def _global_step(plan: Planned, iters: int) -> int:
    """The trainer's outer-iteration count at the end of that checkpoint's iteration."""
    iteration = iters - 1 if plan.iteration is None else plan.iteration
    return (0 if plan.joint else (plan.task - 1) * iters) + iteration + 1


def _learned(cfg: configs.RunConfig, plan: Planned) -> list[int]:
    return list(cfg.classes) if plan.joint else list(cfg.classes[:plan.task])


def write_snapshot(cfg: configs.RunConfig, plan: Planned, method_given: bool):
    """The imported models as the snapshot after `plan.task`; returns the generator."""
    generator, critic = factory.build_models(cfg)
    release.assign_gan(plan.gan, generator, critic)
    iters = cfg.train.iters
    step = _global_step(plan, iters)
    objects = {"generator": generator, "critic": critic,
               "rng": tf.random.Generator.from_seed(cfg.seed),
               "global_step": tf.Variable(step, dtype=tf.int64, trainable=False)}
    info = {"task": plan.task, "classes": _learned(cfg, plan), "method": cfg.method.name,
            "dataset": cfg.data.dataset, "global_step": step,
            "iteration": iters - 1 if plan.iteration is None else plan.iteration,
            "imported_from": os.path.abspath(plan.gan.prefix), "method_given": method_given}
    snapshots.write_snapshot(cfg.out_dir, plan.task, objects, info)
    return generator


def write_grids(cfg: configs.RunConfig, plan: Planned, generator, noise: np.ndarray) -> list[str]:
    """One grid of the fixed noise per learned class, in the method's batch regime (as the
    trainer's last grid of a task); returns the paths relative to the run directory."""
    iteration = cfg.train.iters - 1 if plan.iteration is None else plan.iteration
    fakes = sampling.sample_same_noise(lambda z, labels: generator(z, labels).numpy(), noise,
                                       _learned(cfg, plan), sampling.regime_of(cfg.method.name))
    written = []
    for c, fake in fakes.items():
        rel = os.path.join(SAMPLES, f"Task_{plan.task}_Iter_{iteration}_{c}.png")
        image_lib.save_png(image_lib.make_grid(image_lib.to_uint8(fake)),
                           os.path.join(cfg.out_dir, rel))
        written.append(rel)
    return written



def planned_files(cfg: configs.RunConfig, plans: Sequence[Planned], export_samplers: bool) -> list[str]:
    """Every path (relative to the run directory) an import writes, known before writing."""
    files = [CONFIG, FIXED_NOISE, IMPORT_JSON]
    for plan in plans:
        iteration = cfg.train.iters - 1 if plan.iteration is None else plan.iteration
        files.append(os.path.relpath(snapshots.snapshot_dir(cfg.out_dir, plan.task), cfg.out_dir))
        files += [os.path.join(SAMPLES, f"Task_{plan.task}_Iter_{iteration}_{c}.png")
                  for c in _learned(cfg, plan)]
        if export_samplers:
            files.append(os.path.relpath(export.export_dir(cfg.out_dir, plan.task), cfg.out_dir))
    return files


def _manifest(cfg, plans, method_given, written, complete) -> dict:
    return {
        "format": IMPORT_FORMAT, "complete": complete, "dataset": cfg.data.dataset,
        "method": cfg.method.name, "method_given": method_given, "model_arch": cfg.model.arch,
        "model_dim": cfg.model.dim, "snapshots": [p.task for p in plans], "written": written,
        "checkpoints": [{"prefix": os.path.abspath(p.gan.prefix), "task": p.task,
                         "iteration": p.iteration, "how": p.note, "has_old_generator": p.gan.has_old,
                         "not_imported": list(p.gan.unexpected)} for p in plans],
        "fixed_noise": "numpy RandomState(seed).randn(100, 128): the release's own fixed noise "
                       "is a pickle outside its checkpoints",
    }


def import_release(checkpoints: Sequence[str], dataset: str, out_dir: str,
                   task: Optional[int] = None, method: Optional[str] = None,
                   overwrite: bool = False, export_samplers: bool = True, seed: int = 0,
                   data_dir: Optional[str] = None) -> dict:
    """Imports release checkpoints into the run directory `out_dir`; returns the manifest.

    Every checkpoint is read and checked before anything is written. The manifest lists
    the files to write before they are written (`"complete": false` until the end), so an
    interrupted import can be replaced with `overwrite`.

    Raises:
      release.ReleaseCheckpointError: a checkpoint is missing or holds another model.
      ReleaseImportError: bad arguments, or `out_dir` holds something else.
    """
    plans = _plan_all(checkpoints, dataset, task)
    name, given = resolve_method(method, plans[0].joint)
    cfg = import_config(dataset, plans[0].gan.dim, name, out_dir, seed, data_dir)
    prepare_out_dir(out_dir, overwrite)
    with runlock.RunLock(out_dir):
        files = planned_files(cfg, plans, export_samplers)
        write_json(os.path.join(out_dir, IMPORT_JSON), _manifest(cfg, plans, given, files, False))
        write_json(os.path.join(out_dir, CONFIG), cfg.to_dict())
        noise = np.random.RandomState(seed).randn(cfg.output.num_fixed_noise,
                                                  cfg.model.z_dim).astype(np.float32)
        np.save(os.path.join(out_dir, FIXED_NOISE), noise)
        for plan in plans:
            write_grids(cfg, plan, write_snapshot(cfg, plan, given), noise)
            if export_samplers:
                export.export_snapshot(out_dir, plan.task)
        manifest = _manifest(cfg, plans, given, files, True)
        write_json(os.path.join(out_dir, IMPORT_JSON), manifest)
    return manifest
