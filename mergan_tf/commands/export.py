"""Export task snapshots of a run as self-contained SavedModel samplers.

  mergan-export --run_dir runs/mnist_ra             # every task -> <run>/export/task_NN
  mergan-export --run_dir runs/mnist_ra --task 10 --out_dir sampler_mnist_ra

(also `python -m mergan_tf export ...` and `python scripts/export.py ...`)
Loading an export needs TensorFlow only: see docs/export.md and mergan-sample.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from mergan_tf import export, snapshots  # noqa: E402
from mergan_tf.commands import run_main  # noqa: E402

flags.DEFINE_string("run_dir", None, "Run directory (with config.json and snapshots/).")
flags.DEFINE_integer("task", None, "Export only the snapshot after this task (1-based); "
                     "default: every task.")
flags.DEFINE_string("out_dir", None, "With --task: the export directory; without: the parent "
                    "of the task_NN exports. Default <run_dir>/export[/task_NN].")
flags.DEFINE_boolean("overwrite", False, "Write into an export directory that holds other "
                     "files than an earlier export, replacing only the export's own files.")
flags.mark_flag_as_required("run_dir")
FLAGS = flags.FLAGS
# --help lists the flags in these groups.
HELP_GROUPS = (
    ("inputs", ("run_dir", "task")),
    ("outputs", ("out_dir", "overwrite")),
    ("run control", ("debug",)),
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        if FLAGS.task is not None:
            paths = [export.export_snapshot(FLAGS.run_dir, FLAGS.task, FLAGS.out_dir,
                                            FLAGS.overwrite)]
        else:
            paths = export.export_run(FLAGS.run_dir, FLAGS.out_dir, FLAGS.overwrite)
    except (snapshots.SnapshotError, export.ExportError) as e:
        raise app.UsageError(str(e))
    for path in paths:
        print(f"exported: {path}")


def run():
    """Entry point of `mergan-export`."""
    run_main(main, __doc__, [__name__], groups=HELP_GROUPS)


if __name__ == "__main__":
    run()
