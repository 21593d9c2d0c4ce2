"""The generator's transposed convolutions: conv2d_transpose against the sub-pixel form.

  python benchmarks/deconv.py [--reps 3] [--iters 20] [--mixed_precision bf16]

Times the dcgan32 generator at DIM 32 on a batch of 64, forward alone and forward +
backward (the generator update's work), for `--deconv transpose` and `subpixel` (the same
function and weights, `layers.subpixel_conv2d_transpose`), interleaved: each repetition
runs every row once; the medians of the repetitions are printed with a matmul reading of
the same run. Pause training runs that share the machine while it runs.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from mergan_tf import configs  # noqa: E402
from mergan_tf.benchmark import matmul_gflops, median_ms  # noqa: E402
from mergan_tf.models import factory  # noqa: E402
from mergan_tf.models.dcgan32 import Generator  # noqa: E402

flags.DEFINE_integer("reps", 3, "Interleaved repetitions.")
flags.DEFINE_integer("iters", 20, "Timed calls per row and repetition.")
flags.DEFINE_integer("warmup", 3, "Untimed calls first.")
flags.DEFINE_integer("batch", 64, "Batch size.")
flags.DEFINE_enum("mixed_precision", "bf16", list(configs.PRECISIONS), "Layer precision.")
FLAGS = flags.FLAGS


def rows():
    """{name: callable} timed in each repetition."""
    z = tf.random.stateless_normal([FLAGS.batch, 128], seed=[3, 4])
    labels = tf.zeros([FLAGS.batch], tf.int32)
    out = {}
    for deconv in configs.DECONVS:
        with factory.dtype_policy(factory.DTYPE_POLICIES[FLAGS.mixed_precision]):
            g = Generator(1, 32, deconv=deconv)
        forward = tf.function(lambda g=g: g(z, labels))

        @tf.function
        def forward_backward(g=g):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(g(z, labels)))
            return tf.add_n([tf.reduce_sum(x) for x in tape.gradient(loss, g.trainable_variables)])
        out[f"{deconv} forward"] = forward
        out[f"{deconv} forward+backward"] = forward_backward
    return out


def main(argv):
    del argv
    timed = rows()
    results = {name: [] for name in timed}
    peaks = []
    for _ in range(FLAGS.reps):
        peaks.append(matmul_gflops(tf.bfloat16 if FLAGS.mixed_precision == "bf16" else tf.float32))
        for name, fn in timed.items():
            results[name].append(median_ms(fn, FLAGS.iters, FLAGS.warmup))
    print(f"matmul {FLAGS.mixed_precision}: {np.median(peaks):.0f} GFLOP/s "
          f"({', '.join(f'{p:.0f}' for p in peaks)})")
    for name, ms in results.items():
        print(f"{name}: {np.median(ms):.2f} ms ({', '.join(f'{m:.2f}' for m in ms)})")


if __name__ == "__main__":
    app.run(main)
