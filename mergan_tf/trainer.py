"""The task loop of MeRGAN: tasks, their compiled steps (`mergan_tf.steps`), outputs.

Follows the release (`mergan.py`): per task one class; each outer iteration is one
generator update (skipped at iteration 0 of each task) then `critic_iters` critic updates,
each on a new real batch; Adam is re-created at every task; the main fake batch carries the
current task's label only; the replay generator is the previous task's snapshot, frozen.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import time
from typing import Callable, Iterator, Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from tensorboard.plugins.hparams import api as hparams_api

from mergan_tf import images as image_lib
from mergan_tf import (distribute, export, identity, interrupts, layers, optimizers, recovery,
                       runlock, runlog, sampling, snapshots, steps, tasks)
from mergan_tf.configs import RunConfig
from mergan_tf.run_dir import (CHECKPOINTS, CONFIG, DEBUG, FIXED_NOISE, SAMPLES, SCALARS, TENSORBOARD,
                               task_dir, write_text)
from mergan_tf.data import ImageData, from_model_range, task_dataset
from mergan_tf.methods import make_method
from mergan_tf.models import factory


def resident_memory_mb() -> dict[str, float]:
    """This process's resident memory now and its peak so far, in MiB (Linux /proc;
    empty elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return {}
    return {key: int(fields[name].split()[0]) / 1024.0
            for key, name in (("perf/rss_mb", "VmRSS"), ("perf/peak_rss_mb", "VmHWM"))
            if name in fields}


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or Inf."""


class CheckpointWriteError(OSError):
    """A training-state checkpoint could not be written (disk full, directory gone)."""


# Scalars the TensorBoard HParams table shows beside each run's configuration.
HPARAMS_METRICS = ("loss/critic/total", "loss/critic/wasserstein", "loss/gen/total",
                   "acc/critic/ac_real", "perf/iters_per_sec")


def run_hparams(cfg: RunConfig) -> dict[str, bool | int | float | str]:
    """The configuration's scalar fields as HParams: dotted names (`method.name`,
    `method.ra_factor`, `train.mixed_precision`, `data.dataset`, `model.dim`, ...), lists
    as comma-separated strings, `tasks` (their count); unset (None) fields are left out."""
    flat: dict[str, bool | int | float | str] = {"tasks": len(cfg.classes)}

    def add(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                add(f"{prefix}.{key}" if prefix else key, item)
        elif isinstance(value, (list, tuple)):
            if value:
                flat[prefix] = ",".join(str(v) for v in value)
        elif value is not None:
            flat[prefix] = value

    add("", cfg.to_dict())
    return flat


def hparams_metrics(cfg: RunConfig) -> list[str]:
    """The scalar tags of the HParams table: losses, rate, and (with eval_every) the
    accuracy of every class of the sequence."""
    forgetting = [f"forgetting/class_{c}" for c in cfg.classes] if cfg.output.eval_every else []
    return list(HPARAMS_METRICS) + forgetting


class OutputWriteError(OSError):
    """An output of training (grid, log, snapshot, export) could not be written."""


# Errors of TensorFlow's file writes that are the disk's or the file system's, not a bug.
_DISK_ERRORS = ("No space left", "Disk quota", "Read-only file system", "Permission denied")


class ScalarLog:
    """Scalars to TensorBoard and to a long-format CSV (step, task, iteration, key, value).

    Both files are opened at the first write, so a run refused before it trains (e.g. a
    resume with other data) leaves its directory as it was.
    """

    def __init__(self, run_dir: str):
        self.tensorboard_dir = os.path.join(run_dir, TENSORBOARD)
        self.csv_path = os.path.join(run_dir, SCALARS)
        self._writer = None
        self._file = None

    @property
    def writer(self):
        """The TensorBoard summary writer, created when first used."""
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.tensorboard_dir)
        return self._writer

    def reopen(self) -> None:
        """(Re)opens the CSV for appending, e.g. after a resume rewrote it; a missing or
        empty file gets its header at once (a kill must not leave a log without one)."""
        if self._file is not None:
            self._file.close()
        new = not os.path.exists(self.csv_path) or os.path.getsize(self.csv_path) == 0
        self._file = open(self.csv_path, "a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(recovery.SCALARS_HEADER)
            self._file.flush()

    def scalars(self, step: int, task: int, iteration: int, values: dict[str, float]) -> None:
        if self._file is None:
            self.reopen()
        with self.writer.as_default(step=step):
            for key, value in sorted(values.items()):
                tf.summary.scalar(key, value)
                self._csv.writerow([step, task, iteration, key, f"{value:.6g}"])
        self._file.flush()

    def run_config(self, cfg: RunConfig, step: int = 0) -> None:
        """The run's configuration for TensorBoard: the HParams plugin's experiment and
        session (`run_hparams`; runs compared by method, ra_factor, precision, ...) and the
        config JSON as a text summary. Written at every start; a resumed run writes it
        again, with the same values."""
        with self.writer.as_default(step=step):
            hparams_api.hparams_config(
                hparams=[hparams_api.HParam(name) for name in sorted(run_hparams(cfg))],
                metrics=[hparams_api.Metric(tag) for tag in hparams_metrics(cfg)])
            hparams_api.hparams(run_hparams(cfg))
            tf.summary.text("config", f"```json\n{cfg.to_json()}\n```")
        self.writer.flush()

    def image(self, step: int, name: str, grid_uint8: np.ndarray) -> None:
        with self.writer.as_default(step=step):
            tf.summary.image(name, grid_uint8[None])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
        if self._file is not None:
            self._file.close()
            self._file = None


class Trainer:
    """Trains the conditional GAN over the task sequence of a RunConfig.

    Args:
      config: the resolved, validated run configuration.
      data: the dataset (all classes; each task's pipeline selects its class).
      monitor: optional `evaluation.monitor.ForgettingMonitor`, called every
        `output.eval_every` iterations with the learned classes.
    """

    def __init__(self, config: RunConfig, data: ImageData, monitor=None):
        self.cfg = config
        self.monitor = monitor  # a ForgettingMonitor, used when output.eval_every > 0
        self.data = data
        self.run_dir = config.out_dir
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(config.seed)
        # --strategy: every variable is created in the strategy's scope (mirrored on each
        # replica; the RNG then gives each replica its own stream). "none": TF's default.
        self.strategy = distribute.get_strategy(config.train.strategy)
        self.replica_batch_size = distribute.replica_batch_size(config.train.batch_size, self.strategy)
        with self.strategy.scope():
            precision = config.train.mixed_precision
            self.generator, self.critic = factory.build_models(config, precision)
            self.replay_generator, _ = factory.build_models(config, precision)
            self.replay_generator.trainable = False
            self.method = make_method(config.method)
            # The classes of each task: one each for the sequential methods, all at once for JT.
            self.tasks: list[tuple[int, ...]] = self.method.tasks(config.classes)
            self.method.setup(self)
            self.rng = tf.random.Generator.from_seed(config.seed)
            self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.iteration = tf.Variable(0, dtype=tf.int64, trainable=False, name="iteration")
        self.steps = steps.Steps(config, self.strategy, self.replica_batch_size, self.method,
                                 self.tasks, self.generator, self.critic, self.replay_generator,
                                 self.rng)
        self.fixed_noise = self._fixed_noise()
        self._stop: Optional[interrupts.GracefulStop] = None  # set while train() runs
        self._identity_pending = False  # an older run: record its identity once it trains
        self._gradients_before_task = layers.custom_gradient_names()
        self.log = ScalarLog(self.run_dir)
        # The generator's compiled sampler (grids, the forgetting monitor; methods' default).
        self.sample = tf.function(
            lambda z, labels: self.generator(z, labels),
            input_signature=[tf.TensorSpec([None, config.model.z_dim], tf.float32),
                             tf.TensorSpec([None], tf.int32)])

    # ----------------------------------------------------------------- set-up helpers
    def _fixed_noise(self) -> tf.Tensor:
        """The 100 latent vectors of every sample grid, saved with the run."""
        path = os.path.join(self.run_dir, FIXED_NOISE)
        if os.path.exists(path):
            noise = np.load(path)
        else:
            rs = np.random.RandomState(self.cfg.seed)
            noise = rs.randn(self.cfg.output.num_fixed_noise, self.cfg.model.z_dim).astype(np.float32)
            np.save(path, noise)
        return tf.constant(noise)

    def _make_optimizer(self) -> keras.optimizers.Optimizer:
        return optimizers.make_optimizer(self.cfg.train)

    def learned_classes(self, task_index: int) -> tuple[int, ...]:
        """Classes learned by the end of task `task_index` (`tasks.learned_classes`)."""
        return tasks.learned_classes(self.tasks, task_index)

    def snapshot_number(self, task_index: int) -> int:
        """The snapshot name of a task (`tasks.snapshot_number`)."""
        return tasks.snapshot_number(self.tasks, task_index)

    def restore_replay_generator(self, task_index: int) -> None:
        """Loads the snapshot written at the end of task `task_index` (0-based), frozen."""
        snapshots.restore_into(self.run_dir, self.snapshot_number(task_index),
                               generator=self.replay_generator)
        self.replay_generator.trainable = False

    def task_updates(self, task_index: int):
        """The task's (generator_update, critic_update) on the current optimizers: the
        method's own (DGR) or the standard ones (`steps.Steps.build_updates`)."""
        return (self.method.build_updates(self, task_index, self.g_opt, self.d_opt)
                or self.steps.build_updates(task_index, self.g_opt, self.d_opt))

    # ----------------------------------------------------------------- outputs
    def write_class_grids(self, task_index: int, iteration: int) -> None:
        """One grid of the fixed noise per learned class (release: Task_{t}_Iter_{i}_{c}.png),
        generated in the method's batch regime (JT: mixed batches of every learned class)."""
        fakes = sampling.sample_same_noise(self.method.sampler(self), self.fixed_noise.numpy(),
                                           self.learned_classes(task_index), self.method.batch_regime)
        for c, fake in fakes.items():
            grid = image_lib.make_grid(image_lib.to_uint8(fake))
            name = f"Task_{self.snapshot_number(task_index)}_Iter_{iteration}_{c}.png"
            image_lib.save_png(grid, os.path.join(self.run_dir, SAMPLES, name))
            self.log.image(int(self.global_step.numpy()), f"samples/class_{c}", grid)

    def write_real_grid(self, task_index: int, real: tf.Tensor) -> None:
        grid = image_lib.make_grid(from_model_range(real.numpy()))
        name = "_".join(str(c) for c in self.tasks[task_index])
        image_lib.save_png(grid, os.path.join(self.run_dir, SAMPLES, f"samples_groundtruth_{name}.png"))

    def write_snapshot(self, task_index: int, iteration: int) -> None:
        number = self.snapshot_number(task_index)
        info = {"task": number, "classes": list(self.learned_classes(task_index)),
                "method": self.cfg.method.name, "dataset": self.cfg.data.dataset,
                "iteration": iteration, "global_step": int(self.global_step.numpy())}
        snapshots.write_snapshot(self.run_dir, number, self._snapshot_state(), info)

    # ----------------------------------------------------------------- loops
    # 40+ lines only through its Args/Raises docstring; the code is 27 lines.
    def train(self, resume: bool = False, start_from_task: Optional[int] = None) -> None:
        """Trains every task of the sequence.

        SIGTERM or SIGINT stop it after the current outer iteration with a checkpoint
        (`interrupts.GracefulStop`), raising `interrupts.TrainingInterrupted`.

        Args:
          resume: continue from the latest intact training-state checkpoint (mid-task) or
            the latest task snapshot, whichever is later; a fresh start when there is
            neither. The run directory is repaired first (`mergan_tf.recovery`) and the
            run's recorded identity is checked (`mergan_tf.identity`).
          start_from_task: continue after the snapshot of this finished task (1-based
            snapshot number), ignoring anything written after it.

        Raises:
          identity.RunIdentityError: a resume with other settings or other data.
          interrupts.TrainingInterrupted: stopped by a signal, its state saved.
          OutputWriteError, CheckpointWriteError: a write failed (e.g. a full disk).
        """
        with runlock.RunLock(self.run_dir), interrupts.GracefulStop() as stop, \
                runlog.train_log(self.run_dir):
            self._stop = stop
            logging.info("%s session of %s: %s on %s (%s), %d tasks x %d iterations",
                         "continued" if resume or start_from_task is not None else "new",
                         self.run_dir, self.cfg.method.name, self.cfg.data.dataset,
                         self.data.source, len(self.tasks), self.cfg.train.iters)
            slow = snapshots.bf16_warning(self.cfg.train.mixed_precision, snapshots.cpu_flags(),
                                          bool(tf.config.list_physical_devices("GPU")))
            if slow:
                logging.warning(slow)
            try:
                self._begin(continuing=resume or start_from_task is not None)
                first, task, iteration = self._starting_point(resume, start_from_task)
                self.log.run_config(self.cfg, int(self.global_step.numpy()))
                self._complete_exports(first)
                for t in range(first, len(self.tasks)):
                    self.train_task(t, task if t == first else None, iteration if t == first else 0)
                    self._stop_between_tasks(t)
            except (OSError, tf.errors.OpError) as e:
                error = self._write_error(e)
                if error is e:
                    raise
                raise error from e
            finally:
                self._stop = None
                self.log.close()

    def _begin(self, continuing: bool) -> None:
        """A new run records its configuration and identity; a continued one is checked
        against its identity, then repaired (what interrupted writes left behind)."""
        if not continuing:
            write_text(os.path.join(self.run_dir, CONFIG), self.cfg.to_json())
            identity.record(self.cfg, self.data)
            return
        self._identity_pending = not identity.check_resume(self.cfg, self.data)
        recovery.remove_interrupted_writes(self.run_dir)

    def _write_error(self, e: Exception) -> Exception:
        """`e`, or an OutputWriteError naming the file and how to continue when `e` is a
        failed write of the disk's making (full, read-only, no permission)."""
        if isinstance(e, (CheckpointWriteError, OutputWriteError)):
            return e
        if isinstance(e, OSError):
            what = f"{e.strerror or e} ({e.filename})" if e.filename else str(e)
        elif any(text in str(e) for text in _DISK_ERRORS):
            what = str(e).strip().splitlines()[0]
        else:
            return e
        return OutputWriteError(
            f"a file operation of the run in {self.run_dir} failed: {what}. Training stopped; its "
            f"checkpoints and snapshots are written atomically, so the last ones are intact. "
            f"Free some space (or fix the directory), then continue with "
            f"scripts/run_sequential.py --out_dir {self.run_dir} --resume")

    def train_task(self, task_index: int, task: Optional["TaskState"] = None,
                   first_iteration: int = 0) -> None:
        """One task: its data, fresh optimizers, the iteration loop, the snapshot."""
        task = task or self.start_task(task_index)
        if self._identity_pending:  # an older run, now shown to train on this data
            identity.record(self.cfg, self.data)
            self._identity_pending = False
        for iteration in range(first_iteration, self.cfg.train.iters):
            terms = self.run_iteration(task, iteration)
            self._after_iteration(task, iteration, terms)
            if self._stop is not None and self._stop.requested:
                self._stop_mid_task(task, iteration)
        self.method.after_task(self, task_index)
        self.write_snapshot(task_index, self.cfg.train.iters - 1)
        logging.info("%s", task.progress.summary(task.last_values, task.accuracy))
        # Memory at the end of every task: it must not grow with the learned classes
        # beyond the replay tensors (benchmarks/memory.py).
        memory = resident_memory_mb()
        if memory:
            self.log.scalars(int(self.global_step.numpy()), task_index + 1,
                             self.cfg.train.iters - 1, memory)
        if self.cfg.output.export and self.method.conditional:
            # A SavedModel sampler of every finished task (DGR's unconditional generator
            # needs its solver to sample a class, which the export does not carry).
            export.export_snapshot(self.run_dir, self.snapshot_number(task_index), overwrite=True)

    def _complete_exports(self, first: int) -> None:
        """Exports the finished tasks before `first` whose export is missing (a kill between
        a task's snapshot and its export)."""
        if not (self.cfg.output.export and self.method.conditional):
            return
        for t in range(first):
            number = self.snapshot_number(t)
            if not os.path.exists(os.path.join(export.export_dir(self.run_dir, number), export.EXPORT_JSON)):
                logging.info("exporting the snapshot of task %d (its export is missing)", number)
                export.export_snapshot(self.run_dir, number, overwrite=True)

    # ----------------------------------------------------------------- stopping on signals
    def _resume_hint(self) -> str:
        return f"continue with: scripts/run_sequential.py --out_dir {self.run_dir} --resume"

    def _stop_mid_task(self, task: "TaskState", iteration: int) -> None:
        """The signal's stop: a checkpoint of this iteration (unless it was just written),
        then TrainingInterrupted; the logs are closed and the lock released on the way out."""
        latest = task.checkpoint.latest_checkpoint
        if latest is None or not latest.endswith(f"ckpt-{iteration}"):
            self._save_checkpoint(task, iteration)
        signum = self._stop.requested
        raise interrupts.TrainingInterrupted(
            f"{interrupts.signal_name(signum)}: training stopped at task {task.index + 1}, "
            f"iteration {iteration} (global step {int(self.global_step.numpy())}) with the "
            f"checkpoint {task.checkpoint.latest_checkpoint}; {self._resume_hint()}", signum)

    def _stop_between_tasks(self, task_index: int) -> None:
        """After a task's snapshot (and export): stop there if a signal asked to."""
        if self._stop is None or not self._stop.requested or task_index == len(self.tasks) - 1:
            return
        signum = self._stop.requested
        raise interrupts.TrainingInterrupted(
            f"{interrupts.signal_name(signum)}: training stopped after task "
            f"{self.snapshot_number(task_index)} (its snapshot is written); {self._resume_hint()}",
            signum)

    def start_task(self, task_index: int) -> "TaskState":
        """Everything a task's iterations need: method set-up, optimizers, steps, data."""
        # The previous task's traces are dropped with its steps; so are the gradient
        # registrations of its custom gradients (layers.leaky_relu; Keras's all-reduce on
        # several replicas), which would otherwise keep those traces alive for good.
        registered = layers.custom_gradient_names()
        layers.forget_custom_gradients(registered - self._gradients_before_task)
        self._gradients_before_task = registered & self._gradients_before_task
        self.method.before_task(self, task_index)
        with self.strategy.scope():  # optimizer variables mirrored like the models'
            # Fresh Adam state at every task, as the release re-initialises its slots.
            self.g_opt, self.d_opt = g_opt, d_opt = self._make_optimizer(), self._make_optimizer()
            updates = self.task_updates(task_index)
        iteration = self.steps.compile_iteration(*updates)
        classes = self.tasks[task_index]
        # K consecutive batches per outer iteration: the same sequence as K calls of next().
        batches = iter(task_dataset(self.data, classes, self.cfg.train.batch_size,
                                    seed=self.cfg.seed * 1000 + task_index).batch(self.cfg.train.critic_iters))
        # The whole training state, data position included, so a resumed run continues exactly.
        checkpoint = tf.train.CheckpointManager(
            tf.train.Checkpoint(generator=self.generator, critic=self.critic, g_opt=g_opt,
                                d_opt=d_opt, rng=self.rng, global_step=self.global_step,
                                iteration=self.iteration, data=batches,
                                **self.method.checkpoint_objects()),
            self._checkpoint_dir(task_index), max_to_keep=2)
        return TaskState(index=task_index, iteration_fn=iteration, batches=batches,
                         checkpoint=checkpoint,
                         progress=Progress(task_index, len(self.tasks), classes, self.cfg.train.iters))

    # ----------------------------------------------------------------- resuming
    def _checkpoint_dir(self, task_index: int) -> str:
        return task_dir(self.run_dir, CHECKPOINTS, self.snapshot_number(task_index))

    def _task_of_snapshot(self, number: int) -> int:
        t = tasks.task_of_snapshot(self.tasks, number)
        if t is not None:
            return t
        raise snapshots.SnapshotError(
            f"snapshot {number} does not belong to this run's tasks {self.tasks}")

    def _snapshot_state(self) -> dict:
        """What a task snapshot holds: the models, the method's state, the RNG and step."""
        return {"generator": self.generator, "critic": self.critic, "rng": self.rng,
                "global_step": self.global_step, **self.method.checkpoint_objects()}

    def _starting_point(self, resume: bool, start_from_task: Optional[int]):
        """(first task index, its TaskState or None, first iteration) to continue from."""
        done = snapshots.list_snapshots(self.run_dir)
        if start_from_task is not None:
            if start_from_task not in done:
                raise snapshots.SnapshotError(
                    f"--start_from_task {start_from_task}: no snapshot after that task in "
                    f"{self.run_dir}; finished tasks: {done or 'none'}")
            done = [n for n in done if n <= start_from_task]
        elif not resume:
            return 0, None, 0
        last_done = done[-1] if done else 0
        if start_from_task is None:
            resumed = self._resume_checkpoint(last_done)
            if resumed is not None:
                return resumed
        if not last_done:
            self._truncate_logs(0)  # rows of a first task killed before any checkpoint
            logging.info("nothing to resume from in %s: task 1 starts again", self.run_dir)
            return 0, None, 0
        snapshots.restore_into(self.run_dir, last_done, **self._snapshot_state())
        self._truncate_logs(int(self.global_step.numpy()))
        logging.info("continuing after the snapshot of task %d", last_done)
        return self._task_of_snapshot(last_done) + 1, None, 0

    def _resume_checkpoint(self, last_done: int):
        """(task index, TaskState, next iteration) restored from the newest intact
        checkpoint of the task after snapshot `last_done`, or None when there is none."""
        latest = self._latest_checkpoint(after_snapshot=last_done)
        if latest is None:
            return None
        t, path = latest
        task = self.start_task(t)
        try:
            task.checkpoint.checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise snapshots.SnapshotError(
                f"the checkpoint {path} reads back intact but does not fit this run's models "
                f"and state ({reason}): it was written with another configuration than "
                f"{os.path.join(self.run_dir, 'config.json')}; restore that configuration, or "
                f"move {os.path.dirname(path)} away to resume from the last task snapshot") from e
        self._truncate_logs(int(self.global_step.numpy()))
        logging.info("resuming task %d at iteration %d from %s", t + 1,
                     int(self.iteration.numpy()) + 1, path)
        return t, task, int(self.iteration.numpy()) + 1

    def _latest_checkpoint(self, after_snapshot: int):
        """(task index, checkpoint path) of the newest intact mid-task checkpoint of a task
        that has no snapshot yet, or None. Damaged newer ones are moved aside, with a
        warning (`recovery.newest_intact_checkpoint`)."""
        for t in reversed(range(len(self.tasks))):
            if self.snapshot_number(t) <= after_snapshot:
                return None
            path = recovery.newest_intact_checkpoint(self._checkpoint_dir(t),
                                                     f"task {self.snapshot_number(t)}")
            if path:
                return t, path
        return None

    def _truncate_logs(self, step: int) -> None:
        """Repairs the CSV logs and drops their rows after `step`: the resumed run logs
        those iterations again."""
        recovery.repair_logs(self.run_dir, step)
        self.log.reopen()

    def run_iteration(self, task: "TaskState", iteration: int) -> dict[str, tf.Tensor]:
        """One outer iteration; the generator update is skipped at iteration 0 (release)."""
        reals, labels = next(task.batches)
        terms = task.iteration_fn(reals, labels, iteration > 0)
        self.global_step.assign_add(1)
        self.iteration.assign(iteration)
        if iteration == 0:
            self.write_real_grid(task.index, reals[-1])
        return terms

    def _check_finite(self, task: "TaskState", iteration: int, terms) -> None:
        """Stops at the first NaN/Inf loss term, naming it; the last good checkpoint stays
        untouched and the offending models are kept in `debug/` beside it."""
        bad = sorted(k for k, v in terms.items() if not np.isfinite(float(v)))
        if not bad:
            return
        step = int(self.global_step.numpy())
        debug = os.path.join(self.run_dir, DEBUG, f"nonfinite_step_{step}")
        os.makedirs(debug, exist_ok=True)
        tf.train.Checkpoint(generator=self.generator, critic=self.critic).write(os.path.join(debug, "ckpt"))
        raise NonFiniteLossError(
            f"non-finite loss at task {task.index + 1}, iteration {iteration} (global step {step}): "
            f"{', '.join(f'{k}={float(terms[k])}' for k in bad)}. Training stopped; the last good "
            f"checkpoint in {self._checkpoint_dir(task.index)} is unchanged (continue from it with "
            f"--resume); the models at this step are in {debug}")

    def _save_checkpoint(self, task: "TaskState", iteration: int) -> None:
        """Saves the training state; a failed write (e.g. a full disk) stops training with
        the previous checkpoint, which CheckpointManager leaves intact, named."""
        try:
            task.checkpoint.save(checkpoint_number=iteration)
        except (OSError, tf.errors.OpError) as e:
            raise CheckpointWriteError(
                f"cannot write the checkpoint of task {task.index + 1}, iteration {iteration} in "
                f"{task.checkpoint.directory}: {e}. Training stopped; the previous checkpoint "
                f"{task.checkpoint.latest_checkpoint or '(none: the task restarts)'} is intact. "
                f"Free some space (or fix the directory), then continue with "
                f"scripts/run_sequential.py --out_dir {self.run_dir} --resume") from e

    def _after_iteration(self, task: "TaskState", iteration: int, terms) -> None:
        self._check_finite(task, iteration, terms)
        task.progress.tick(iteration)
        out = self.cfg.output
        last = iteration == self.cfg.train.iters - 1
        if iteration < 10 or iteration % out.log_every == 0 or last:
            step = int(self.global_step.numpy())
            values = {k: float(v) for k, v in terms.items()}
            values["perf/iters_per_sec"] = task.progress.rate()
            self.log.scalars(step, self.snapshot_number(task.index), iteration, values)
            task.progress.report(iteration, values)
            task.last_values = values
        if tasks.should_sample(iteration, out.sample_every) or last:
            self.write_class_grids(task.index, iteration)
        if iteration % out.checkpoint_every == 0:
            self._save_checkpoint(task, iteration)
        if self.monitor is not None and out.eval_every and (iteration % out.eval_every == 0 or last):
            task.accuracy = self.monitor(
                self.method.sampler(self), self.learned_classes(task.index),
                int(self.global_step.numpy()), self.snapshot_number(task.index), iteration, self.log)


@dataclasses.dataclass
class TaskState:
    """What the iterations of one task share."""

    index: int
    iteration_fn: Callable
    batches: Iterator
    checkpoint: tf.train.CheckpointManager
    progress: "Progress"
    last_values: dict = dataclasses.field(default_factory=dict)  # the last logged scalars
    accuracy: Optional[dict] = None  # the forgetting monitor's last per-class accuracy


class Progress:
    """Rate, ETA and log lines of one task: every ~10 seconds, and a summary at its end.

    The first `warmup` iterations of a task trace its compiled steps (and the grids' and
    the monitor's functions), which takes up to a minute; the rate and the ETA are measured
    after them (the steady rate), so the ETA does not start inflated. Until then the ETA is
    unknown ("?"). Future tasks trace again: the ETA adds this task's tracing overhead for
    each of them.

    Args:
      task_index: 0-based index of the task.
      num_tasks: tasks in the run.
      classes: the task's classes.
      iters: iterations per task.
      clock: seconds as a float (`time.monotonic`; tests pass a fake clock).
      warmup: iterations at the start of the task excluded from the steady rate.
    """

    WARMUP_ITERS = 10

    def __init__(self, task_index: int, num_tasks: int, classes: tuple[int, ...], iters: int,
                 clock: Callable[[], float] = time.monotonic, warmup: int = WARMUP_ITERS):
        self.task_index, self.num_tasks, self.iters = task_index, num_tasks, iters
        self.classes = ",".join(str(c) for c in classes)
        self.clock, self.warmup = clock, max(1, warmup)
        self.start = clock()
        self.last_report = -float("inf")
        self._first: Optional[int] = None  # first timed iteration (> 0 in a resumed task)
        self._steady: Optional[tuple[int, float]] = None  # (iteration, time) after warm-up
        self._last: Optional[tuple[int, float]] = None

    def tick(self, iteration: int) -> None:
        """Records that `iteration` has just finished."""
        now = self.clock()
        if self._first is None:
            self._first = iteration
        if self._steady is None and iteration - self._first + 1 >= self.warmup:
            self._steady = (iteration, now)
        self._last = (iteration, now)

    def elapsed(self) -> float:
        """Seconds from the task's start to its last finished iteration."""
        return (self._last[1] if self._last else self.clock()) - self.start

    def steady_rate(self) -> Optional[float]:
        """Iterations per second after the warm-up, or None before two points exist."""
        if self._steady is None or self._last[0] <= self._steady[0]:
            return None
        return (self._last[0] - self._steady[0]) / max(self._last[1] - self._steady[1], 1e-9)

    def rate(self) -> float:
        """The steady rate, or before it exists the rate since the task started."""
        steady = self.steady_rate()
        if steady is not None:
            return steady
        done = 0 if self._last is None else self._last[0] - self._first + 1
        return done / max(self.elapsed(), 1e-9)

    def tracing_seconds(self) -> float:
        """How much longer the warm-up iterations took than steady ones (0 if unknown)."""
        rate = self.steady_rate()
        if rate is None:
            return 0.0
        warm = self._steady[0] - self._first + 1
        return max(0.0, self._steady[1] - self.start - warm / rate)

    def eta(self) -> float:
        """Seconds left in the run: the remaining iterations at the steady rate plus this
        task's tracing overhead for every later task; inf before the steady rate exists."""
        rate = self.steady_rate()
        if rate is None:
            return float("inf")
        last = self._last[0]
        later_tasks = self.num_tasks - self.task_index - 1
        remaining = (self.iters - last - 1) + later_tasks * self.iters
        return remaining / rate + later_tasks * self.tracing_seconds()

    def report(self, iteration: int, values: dict[str, float]) -> None:
        """A progress line through absl logging, every ~10 s and at the task's end."""
        now = self.clock()
        if now - self.last_report < 10 and iteration != self.iters - 1:
            return
        self.last_report = now
        logging.info(
            "task %d/%d (class %s) iter %d/%d | %.2f it/s | ETA %s | D %.3f G %s",
            self.task_index + 1, self.num_tasks, self.classes, iteration, self.iters, self.rate(),
            _fmt_seconds(self.eta()), values.get("loss/critic/total", float("nan")),
            f"{values['loss/gen/total']:.3f}" if "loss/gen/total" in values else "-")

    def summary(self, values: dict[str, float], accuracy: Optional[dict[int, float]] = None) -> str:
        """One line on the finished task: time, steady rate, tracing, final losses and,
        when the forgetting monitor ran, the last accuracy of every learned class."""
        done = 0 if self._last is None else self._last[0] - self._first + 1
        steady = self.steady_rate()
        parts = [f"task {self.task_index + 1}/{self.num_tasks} (class {self.classes}) done: "
                 f"{done} iterations in {_fmt_seconds(self.elapsed())}, "
                 + (f"{steady:.2f} it/s after {_fmt_seconds(self.tracing_seconds())} of tracing"
                    if steady is not None else f"{self.rate():.2f} it/s")]
        losses = [f"{name} {values[key]:.4f}" for name, key in (
            ("D", "loss/critic/total"), ("G", "loss/gen/total"),
            ("W", "loss/critic/wasserstein"), ("AC acc", "acc/critic/ac_real")) if key in values]
        if losses:
            parts.append("final " + ", ".join(losses))
        if accuracy:
            per_class = ", ".join(f"{c}: {a:.1f}%" for c, a in sorted(accuracy.items()))
            parts.append(f"accuracy {per_class} (mean {np.mean(list(accuracy.values())):.1f}%)")
        return " | ".join(parts)


def _fmt_seconds(s: float) -> str:
    if not np.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
