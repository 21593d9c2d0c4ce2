"""Qualitative figures of runs: Figure 3, the remembering mosaic (Fig. 5), training GIFs.

  python scripts/make_figures.py runs/mnist_sft runs/mnist_ra runs/mnist_jtr --out_dir figures

Writes <out_dir>/<run>_figure3.png and <run>_training.gif per run, and remembering.png with
the runs side by side.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from mergan_tf import figures, snapshots  # noqa: E402

flags.DEFINE_string("out_dir", "figures", "Directory for the figures.")
flags.DEFINE_integer("num_z", 10, "Figure 3 columns (latent vectors).", lower_bound=1)
flags.DEFINE_list("mosaic_z", ["0", "1"], "Fixed-noise indices of the remembering mosaic's blocks.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) < 2:
        raise app.UsageError("give one or more run directories")
    try:
        written = figures.make_figures(argv[1:], FLAGS.out_dir, FLAGS.num_z,
                                       [int(k) for k in FLAGS.mosaic_z])
    except (snapshots.SnapshotError, FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e))
    for kind, paths in written.items():
        for path in paths:
            print(f"{kind}: {path}")


if __name__ == "__main__":
    app.run(main)
