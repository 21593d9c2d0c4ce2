"""Repairs a run directory before it is resumed: what a kill or a bad disk leaves behind.

* Interrupted writes: a snapshot caught between its two renames is completed from its
  complete copy; the temporary folders of snapshot, export and checkpoint writes and the
  temporary files of atomic rewrites are removed (those of a live process are kept).
* Damaged checkpoints: every tensor of a checkpoint is read back (TensorFlow checks each
  one's CRC), newest first; a damaged one (missing `.index`, truncated or corrupt `.data`)
  is moved to `checkpoints/task_NN/damaged/` (never deleted) and the `checkpoint` state
  file is rewritten to list the intact ones, so `tf.train.CheckpointManager` neither
  misses nor rotates away the checkpoint the run resumes from.
* Logs: the CSV logs get their header back, lose blank, garbled and duplicated rows, and
  keep only the rows up to the step the run resumes from.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from typing import Optional, Sequence

import tensorflow as tf
from absl import logging

from mergan_tf import runlock
from mergan_tf.run_dir import (CHECKPOINTS, EXPORT, FORGETTING, SAMPLES, SCALARS, SNAPSHOTS, WRITE_TEST,
                               atomic_path)

SCALARS_HEADER = ("global_step", "task", "iteration", "key", "value")
FORGETTING_HEADER = ("global_step", "task", "iteration", "class", "accuracy")
LOG_HEADERS = {SCALARS: SCALARS_HEADER, FORGETTING: FORGETTING_HEADER}
DAMAGED_DIR = "damaged"
# `.tmp-PID` / `.old-PID`, or `.tmp-PID.png` where the writer keeps the extension (run_dir).
_PID_SUFFIX = re.compile(r"\.(?:tmp|old)-(\d+)(?:\.[A-Za-z]+)?$")
_CHECKPOINT_FILE = re.compile(r"^ckpt-(\d+)(?:\.index|\.data-\d+-of-\d+|_temp)$")


# ------------------------------------------------------------------- interrupted writes


def _owner_gone(name: str) -> bool:
    """Whether the process named by a `.tmp-PID` / `.old-PID` suffix is not running."""
    match = _PID_SUFFIX.search(name)
    if not match:
        return False
    pid = int(match.group(1))
    return pid == os.getpid() or not runlock.process_alive(pid)


def _remove(path: str, removed: list[str]) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)
    removed.append(path)


def _repair_snapshots(run_dir: str, removed: list[str]) -> None:
    """Completes a snapshot caught between `write_snapshot`'s renames; drops the rest."""
    root = os.path.join(run_dir, SNAPSHOTS)
    names = os.listdir(root) if os.path.isdir(root) else []
    # The complete new copy (.tmp) before the previous one (.old) it was replacing.
    for name in sorted(names, key=lambda n: (n.partition(".")[0], n.endswith(".old"))):
        final_name, _, kind = name.partition(".")
        if kind not in ("tmp", "old"):
            continue
        path, final = os.path.join(root, name), os.path.join(root, final_name)
        if not os.path.exists(os.path.join(final, "snapshot.json")) and os.path.exists(
                os.path.join(path, "snapshot.json")):
            if os.path.exists(final):
                _remove(final, removed)
            os.replace(path, final)  # complete (snapshot.json is written last): keep it
            logging.warning("completed the interrupted snapshot %s from %s", final, path)
        else:
            _remove(path, removed)


def remove_interrupted_writes(run_dir: str) -> list[str]:
    """Repairs and removes what interrupted writes left in `run_dir`; returns what went.

    The caller holds the run lock, so the trainer's own temporaries (snapshots, checkpoints)
    are nobody else's; exports and rewritten files carry their writer's pid, and those of a
    live process (e.g. a scripts/export.py run beside the trainer) are left alone.
    """
    removed: list[str] = []
    _repair_snapshots(run_dir, removed)
    export_root = os.path.join(run_dir, EXPORT)
    for name in sorted(os.listdir(export_root)) if os.path.isdir(export_root) else []:
        if _owner_gone(name):
            _remove(os.path.join(export_root, name), removed)
    checkpoints = os.path.join(run_dir, CHECKPOINTS)
    for task in sorted(os.listdir(checkpoints)) if os.path.isdir(checkpoints) else []:
        directory = os.path.join(checkpoints, task)
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            if name.endswith("_temp") or name.startswith("checkpoint.tmp"):
                _remove(os.path.join(directory, name), removed)
    for name in sorted(os.listdir(run_dir)):
        if name == WRITE_TEST or _owner_gone(name):
            _remove(os.path.join(run_dir, name), removed)
    samples = os.path.join(run_dir, SAMPLES)
    for name in sorted(os.listdir(samples)) if os.path.isdir(samples) else []:
        if _owner_gone(name):
            _remove(os.path.join(samples, name), removed)
    if removed:
        logging.warning("removed what interrupted writes left behind: %s", ", ".join(removed))
    return removed


# ------------------------------------------------------------------ damaged checkpoints


def checkpoint_numbers(directory: str) -> list[int]:
    """Numbers N of every `ckpt-N.*` in a checkpoint directory, newest first, whether
    complete or not."""
    found = set()
    for name in os.listdir(directory) if os.path.isdir(directory) else []:
        match = _CHECKPOINT_FILE.match(name)
        if match:
            found.add(int(match.group(1)))
    return sorted(found, reverse=True)


def checkpoint_problem(prefix: str) -> Optional[str]:
    """None when every tensor of the checkpoint `prefix` reads back intact, else why not."""
    if not os.path.exists(prefix + ".index"):
        return f"{os.path.basename(prefix)}.index is missing"
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_dtype_map():
            try:
                reader.get_tensor(name)
            except tf.errors.InternalError as e:
                # Read and checked, but a variant (the data iterator) has no numpy form.
                if "not convertible to numpy" not in str(e):
                    raise
    except (tf.errors.OpError, ValueError, IndexError, OSError) as e:
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return None


def _move_aside(directory: str, number: int) -> str:
    """Moves every file of checkpoint `number` into `<directory>/damaged/`; returns it."""
    damaged = os.path.join(directory, DAMAGED_DIR)
    os.makedirs(damaged, exist_ok=True)
    for name in sorted(os.listdir(directory)):
        match = _CHECKPOINT_FILE.match(name)
        if match and int(match.group(1)) == number:
            target = os.path.join(damaged, name)
            while os.path.exists(target):  # damaged twice under the same number
                target += ".1"
            os.replace(os.path.join(directory, name), target)
    return damaged


def _write_state(directory: str, intact: Sequence[int]) -> None:
    """The `checkpoint` state file listing the intact checkpoints, newest last."""
    paths = [f"ckpt-{n}" for n in sorted(intact)]
    times = [os.path.getmtime(os.path.join(directory, p + ".index")) for p in paths]
    state = os.path.join(directory, "checkpoint")
    if not paths:
        if os.path.exists(state):
            os.remove(state)
        return
    tf.compat.v1.train.update_checkpoint_state(directory, paths[-1], paths,
                                               all_model_checkpoint_timestamps=times)


def newest_intact_checkpoint(directory: str, what: str) -> Optional[str]:
    """The newest intact checkpoint of a directory (its prefix), after moving damaged newer
    ones aside with a warning naming them and rewriting the state file; None if none is
    intact. `what` names the directory's task in the warning."""
    numbers = checkpoint_numbers(directory)
    if not numbers:
        return None
    intact, skipped = [], []
    for number in numbers:
        prefix = os.path.join(directory, f"ckpt-{number}")
        problem = None if intact else checkpoint_problem(prefix)  # older ones: checked later
        if problem is None:
            intact.append(number)
        else:
            skipped.append(f"ckpt-{number} ({problem})")
            _move_aside(directory, number)
    intact = [n for n in intact if os.path.exists(os.path.join(directory, f"ckpt-{n}.index"))]
    _write_state(directory, intact)
    if skipped:
        logging.warning("%s: damaged checkpoint(s) %s moved to %s; %s", what, ", ".join(skipped),
                        os.path.join(directory, DAMAGED_DIR),
                        f"resuming from ckpt-{intact[0]}" if intact else "no intact checkpoint left")
    return os.path.join(directory, f"ckpt-{intact[0]}") if intact else None


# ------------------------------------------------------------------------------- logs


def _parse_rows(path: str, header: Sequence[str]) -> list[list[str]]:
    """The well-formed rows of a CSV log (the header, blank and garbled lines left out)."""
    rows = []
    with open(path, newline="", errors="replace") as f:
        for row in csv.reader(line.replace("\0", "") for line in f):
            if len(row) != len(header) or tuple(row) == tuple(header):
                continue
            try:
                int(row[0]), int(row[1]), int(row[2]), float(row[4])
            except ValueError:
                continue
            rows.append(row)
    return rows


def repair_log(path: str, header: Sequence[str], max_step: int) -> None:
    """Rewrites a CSV log atomically: its header, then its well-formed rows up to
    `max_step`, each (step, task, iteration, key) once (the last one logged)."""
    rows = [r for r in _parse_rows(path, header) if int(r[0]) <= max_step] if os.path.exists(path) else []
    seen, unique = set(), []
    for row in reversed(rows):
        key = tuple(row[:4])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(reversed(unique))


def repair_logs(run_dir: str, max_step: int) -> None:
    """`repair_log` on each CSV log of a run that exists (scalars and forgetting)."""
    for name, header in LOG_HEADERS.items():
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            repair_log(path, header, max_step)
