"""Where EWC holds the generator during a task: per group of weights (shared; the earlier
classes' batch-norm rows; the new class's rows), how far it moved, its share of the Fisher
and the penalty it pays, beside the accuracies after the task (`evaluation/ewc_anatomy.py`).

  python benchmarks/ewc_anatomy.py --runs ~/mergan_runs/ewc_sweep/sft,~/mergan_runs/ewc_sweep/ewc_1e+03
  python benchmarks/ewc_anatomy.py --runs ~/mergan_runs/table1_mnist/ewc --task 10

Reads snapshots and eval.json only (no training); SFT runs get the movement alone.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from mergan_tf.evaluation import ewc_anatomy  # noqa: E402

flags.DEFINE_list("runs", None, "Run directories (EWC runs, and SFT for reference).")
flags.DEFINE_integer("task", None, "Task examined, 1-based (default: each run's last; >= 2).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if not FLAGS.runs:
        raise app.UsageError("--runs: give one or more run directories, comma-separated")
    try:
        anatomies = [ewc_anatomy.task_anatomy(os.path.expanduser(r), FLAGS.task) for r in FLAGS.runs]
    except ValueError as e:
        raise app.UsageError(str(e))
    tasks = sorted({a.task for a in anatomies})
    print(f"Task {', '.join(map(str, tasks))}: per group, moved = ||theta - anchor|| / ||anchor|| "
          "over the task, its share of the Fisher's mass, and lambda/2 sum F (theta - anchor)^2 "
          "at the task's end.")
    print(ewc_anatomy.format_table(anatomies))


if __name__ == "__main__":
    app.run(main)
