"""This machine's matmul rate now: float32 and bf16 GFLOP/s of a large matmul.

  python benchmarks/peak.py [--n 2048] [--reps 10]

Take it in the same run as a timing, so a reader sees the fraction of peak a step
reaches (the machine's speed drifts 2-3x in a day). Last lines `float32_gflops=` and
`bf16_gflops=`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from mergan_tf.benchmark import matmul_gflops  # noqa: E402

flags.DEFINE_integer("n", 2048, "Matrix side.")
flags.DEFINE_integer("reps", 10, "Timed runs (the median is printed).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    for name, dtype in (("float32", tf.float32), ("bf16", tf.bfloat16)):
        print(f"{name}_gflops={matmul_gflops(dtype, FLAGS.n, FLAGS.reps):.1f}")


if __name__ == "__main__":
    app.run(main)
