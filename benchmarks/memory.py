"""Resident memory per task of a 10-task run: it must not grow with the learned classes
beyond the replay tensors (issue 7).

  python benchmarks/memory.py --data_dir ../shared/data/mnist --method ra --iters 20

Trains the real trainer (few iterations per task), reads the `perf/rss_mb` and
`perf/peak_rss_mb` rows it logs at the end of every task, and prints them beside the size of
that task's replay tensors. The last line is exactly
`peak_rss_growth_mb=<peak after the last task - peak after task 2>`.

  python benchmarks/memory.py --data_dir ../shared/data/mnist --method ra --retrace_at 9 --retraces 12

separates the two things a task start does: it retraces the step (new optimizers, new
Python-constant classes) and it adds a learned class. It positions one trainer at
`--retrace_at` learned classes and starts that same task `--retraces` times (3 iterations
each), printing RSS after each; compare the per-retrace growth at 1 and at 9 learned
classes. The last line is then `rss_growth_per_retrace_mb=<mean over the last half>`.
"""

import csv
import dataclasses
import gc
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from mergan_tf import benchmark, configs, data  # noqa: E402
from mergan_tf.methods import make_method  # noqa: E402
from mergan_tf.run_dir import prepare_run_dir  # noqa: E402
from mergan_tf.trainer import Trainer, resident_memory_mb  # noqa: E402

flags.DEFINE_string("dataset", "mnist", "Dataset preset.")
flags.DEFINE_string("data_dir", None, "IDX / .mat directory (default: auto source).")
flags.DEFINE_enum("method", "ra", list(configs.METHODS), "Method.")
flags.DEFINE_integer("tasks", 10, "Tasks.")
flags.DEFINE_integer("iters", 20, "Iterations per task.")
flags.DEFINE_integer("retrace_at", None, "Instead of a run: learned classes at which to start "
                     "the same task --retraces times (see the module doc).")
flags.DEFINE_integer("retraces", 12, "Task starts with --retrace_at.")
FLAGS = flags.FLAGS


def replay_bytes(cfg: configs.RunConfig, learned: int) -> int:
    """Bytes of one step's replay tensors (z, Old and New images) with `learned` classes."""
    if learned == 0:
        return 0
    b = cfg.train.batch_size
    n = learned * (b // learned if cfg.method.reduce_batch else b)
    pixels = cfg.model.image_size ** 2 * cfg.model.channels
    return 4 * n * (cfg.model.z_dim + 2 * pixels)


def retrace_growth(d: data.ImageData) -> None:
    """RSS after each of --retraces starts of the task at --retrace_at learned classes."""
    with tempfile.TemporaryDirectory() as run_dir:
        trainer, task = benchmark.trainer_at_task(d, FLAGS.method, FLAGS.retrace_at, run_dir)
        rss = []
        for r in range(FLAGS.retraces):
            if r:
                task = trainer.start_task(FLAGS.retrace_at)  # fresh optimizers, new traces
            for i in range(3):
                float(trainer.run_iteration(task, i + 1)["loss/critic/total"])
            del task
            gc.collect()
            rss.append(resident_memory_mb()["perf/rss_mb"])
            print(f"start {r + 1} at {FLAGS.retrace_at} learned classes: RSS {rss[-1]:.0f} MiB", flush=True)
        trainer.log.close()
    half = len(rss) // 2
    steps = [b - a for a, b in zip(rss[half - 1:], rss[half:])]
    print(f"rss_growth_per_retrace_mb={sum(steps) / max(len(steps), 1):.2f}")


def main(argv):
    del argv
    d = data.load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir, verbose=False)
    if FLAGS.retrace_at is not None:
        return retrace_growth(d)
    cfg = configs.preset_config(FLAGS.dataset, FLAGS.method)
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = configs.validate(cfg.replace(
            classes=cfg.classes[:FLAGS.tasks], out_dir=run_dir,
            data=dataclasses.replace(cfg.data, resolved_source=d.source),
            train=dataclasses.replace(cfg.train, iters=FLAGS.iters),
            output=dataclasses.replace(cfg.output, sample_every=10 ** 6, checkpoint_every=10 ** 6,
                                       export=False)))
        prepare_run_dir(cfg)
        Trainer(cfg, d).train()
        with open(os.path.join(run_dir, "scalars.csv")) as f:
            rows = [r for r in csv.DictReader(f) if r["key"] in ("perf/rss_mb", "perf/peak_rss_mb")]
    per_task = {}
    for r in rows:
        per_task.setdefault(int(r["task"]), {})[r["key"]] = float(r["value"])
    print(f"method={FLAGS.method} tasks={FLAGS.tasks} iters={FLAGS.iters} data: {d.source}")
    print("| task | learned classes replayed | replay tensors (KiB) | RSS (MiB) | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    needs_replay = make_method(cfg.method).needs_replay
    for task, m in sorted(per_task.items()):
        kib = replay_bytes(cfg, task - 1 if needs_replay else 0) / 1024
        print(f"| {task} | {task - 1 if needs_replay else 0} | {kib:.0f} | {m['perf/rss_mb']:.0f} | "
              f"{m['perf/peak_rss_mb']:.0f} |")
    last = max(per_task)
    print(f"peak_rss_growth_mb={per_task[last]['perf/peak_rss_mb'] - per_task[2]['perf/peak_rss_mb']:.1f}")


if __name__ == "__main__":
    app.run(main)
