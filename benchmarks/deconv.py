"""The generator's transposed convolutions: conv2d_transpose against other forms.

  python benchmarks/deconv.py [--reps 3] [--iters 20] [--mixed_precision bf16]
  python benchmarks/deconv.py --per_layer --batch 320 [--mixed_precision none]

Default: times the dcgan32 generator at DIM 32 on a batch of 64, forward alone and forward
+ backward (the generator update's work), for `--deconv transpose` and `subpixel` (the same
function and weights, `layers.subpixel_conv2d_transpose`).

`--per_layer`: each of the generator's 5x5 stride-2 transposed convolutions at DIM 32 alone
(4x4x128 -> 8x8x64, 8x8x64 -> 16x16x32, 16x16x32 -> 32x32x1; the first two are also the
critic's input gradients), in four forms of the same function: `conv2d_transpose` (NHWC,
what the trainer runs), the same in NCHW, the sub-pixel form (one 3x3 convolution to 4x
the channels, then depth_to_space), and four stride-1 convolutions, one per output phase
(2x2, 2x3, 3x2 and 3x3 taps: the 25 of the filter, no zeros), interleaved by
depth_to_space. Each form is checked against `conv2d_transpose` before it is timed, and
its GFLOP/s counts the transposed convolution's own multiply-adds (2 * 25 * in * out per
input pixel).

Interleaved: each repetition runs every row once; the medians of the repetitions are
printed with a matmul reading of the same run. Pause training runs that share the machine
while it runs.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from mergan_tf import configs, layers  # noqa: E402
from mergan_tf.benchmark import matmul_gflops, median_ms  # noqa: E402
from mergan_tf.models import factory  # noqa: E402
from mergan_tf.models.dcgan32 import Generator  # noqa: E402

flags.DEFINE_integer("reps", 3, "Interleaved repetitions.")
flags.DEFINE_integer("iters", 20, "Timed calls per row and repetition.")
flags.DEFINE_integer("warmup", 3, "Untimed calls first.")
flags.DEFINE_integer("batch", 64, "Batch size.")
flags.DEFINE_enum("mixed_precision", "bf16", list(configs.PRECISIONS), "Layer precision.")
flags.DEFINE_boolean("per_layer", False, "Time each transposed convolution alone in four "
                     "forms (see the module's doc) instead of the generator.")
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


# Output phase r of a 5x5 stride-2 SAME transposed convolution: (the filter rows that reach
# it, in the order of the input rows u - 1, u[, u + 1]; its padding before and after).
_PHASES = {0: ((3, 1), (1, 0)), 1: ((4, 2, 0), (1, 1))}


def four_phase_conv2d_transpose(x, kernel):
    """`conv2d_transpose(x, kernel [5, 5, out, in], 2H x 2W, 2, "SAME")` as four stride-1
    convolutions over x, one per output phase (ry, rx), interleaved by depth_to_space."""
    k = tf.transpose(kernel, [0, 1, 3, 2])  # [5, 5, in, out]
    phases = []
    for ry in range(2):
        rows_y, pad_y = _PHASES[ry]
        k_rows = tf.gather(k, list(rows_y), axis=0)
        for rx in range(2):
            rows_x, pad_x = _PHASES[rx]
            phases.append(tf.nn.conv2d(x, tf.gather(k_rows, list(rows_x), axis=1), 1,
                                       [[0, 0], list(pad_y), list(pad_x), [0, 0]]))
    return tf.nn.depth_to_space(tf.concat(phases, axis=-1), 2)


def _conv2d_transpose(x, kernel, data_format="NHWC"):
    n, h, w = (x.shape[0], *x.shape[1:3]) if data_format == "NHWC" else (x.shape[0], *x.shape[2:])
    out = kernel.shape[2]
    shape = [n, 2 * h, 2 * w, out] if data_format == "NHWC" else [n, out, 2 * h, 2 * w]
    return tf.nn.conv2d_transpose(x, kernel, shape, 2, "SAME", data_format=data_format)


def layer_rows(dim: int = 32, channels: int = 1):
    """({name: callable}, {name: GFLOP per call}) for --per_layer, each form checked."""
    dtype = tf.bfloat16 if FLAGS.mixed_precision == "bf16" else tf.float32
    tolerance = 2e-2 if dtype == tf.bfloat16 else 1e-5
    out, gflop = {}, {}
    for size, c_in, c_out in ((4, 4 * dim, 2 * dim), (8, 2 * dim, dim), (16, dim, channels)):
        x = tf.cast(tf.random.stateless_normal([FLAGS.batch, size, size, c_in], seed=[1, 2]), dtype)
        kernel = tf.cast(0.05 * tf.random.stateless_normal([5, 5, c_out, c_in], seed=[3, 4]),
                         dtype)
        x_nchw = tf.transpose(x, [0, 3, 1, 2])
        forms = {
            "conv2d_transpose": (tf.function(_conv2d_transpose), x, lambda y: y),
            "conv2d_transpose NCHW": (tf.function(lambda x, k: _conv2d_transpose(x, k, "NCHW")),
                                      x_nchw, lambda y: tf.transpose(y, [0, 2, 3, 1])),
            "sub-pixel 3x3": (tf.function(layers.subpixel_conv2d_transpose), x, lambda y: y),
            "four phases": (tf.function(four_phase_conv2d_transpose), x, lambda y: y),
        }
        reference = tf.cast(_conv2d_transpose(x, kernel), tf.float32)
        layer = f"{size}x{size}x{c_in} -> {2 * size}x{2 * size}x{c_out}"
        for form, (fn, inputs, to_nhwc) in forms.items():
            got = tf.cast(to_nhwc(fn(inputs, kernel)), tf.float32)
            error = float(tf.norm(got - reference) / tf.norm(reference))
            if not error <= tolerance:
                raise AssertionError(f"{form} on {layer}: relative error {error:.1e} against "
                                     f"conv2d_transpose (tolerance {tolerance:.0e})")
            name = f"{layer}: {form}"
            out[name] = lambda fn=fn, inputs=inputs, kernel=kernel: fn(inputs, kernel)
            gflop[name] = 2 * 25 * c_in * c_out * size * size * FLAGS.batch / 1e9
    return out, gflop


def main(argv):
    del argv
    timed, gflop = layer_rows() if FLAGS.per_layer else (rows(), {})
    results = {name: [] for name in timed}
    peaks = []
    for _ in range(FLAGS.reps):
        peaks.append(matmul_gflops(tf.bfloat16 if FLAGS.mixed_precision == "bf16" else tf.float32))
        for name, fn in timed.items():
            results[name].append(median_ms(fn, FLAGS.iters, FLAGS.warmup))
    print(f"matmul {'bf16' if FLAGS.mixed_precision == 'bf16' else 'float32'}: {np.median(peaks):.0f} GFLOP/s "
          f"({', '.join(f'{p:.0f}' for p in peaks)})")
    for name, ms in results.items():
        rate = f", {gflop[name] / np.median(ms) * 1000:.0f} GFLOP/s" if name in gflop else ""
        print(f"{name}: {np.median(ms):.2f} ms{rate} ({', '.join(f'{m:.2f}' for m in ms)})")


if __name__ == "__main__":
    app.run(main)
