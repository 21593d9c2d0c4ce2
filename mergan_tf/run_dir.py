"""The run directory: the names of what a run writes, atomic writes, and preparing it.

Every module that reads or writes a run directory takes its names from here; the layout is
in the README's "Outputs of a run". Files are written atomically: under a temporary name
`<name>.tmp-<pid>` in the same folder, then renamed, so a reader or a killed process never
sees half a file (`recovery.py` removes the temporary names of dead processes). The lock
that keeps one process per run is `runlock.py`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
from typing import Any, Iterator

from mergan_tf import runlock

# Top-level files.
CONFIG = "config.json"
IDENTITY = "run_identity.json"
FIXED_NOISE = "fixed_noise.npy"
SCALARS = "scalars.csv"
FORGETTING = "forgetting.csv"
EVAL_JSON = "eval.json"
EVAL_MD = "eval.md"
TRAIN_LOG = "train.log"
WRITE_TEST = ".write_test"
LOCK = runlock.LOCK_FILE
# Folders.
SAMPLES = "samples"
SNAPSHOTS = "snapshots"
CHECKPOINTS = "checkpoints"
EXPORT = "export"
TENSORBOARD = "tensorboard"
DEBUG = "debug"

# What a run writes into its directory (`prepare_run_dir --overwrite` removes only these):
# top-level files, and (folder, pattern) of the entries below it.
RUN_FILES = (CONFIG, IDENTITY, FIXED_NOISE, SCALARS, FORGETTING, EVAL_JSON, EVAL_MD, TRAIN_LOG,
             WRITE_TEST)
RUN_ENTRIES = ((SAMPLES, "Task_*_Iter_*_*.png"), (SAMPLES, "samples_groundtruth_*.png"),
               (SNAPSHOTS, "task_[0-9][0-9]*"), (CHECKPOINTS, "task_[0-9][0-9]*"),
               (EXPORT, "task_[0-9][0-9]*"), (TENSORBOARD, "events.out.tfevents.*"),
               (DEBUG, "nonfinite_step_*"))


def task_dir(run_dir: str, folder: str, task: int) -> str:
    """`<run_dir>/<folder>/task_NN` (snapshots, checkpoints, export) of task number `task`."""
    return os.path.join(run_dir, folder, f"task_{task:02d}")


def temporary_name(path: str, keep_extension: bool = False) -> str:
    """`<path>.tmp-<pid>`; with `keep_extension` the path's extension follows again, for
    writers that choose the format by the file name (PNG, GIF, .keras)."""
    suffix = os.path.splitext(path)[1] if keep_extension else ""
    return f"{path}.tmp-{os.getpid()}{suffix}"


@contextlib.contextmanager
def atomic_path(path: str, keep_extension: bool = False) -> Iterator[str]:
    """Yields a temporary name to write `path` under; renames it to `path` when the block
    ends without an error, and removes it when the block fails. Creates the folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = temporary_name(path, keep_extension)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def write_text(path: str, text: str) -> None:
    """Writes `text` to `path` atomically (newlines as given)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        f.write(text)


def write_json(path: str, value: Any) -> None:
    """Writes `value` as indented, key-sorted JSON to `path` atomically."""
    write_text(path, json.dumps(value, indent=2, sort_keys=True))


def _remove_run_outputs(run_dir: str) -> None:
    """Removes the files and folders an earlier run wrote in `run_dir`, nothing else; a
    sub-directory it made is removed only once nothing else is left in it."""
    for name in RUN_FILES:
        path = os.path.join(run_dir, name)
        if os.path.isfile(path):
            os.remove(path)
    for sub, pattern in RUN_ENTRIES:
        directory = os.path.join(run_dir, sub)
        for name in fnmatch.filter(os.listdir(directory) if os.path.isdir(directory) else [], pattern):
            path = os.path.join(directory, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
    for sub in sorted({sub for sub, _ in RUN_ENTRIES}):
        directory = os.path.join(run_dir, sub)
        if os.path.isdir(directory) and not os.listdir(directory):
            os.rmdir(directory)


def prepare_run_dir(cfg, overwrite: bool = False) -> None:
    """Creates the run directory `cfg.out_dir`. An existing one that is not empty is used
    only with `overwrite`, which removes what an earlier run wrote there (`RUN_FILES`,
    `RUN_ENTRIES`) and nothing else.

    Raises:
      FileExistsError: the directory holds a run or other files, and not `overwrite`.
      runlock.RunLockedError: a live process uses it.
      PermissionError: it cannot be written.
    """
    run_dir = cfg.out_dir
    existing = sorted(set(os.listdir(run_dir)) - {LOCK, WRITE_TEST}) if os.path.isdir(run_dir) else []
    if existing and not overwrite:
        if CONFIG in existing:
            raise FileExistsError(
                f"{run_dir} already holds a run ({CONFIG} exists); pass --resume to continue "
                f"it from its latest checkpoint or task snapshot, --overwrite to replace it, or "
                f"choose another --out_dir")
        raise FileExistsError(
            f"--out_dir {run_dir} is not empty (it holds {', '.join(existing[:5])}"
            f"{' ...' if len(existing) > 5 else ''}); choose a new or empty directory, or pass "
            f"--overwrite to write the run into it (only a run's own files are replaced)")
    if overwrite and existing:
        runlock.check_free(run_dir)  # never delete the outputs of a live run
        _remove_run_outputs(run_dir)
    probe = os.path.join(run_dir, WRITE_TEST)
    try:
        os.makedirs(run_dir, exist_ok=True)
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise PermissionError(f"cannot write to --out_dir {run_dir}: {e}; choose a writable directory") from e
