"""Task snapshots: the models at the end of each task, as `tf.train.Checkpoint` files.

A snapshot is what the next task replays from and what evaluation and export load.
Layout: `<run>/snapshots/task_<NN>/ckpt*` plus `snapshot.json` (task number, learned
classes, method, iteration). A snapshot directory is written under a temporary name and
renamed when complete, so a crash never leaves a half-written snapshot behind its name.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Optional

import keras
import tensorflow as tf

from mergan_tf.configs import ConfigError, RunConfig
from mergan_tf.models import factory
from mergan_tf.run_dir import CONFIG, SNAPSHOTS, task_dir


class SnapshotError(ValueError):
    """A snapshot is missing or does not fit the requested model."""


def snapshot_dir(run_dir: str, task: int) -> str:
    """Directory of the snapshot after `task` tasks (1-based, as the paper counts)."""
    return task_dir(run_dir, SNAPSHOTS, task)


def list_snapshots(run_dir: str) -> list[int]:
    """Task numbers (1-based) with a complete snapshot, ascending."""
    root = os.path.join(run_dir, SNAPSHOTS)
    if not os.path.isdir(root):
        return []
    tasks = []
    for name in os.listdir(root):
        if name.startswith("task_") and name[5:].isdigit() and os.path.exists(
                os.path.join(root, name, "snapshot.json")):
            tasks.append(int(name[5:]))
    return sorted(tasks)


def write_snapshot(run_dir: str, task: int, objects: dict[str, Any], info: dict[str, Any]) -> str:
    """Writes the trackable `objects` and `info` as the snapshot after `task` tasks."""
    final = snapshot_dir(run_dir, task)
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    tf.train.Checkpoint(**objects).write(os.path.join(tmp, "ckpt"))
    with open(os.path.join(tmp, "snapshot.json"), "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)
    old = final + ".old"
    if os.path.exists(final):
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def read_snapshot_info(run_dir: str, task: int) -> dict[str, Any]:
    """The `snapshot.json` of a snapshot; SnapshotError naming what exists otherwise."""
    if task < 1:
        raise SnapshotError(f"task {task}: tasks are numbered from 1 (the snapshot after the "
                            f"first task is task 1); snapshots present in {run_dir}: "
                            f"{list_snapshots(run_dir) or 'none'}")
    path = os.path.join(snapshot_dir(run_dir, task), "snapshot.json")
    if not os.path.exists(path):
        have = list_snapshots(run_dir)
        raise SnapshotError(
            f"no snapshot after task {task} in {run_dir} (expected {path}); "
            f"snapshots present: {have or 'none'}. Train that many tasks first.")
    try:
        with open(path) as f:
            info = json.load(f)
        if not isinstance(info, dict) or "classes" not in info:
            raise ValueError("it does not describe a snapshot (no 'classes')")
    except (OSError, ValueError) as e:
        again = (f"scripts/run_sequential.py --out_dir {run_dir} --start_from_task {task - 1}"
                 if task > 1 else "a new run (the first task has no earlier snapshot)")
        raise SnapshotError(f"cannot read {path}: {e}. The snapshot's description is damaged; "
                            f"restore it from a backup, or train that task again: {again}") from e
    return info


def restore_into(run_dir: str, task: int, **objects: Any) -> dict[str, Any]:
    """Restores the named objects (e.g. generator=G) from a snapshot; returns its info."""
    info = read_snapshot_info(run_dir, task)
    prefix = os.path.join(snapshot_dir(run_dir, task), "ckpt")
    try:
        # A variable of another shape fails inside read() (ValueError); a missing or
        # unreadable file fails there too (OpError); a missing object fails the assert.
        status = tf.train.Checkpoint(**objects).read(prefix)
        status.expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SnapshotError(
            f"snapshot after task {task} in {run_dir} does not fit the model it is loaded into "
            f"({reason}). It was written with another dataset or model size (image channels, "
            f"--model_dim) than {_describe_run(run_dir)}; load it with the config.json of the "
            f"run that wrote it") from e
    return info


def _describe_run(run_dir: str) -> str:
    """'<run>/config.json (dataset mnist, 1 channel(s), model_dim 8)' for messages."""
    path = os.path.join(run_dir, CONFIG)
    try:
        cfg = load_run_config(run_dir)
    except SnapshotError:
        return path
    m = cfg.model
    return f"{path} (dataset {cfg.data.dataset}, {m.channels} channel(s), model_dim {m.dim})"


def load_run_config(run_dir: str) -> RunConfig:
    """The resolved configuration of a run directory."""
    path = os.path.join(run_dir, CONFIG)
    if not os.path.exists(path):
        raise SnapshotError(f"{run_dir} is not a run directory: {path} is missing; pass the "
                            "--out_dir of a run written by scripts/run_sequential.py")
    try:
        with open(path) as f:
            return RunConfig.from_dict(json.load(f))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SnapshotError(f"cannot read the run configuration {path}: {e!r}; it is not a "
                            "config.json written by scripts/run_sequential.py; restore it from "
                            "a backup or start the run again") from e


# CPU flags of native bfloat16 arithmetic (x86); without them TF emulates bf16 in software.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> Optional[set[str]]:
    """The CPU's feature flags from `cpuinfo`, or None where they cannot be read (not Linux,
    not x86: no `flags` line)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return None


def bf16_warning(precision: str, flags: Optional[set[str]], has_gpu: bool) -> Optional[str]:
    """A warning when `precision` is bf16 but only an x86 CPU without native bfloat16
    (`BF16_CPU_FLAGS`) computes: TF then emulates it, measured here 9x slower than float32
    (0.13 against 1.17 it/s on an AVX2-only AMD EPYC, docs/performance.md). None when bf16
    is not asked for, a GPU is present, or the flags are unknown."""
    if precision != "bf16" or has_gpu or flags is None or flags & set(BF16_CPU_FLAGS):
        return None
    return ("--mixed_precision bf16 on a CPU without native bfloat16 (none of its flags "
            f"{', '.join(BF16_CPU_FLAGS)}): TensorFlow emulates it, many times slower than "
            "float32; use --mixed_precision none on this machine")


def load_generator(run_dir: str, task: int) -> tuple[keras.Model, dict[str, Any]]:
    """The generator of the snapshot after `task` tasks, and the snapshot's info."""
    cfg = load_run_config(run_dir)
    info = read_snapshot_info(run_dir, task)
    trained_on = info.get("dataset")
    if trained_on is not None and trained_on != cfg.data.dataset:
        raise SnapshotError(
            f"snapshot after task {task} in {run_dir} was trained on {trained_on!r}, but "
            f"{_describe_run(run_dir)} describes a {cfg.data.dataset!r} run: the snapshot comes "
            "from another run; load it with the config.json of the run that wrote it")
    try:
        generator, _ = factory.build_models(cfg)
    except ConfigError as e:  # an arch this version does not know
        raise SnapshotError(str(e)) from e
    info = restore_into(run_dir, task, generator=generator)
    return generator, info
