"""Qualitative figures of runs: Figure 3, the remembering mosaic (Fig. 5), the evolution of
one class over training (Fig. 7), training GIFs.

  mergan-figures runs/mnist_sft runs/mnist_ra runs/mnist_jtr --out_dir figures
  mergan-figures runs/lsun_sft runs/lsun_ra runs/lsun_jtr --out_dir figures/lsun

(also `python -m mergan_tf figures ...` and `python scripts/make_figures.py ...`)
Writes <out_dir>/<run>_figure3.png, <run>_mosaic.png and <run>_training.gif per run,
remembering.png with the runs side by side and evolution_class_<c>.png (runs stacked).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from mergan_tf import figures, snapshots  # noqa: E402
from mergan_tf.commands import run_main  # noqa: E402

flags.DEFINE_string("out_dir", "figures", "Directory for the figures.")
flags.DEFINE_integer("num_z", 10, "Figure 3 columns (latent vectors).", lower_bound=1)
flags.DEFINE_list("mosaic_z", ["0", "1"], "Fixed-noise indices of the remembering mosaic's "
                  "blocks and of the evolution figure's rows.")
flags.DEFINE_integer("evolution_class", 0, "Class (LSUN: task index, 0 = bedroom) of the "
                     "evolution figure; -1 skips it.", lower_bound=-1)
flags.DEFINE_boolean("gif", True, "Write each run's training GIF.")
FLAGS = flags.FLAGS
# --help lists the flags in these groups.
HELP_GROUPS = (
    ("figures", ("num_z", "mosaic_z", "evolution_class", "gif")),
    ("outputs", ("out_dir",)),
    ("run control", ("debug",)),
)


def main(argv):
    if len(argv) < 2:
        raise app.UsageError("give one or more run directories")
    try:
        evolution = None if FLAGS.evolution_class < 0 else FLAGS.evolution_class
        written = figures.make_figures(argv[1:], FLAGS.out_dir, FLAGS.num_z,
                                       [int(k) for k in FLAGS.mosaic_z], evolution, FLAGS.gif)
    except (snapshots.SnapshotError, FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e))
    for kind, paths in written.items():
        for path in paths:
            print(f"{kind}: {path}")


def run():
    """Entry point of `mergan-figures`."""
    run_main(main, __doc__, [__name__], groups=HELP_GROUPS)


if __name__ == "__main__":
    run()
