"""t-SNE (paper Figure 4) of evaluator features of real and generated images of one class.

  mergan-plot-tsne --class_id 0 --task 5 --out tsne.png runs/mnist_sft runs/mnist_ra

(also `python -m mergan_tf plot-tsne ...` and `python scripts/plot_tsne.py ...`)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from mergan_tf import snapshots  # noqa: E402
from mergan_tf.commands import run_main  # noqa: E402
from mergan_tf.data import load_for_config  # noqa: E402
from mergan_tf.evaluation import classifiers, evaluators, plots, protocol  # noqa: E402

flags.DEFINE_integer("class_id", 0, "Class to embed.")
flags.DEFINE_integer("task", None, "Snapshot after this task (default: each run's last).")
flags.DEFINE_integer("n", 300, "Images per source.")
flags.DEFINE_string("classifier_dir", None, "Evaluator (default checkpoints/classifiers/<dataset>).")
flags.DEFINE_string("out", "tsne.png", "PNG to write.")
FLAGS = flags.FLAGS
# --help lists the flags in these groups.
HELP_GROUPS = (
    ("inputs", ("class_id", "task", "n", "classifier_dir")),
    ("outputs", ("out",)),
    ("run control", ("debug",)),
)


def main(argv):
    runs = argv[1:]
    if not runs:
        raise app.UsageError("give one or more run directories")
    try:
        cfg = snapshots.load_run_config(runs[0])
        evaluator, _ = evaluators.load_evaluator(  # a directory or release:PREFIX
            FLAGS.classifier_dir or protocol.default_classifier_dir(cfg.data.dataset),
            dataset=cfg.data.dataset)
        real = load_for_config(cfg, verbose=False)
        pool, labels = (real.test_images, real.test_labels) if real.test_images is not None else (
            real.train_images, real.train_labels)
        path = plots.plot_tsne(runs, FLAGS.class_id, pool[labels == FLAGS.class_id], evaluator,
                               FLAGS.out, FLAGS.task, FLAGS.n)
    except (snapshots.SnapshotError, classifiers.EvaluatorError, ValueError) as e:
        raise app.UsageError(str(e))
    print(f"written: {path}")


def run():
    """Entry point of `mergan-plot-tsne`."""
    run_main(main, __doc__, [__name__], groups=HELP_GROUPS)


if __name__ == "__main__":
    run()
