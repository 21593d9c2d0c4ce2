"""Evaluate a run's task snapshots the way the paper does (the release's test mode).

  mergan-evaluate --run_dir runs/mnist_ra [--after_tasks 5,10] \
      [--reverse_per_class 1000] [--fid_per_class 1000]
  mergan-evaluate --run_dir runs/lsun_jtr --reverse_per_class 1000 --fid_per_class 1000
  mergan-evaluate --run_dir runs/mnist_ra --evaluator release:pretrain/mnist/mnist.model-10197

(also `python -m mergan_tf evaluate ...` and `python scripts/evaluate.py ...`)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from mergan_tf import snapshots  # noqa: E402
from mergan_tf.commands import run_main  # noqa: E402
from mergan_tf.evaluation import classifiers, metrics, protocol  # noqa: E402

flags.DEFINE_string("run_dir", None, "Run directory written by scripts/run_sequential.py.")
flags.DEFINE_list("after_tasks", None, "Snapshots to evaluate (default: 5 and 10 where present, "
                  "else the last; LSUN: every task).")
flags.DEFINE_string("classifier_dir", None, "Evaluator (default checkpoints/classifiers/<dataset>).")
flags.DEFINE_string("evaluator", None, "Evaluator: a directory (as --classifier_dir) or "
                    "release:PREFIX, the release's pretrained classifier from its TF1 checkpoint "
                    "(MNIST pretrain/mnist/mnist.model-10197, SVHN pretrain/svhn/svhn.model-25654; "
                    "the release does not ship LSUN's).")
flags.DEFINE_float("min_evaluator_accuracy", None, "Refuse evaluators below this real-test "
                   "accuracy in percent (default: the dataset's floor, MNIST 97.5).")
flags.DEFINE_integer("batches", 100, "Batches of samples per class (release 100).")
flags.DEFINE_integer("batch_size", 64, "Samples per batch, one class per batch (release 64).")
flags.DEFINE_integer("seed", 0, "Seed of the sample noise.")
flags.DEFINE_integer("reverse_per_class", 0, "Generated samples per class for reverse accuracy "
                     "(0: skip).")
flags.DEFINE_integer("reverse_epochs", None, "Epochs of the reverse-accuracy classifier.")
flags.DEFINE_integer("fid_per_class", 0, "Samples per class for FID (0: skip).")
flags.DEFINE_enum("fid_features", None, list(protocol.FID_FEATURES), "FID features: InceptionV3 "
                  "(weights must be cached), the evaluator's, or auto (InceptionV3 if cached; "
                  "default for LSUN; others: evaluator).")
flags.mark_flag_as_required("run_dir")
FLAGS = flags.FLAGS
# --help lists the flags in these groups.
HELP_GROUPS = (
    ("run", ("run_dir", "after_tasks")),
    ("evaluator", ("evaluator", "classifier_dir", "min_evaluator_accuracy")),
    ("protocol", ("batches", "batch_size", "seed", "reverse_per_class", "reverse_epochs",
                  "fid_per_class", "fid_features")),
    ("run control", ("debug",)),
)


def main(argv):
    del argv
    if FLAGS.evaluator and FLAGS.classifier_dir:
        raise app.UsageError("give --evaluator or --classifier_dir, not both")
    try:
        after = [int(t) for t in FLAGS.after_tasks] if FLAGS.after_tasks else None
        evaluator = FLAGS.evaluator or FLAGS.classifier_dir  # a directory or release:PREFIX
        results = protocol.evaluate_run(
            FLAGS.run_dir, after, evaluator, FLAGS.min_evaluator_accuracy, FLAGS.batches,
            FLAGS.batch_size, FLAGS.seed, FLAGS.reverse_per_class, FLAGS.reverse_epochs,
            FLAGS.fid_per_class, fid_features=FLAGS.fid_features)
    except (snapshots.SnapshotError, classifiers.EvaluatorError, metrics.FeatureExtractorError,
            ValueError) as e:
        raise app.UsageError(str(e))
    print(protocol.markdown_report(results))
    print(f"written: {os.path.join(FLAGS.run_dir, 'eval.json')}, eval.md")


def run():
    """Entry point of `mergan-evaluate`."""
    run_main(main, __doc__, [__name__], groups=HELP_GROUPS)


if __name__ == "__main__":
    run()
