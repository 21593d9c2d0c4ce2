"""The comparison point of issue 7: the 32x32 outer iteration written with raw `tf.nn` ops.

No Keras, no trainer: plain variables, one `tf.function` doing one generator update and five
critic updates of batch 64 (WGAN-GP + AC losses, Adam), on random data in [-1, 1]. It is the
same mathematics and the same shapes as `mergan_tf.trainer` at SFT, so its time is what the
framework-free step costs on this machine.

  python benchmarks/plain_step.py --iters 30 [--jit] [--mixed_precision bf16]

With `--mixed_precision bf16` the matmuls and convolutions (and the critic's activations)
run in bfloat16 on float32 variables, batch norm and losses in float32: what the trainer's
`--mixed_precision bf16` does with Keras's mixed_bfloat16 policy.

The last line is exactly `ms_per_iter=<median>`.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from mergan_tf.benchmark import graph_gflops  # noqa: E402  (the FLOP count only)
from mergan_tf.configs import PRECISIONS  # noqa: E402
from mergan_tf.layers import leaky_relu as leaky_relu_from_output  # noqa: E402

flags.DEFINE_integer("iters", 30, "Timed outer iterations.")
flags.DEFINE_integer("warmup", 5, "Untimed outer iterations first (tracing).")
flags.DEFINE_integer("dim", 32, "Width multiplier (release 32).")
flags.DEFINE_boolean("jit", False, "Compile the step with XLA (jit_compile=True).")
flags.DEFINE_enum("leaky_relu", "tf", ["tf", "from_output"], "The critic's activation: "
                  "tf.nn.leaky_relu (the plain baseline) or the trainer's layers.leaky_relu, "
                  "whose gradient reads its output (same values and gradients).")
flags.DEFINE_enum("mixed_precision", "none", list(PRECISIONS), "bf16: matmuls and convolutions "
                  "in bfloat16 on float32 variables.")
FLAGS = flags.FLAGS

BATCH, Z_DIM, CLASSES, CRITIC_ITERS = 64, 128, 10, 5


def _var(shape, scale):
    return tf.Variable(tf.random.uniform(shape, -scale, scale))


def make_params(dim: int) -> tuple[dict, dict]:
    """Generator and critic variables (NHWC; conv_transpose filters are [k, k, out, in])."""
    g = {"fc_w": _var([Z_DIM, 16 * 4 * dim], 0.05), "fc_b": tf.Variable(tf.zeros([16 * 4 * dim]))}
    widths = [4 * dim, 2 * dim, dim, 1]
    for i in range(3):
        g[f"gamma{i}"] = tf.Variable(tf.ones([CLASSES, widths[i]]))
        g[f"beta{i}"] = tf.Variable(tf.zeros([CLASSES, widths[i]]))
        g[f"dc{i}_w"] = _var([5, 5, widths[i + 1], widths[i]], 0.05)
        g[f"dc{i}_b"] = tf.Variable(tf.zeros([widths[i + 1]]))
    d = {}
    widths = [1, dim, 2 * dim, 4 * dim]
    for i in range(3):
        d[f"c{i}_w"] = _var([5, 5, widths[i], widths[i + 1]], 0.05)
        d[f"c{i}_b"] = tf.Variable(tf.zeros([widths[i + 1]]))
    d["w_w"], d["w_b"] = _var([16 * 4 * dim, 1], 0.05), tf.Variable(tf.zeros([1]))
    d["a_w"], d["a_b"] = _var([16 * 4 * dim, CLASSES], 0.05), tf.Variable(tf.zeros([CLASSES]))
    return g, d


def generator(g, z, labels, dim, cd=tf.float32):
    """`cd`: the compute dtype of the matmul and transposed convolutions."""
    def w(name):
        return tf.cast(g[name], cd)
    x = tf.reshape(tf.matmul(tf.cast(z, cd), w("fc_w")) + w("fc_b"), [-1, 4, 4, 4 * dim])
    size = 4
    for i in range(3):
        x = tf.cast(x, tf.float32)  # batch norm in float32
        mean, var = tf.nn.moments(x, [0, 1, 2], keepdims=True)
        gamma = tf.gather(g[f"gamma{i}"], labels)[:, None, None, :]
        beta = tf.gather(g[f"beta{i}"], labels)[:, None, None, :]
        x = tf.cast(tf.nn.relu(tf.nn.batch_normalization(x, mean, var, beta, gamma, 1e-5)), cd)
        size *= 2
        out_ch = g[f"dc{i}_w"].shape[2]
        x = tf.nn.conv2d_transpose(x, w(f"dc{i}_w"), [tf.shape(x)[0], size, size, out_ch],
                                   2, padding="SAME") + w(f"dc{i}_b")
    return tf.cast(tf.tanh(x), tf.float32)


def critic(d, x, cd=tf.float32, act=tf.nn.leaky_relu):
    def w(name):
        return tf.cast(d[name], cd)
    x = tf.cast(x, cd)
    for i in range(3):
        x = act(tf.nn.conv2d(x, w(f"c{i}_w"), 2, "SAME") + w(f"c{i}_b"), 0.2)
    x = tf.reshape(x, [tf.shape(x)[0], -1])
    return (tf.cast(tf.squeeze(tf.matmul(x, w("w_w")) + w("w_b"), 1), tf.float32),
            tf.cast(tf.matmul(x, w("a_w")) + w("a_b"), tf.float32))


def make_step(dim: int, jit: bool, cd=tf.float32, act=tf.nn.leaky_relu):
    g, d = make_params(dim)
    g_vars, d_vars = list(g.values()), list(d.values())
    g_opt = tf.keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9)
    d_opt = tf.keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9)
    g_opt.build(g_vars)
    d_opt.build(d_vars)
    labels = tf.zeros([BATCH], tf.int32)

    def ce(logits):
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))

    @tf.function(jit_compile=jit)
    def step(reals):
        with tf.GradientTape() as tape:
            logits, class_logits = critic(
                d, generator(g, tf.random.normal([BATCH, Z_DIM]), labels, dim, cd), cd, act)
            g_loss = -tf.reduce_mean(logits) + ce(class_logits)
        g_opt.apply_gradients(zip(tape.gradient(g_loss, g_vars), g_vars))
        for k in range(CRITIC_ITERS):
            real = reals[k]
            fake = generator(g, tf.random.normal([BATCH, Z_DIM]), labels, dim, cd)
            alpha = tf.random.uniform([BATCH, 1, 1, 1])
            with tf.GradientTape() as tape:
                real_logits, real_class = critic(d, real, cd, act)
                fake_logits, _ = critic(d, fake, cd, act)
                inter = real + alpha * (fake - real)
                with tf.GradientTape() as gp_tape:
                    gp_tape.watch(inter)
                    inter_logits, _ = critic(d, inter, cd, act)
                grads = gp_tape.gradient(inter_logits, inter)
                slopes = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))
                d_loss = (tf.reduce_mean(fake_logits) - tf.reduce_mean(real_logits)
                          + 10.0 * tf.reduce_mean((slopes - 1.0) ** 2) + ce(real_class))
            d_opt.apply_gradients(zip(tape.gradient(d_loss, d_vars), d_vars))
        return d_loss

    return step


def main(argv):
    del argv
    step = make_step(FLAGS.dim, FLAGS.jit,
                     tf.bfloat16 if FLAGS.mixed_precision == "bf16" else tf.float32,
                     leaky_relu_from_output if FLAGS.leaky_relu == "from_output" else tf.nn.leaky_relu)
    reals = tf.random.uniform([CRITIC_ITERS, BATCH, 32, 32, 1], -1, 1)
    times = []
    for _ in range(FLAGS.warmup + FLAGS.iters):
        start = time.perf_counter()
        float(step(reals))
        times.append(time.perf_counter() - start)
    times = 1000 * np.array(times[FLAGS.warmup:])
    print(f"plain tf.nn step, dim={FLAGS.dim} jit={FLAGS.jit} iters={FLAGS.iters} "
          f"mixed_precision={FLAGS.mixed_precision} leaky_relu={FLAGS.leaky_relu} "
          f"threads={tf.config.threading.get_intra_op_parallelism_threads() or 'default'}")
    print(f"median {np.median(times):.1f} ms, min {times.min():.1f} ms, max {times.max():.1f} ms")
    gflop = graph_gflops(step, reals)
    print(f"gflop_per_iter={gflop:.3f} ({gflop / np.median(times) * 1000:.0f} GFLOP/s at the median)")
    print(f"ms_per_iter={np.median(times):.1f}")


if __name__ == "__main__":
    app.run(main)
