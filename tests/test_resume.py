"""Runs that survive: SIGKILL + resume is bit-identical, snapshots resume, locks, NaN stops."""

import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import MNIST_DIR
from mergan_tf import configs, runlock, snapshots
from mergan_tf.trainer import NonFiniteLossError, Trainer, prepare_run_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "run_sequential.py")
RUN_FLAGS = ["--dataset", "mnist", "--data_dir", MNIST_DIR, "--method", "ra", "--tasks", "2",
             "--iters", "6", "--model_dim", "8", "--checkpoint_every", "2", "--log_every", "1",
             "--sample_every", "100", "--deterministic", "--seed", "5"]


def snapshot_weights(run_dir, task):
    prefix = os.path.join(snapshots.snapshot_dir(run_dir, task), "ckpt")
    return {name: tf.train.load_variable(prefix, name) for name, _ in tf.train.list_variables(prefix)
            if name.startswith(("generator/", "critic/"))}


def logged_steps(run_dir):
    path = os.path.join(run_dir, "scalars.csv")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return max([int(r["global_step"]) for r in csv.DictReader(f)] or [0])


@pytest.mark.skipif(not os.path.exists(MNIST_DIR), reason="real MNIST files absent")
def test_sigkill_mid_task_then_resume_is_bit_identical(tmp_path):
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    subprocess.run([sys.executable, SCRIPT, *RUN_FLAGS, "--out_dir", whole], check=True,
                   capture_output=True, timeout=600)
    proc = subprocess.Popen([sys.executable, SCRIPT, *RUN_FLAGS, "--out_dir", killed],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while logged_steps(killed) < 10 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)  # task 2 (steps 7..12) has begun: kill it mid-task
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert snapshots.list_snapshots(killed) == [1]
    assert os.path.exists(os.path.join(killed, ".lock"))  # stale: its owner is dead
    resumed = subprocess.run([sys.executable, SCRIPT, "--resume", "--out_dir", killed],
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming task 2" in resumed.stderr
    a, b = snapshot_weights(whole, 2), snapshot_weights(killed, 2)
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    assert logged_steps(killed) == logged_steps(whole) == 12
    assert not os.path.exists(os.path.join(killed, ".lock"))


def tiny_config(out_dir, iters=3, method="sft"):
    cfg = configs.preset_config("mnist", method)
    return configs.validate(cfg.replace(
        classes=(0, 1, 2), out_dir=str(out_dir), model=dataclasses.replace(cfg.model, dim=8),
        train=dataclasses.replace(cfg.train, iters=iters),
        output=dataclasses.replace(cfg.output, log_every=1, checkpoint_every=1, export=False)))


def test_resume_after_a_finished_task_and_start_from_task(mnist_data, tmp_path):
    cfg = tiny_config(tmp_path)
    prepare_run_dir(cfg)
    trainer = Trainer(cfg, mnist_data)
    trainer.train_task(0)  # as if killed between task 1 and task 2
    trainer.log.close()
    resumed = Trainer(cfg, mnist_data)
    first, task, iteration = resumed._starting_point(resume=True, start_from_task=None)
    assert (first, iteration) == (0, 3) or (first, task, iteration) == (1, None, 0)
    resumed.train(resume=True)
    assert snapshots.list_snapshots(str(tmp_path)) == [1, 2, 3]
    assert int(resumed.global_step.numpy()) == 9
    # Start again after task 2: task 3 is retrained from the task-2 snapshot.
    again = Trainer(cfg, mnist_data)
    first, _, _ = again._starting_point(resume=False, start_from_task=2)
    assert first == 2 and int(again.global_step.numpy()) == 6
    again.log.close()
    with pytest.raises(snapshots.SnapshotError, match="no snapshot after that task"):
        Trainer(cfg, mnist_data)._starting_point(resume=False, start_from_task=7)


HOLDER = ("import sys, time; sys.path.insert(0, sys.argv[1]); from mergan_tf import runlock; "
          "runlock.RunLock(sys.argv[2]).acquire(); print('held', flush=True); time.sleep(120)")


@pytest.fixture
def lock_holder(tmp_path):
    """A live process holding the lock of tmp_path/"run" (killed afterwards)."""
    run = tmp_path / "run"
    run.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, ROOT, str(run)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    yield str(run), proc
    proc.kill()
    proc.wait()


def test_a_second_process_is_refused_and_stale_locks_are_taken_over(lock_holder, tmp_path):
    run, holder = lock_holder
    lock_text = open(os.path.join(run, ".lock")).read()
    assert json.loads(lock_text)["pid"] == holder.pid
    with pytest.raises(runlock.RunLockedError, match=f"in use by process {holder.pid}"):
        runlock.RunLock(run).acquire()
    (tmp_path / "run" / "config.json").write_text("{}")
    with pytest.raises(runlock.RunLockedError):
        prepare_run_dir(tiny_config(run), overwrite=True)
    assert (tmp_path / "run" / "config.json").read_text() == "{}"  # nothing deleted
    # A copy of the run directory, lock included, is not held by the process.
    copy = str(tmp_path / "copy")
    shutil.copytree(run, copy)
    with runlock.RunLock(copy):
        assert json.loads(open(os.path.join(copy, ".lock")).read())["run_dir"] == os.path.realpath(copy)
    holder.kill()
    holder.wait()
    with runlock.RunLock(run):  # its owner is gone: stale, taken over
        assert json.loads(open(os.path.join(run, ".lock")).read())["pid"] == os.getpid()
    assert not os.path.exists(os.path.join(run, ".lock"))


@pytest.mark.parametrize("content", ["", "garbage", "-1", "0", '{"pid": "x"}', "unrelated",
                                     "pid reused"])
def test_stale_locks(content, tmp_path):
    """Empty, unreadable or impossible locks, a plain pid of a process that is not a
    mergan_tf command, and a JSON lock whose pid now belongs to another process."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        if content == "unrelated":
            content = str(sleeper.pid)
        elif content == "pid reused":
            content = json.dumps({"pid": sleeper.pid, "run_dir": str(tmp_path),
                                  "start_time": (runlock.process_start_time(sleeper.pid) or 0) - 1})
        (tmp_path / ".lock").write_text(content)
        with runlock.RunLock(str(tmp_path)):
            assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_nan_stops_with_the_term_named_and_keeps_the_last_checkpoint(mnist_data, tmp_path):
    cfg = tiny_config(tmp_path, iters=6)
    prepare_run_dir(cfg)
    trainer = Trainer(cfg, mnist_data)
    task = trainer.start_task(0)
    for i in range(3):
        trainer._after_iteration(task, i, trainer.run_iteration(task, i))
    ckpt_dir = os.path.join(str(tmp_path), "checkpoints", "task_01")
    before = {n: open(os.path.join(ckpt_dir, n), "rb").read() for n in os.listdir(ckpt_dir)}
    w = trainer.critic.wgan_head.kernel
    w.assign(tf.fill(w.shape, float("nan")))
    with pytest.raises(NonFiniteLossError, match=r"iteration 3 .*loss/critic/wasserstein=nan"):
        trainer._after_iteration(task, 3, trainer.run_iteration(task, 3))
    after = {n: open(os.path.join(ckpt_dir, n), "rb").read() for n in os.listdir(ckpt_dir)}
    assert before == after
    assert os.path.exists(os.path.join(str(tmp_path), "debug", "nonfinite_step_4", "ckpt.index"))
    trainer.log.close()
