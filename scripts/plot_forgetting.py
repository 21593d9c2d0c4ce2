"""Forgetting curves (paper Figure 6): per-class accuracy against iteration, runs side by side.

  python scripts/plot_forgetting.py runs/mnist_sft runs/mnist_ra --out forgetting.png

Each run must have been trained with --eval_every N (it writes forgetting.csv).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from mergan_tf.evaluation import plots  # noqa: E402

flags.DEFINE_string("out", "forgetting.png", "PNG to write.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) < 2:
        raise app.UsageError("give one or more run directories")
    try:
        print(f"written: {plots.plot_forgetting(argv[1:], FLAGS.out)}")
    except FileNotFoundError as e:
        raise app.UsageError(str(e))


if __name__ == "__main__":
    app.run(main)
