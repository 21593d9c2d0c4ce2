"""Forgetting curves (paper Figure 6): per-class accuracy against iteration, runs side by side.

  mergan-plot-forgetting runs/mnist_sft runs/mnist_ra --out forgetting.png

(also `python -m mergan_tf plot-forgetting ...` and `python scripts/plot_forgetting.py ...`)
Each run must have been trained with --eval_every N (it writes forgetting.csv).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from mergan_tf.commands import run_main  # noqa: E402
from mergan_tf.evaluation import plots  # noqa: E402

flags.DEFINE_string("out", "forgetting.png", "PNG to write.")
FLAGS = flags.FLAGS
# --help lists the flags in these groups.
HELP_GROUPS = (
    ("outputs", ("out",)),
    ("run control", ("debug",)),
)


def main(argv):
    if len(argv) < 2:
        raise app.UsageError("give one or more run directories")
    try:
        print(f"written: {plots.plot_forgetting(argv[1:], FLAGS.out)}")
    except FileNotFoundError as e:
        raise app.UsageError(str(e))


def run():
    """Entry point of `mergan-plot-forgetting`."""
    run_main(main, __doc__, [__name__], groups=HELP_GROUPS)


if __name__ == "__main__":
    run()
