"""Milliseconds per outer iteration of the real trainer (1 generator + 5 critic updates).

  python benchmarks/throughput.py --dataset mnist --data_dir ../shared/data/mnist \
      --method ra --learned_classes 9 --iters 30
  python benchmarks/throughput.py --dataset lsun --data_dir LSUN_DIR --iters 3 --warmup 1

The last line is exactly `ms_per_iter=<median>`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from mergan_tf import benchmark  # noqa: E402

benchmark.define_trainer_flags()
flags.DEFINE_integer("iters", 30, "Timed outer iterations.")
flags.DEFINE_integer("warmup", 5, "Untimed outer iterations first (tracing).")
flags.DEFINE_boolean("fused_iteration", True, "One tf.function per outer iteration.")
flags.DEFINE_boolean("concat_critic", True, "One critic call on [real; fake].")
flags.DEFINE_boolean("batch_critic_inputs", True, "One generator call for the fakes (and "
                     "replays) of all the critic updates of an outer iteration.")
flags.DEFINE_boolean("flops", True, "Also count the floating-point operations of one outer "
                     "iteration (tf.profiler over the traced graph) and print the rate reached.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    d, model = benchmark.trainer_inputs(FLAGS)
    print(f"data: {d.source}")
    print(f"data pipeline: {benchmark.data_images_per_second(d):,.0f} images/s")
    seconds, gflop = benchmark.time_iterations(
        d, FLAGS.method, FLAGS.learned_classes, FLAGS.iters, FLAGS.warmup, model,
        count_flops=FLAGS.flops, fused_iteration=FLAGS.fused_iteration,
        concat_critic=FLAGS.concat_critic, mixed_precision=FLAGS.mixed_precision,
        batch_critic_inputs=FLAGS.batch_critic_inputs)
    times = 1000 * seconds
    print(f"method={FLAGS.method} learned_classes={FLAGS.learned_classes} iters={FLAGS.iters} "
          f"fused={FLAGS.fused_iteration} concat_critic={FLAGS.concat_critic} "
          f"batch_critic_inputs={FLAGS.batch_critic_inputs} "
          f"mixed_precision={FLAGS.mixed_precision} kernels={FLAGS.kernels or 'default'}")
    print(f"median {np.median(times):.1f} ms, min {times.min():.1f} ms, max {times.max():.1f} ms")
    if gflop is not None:  # counted on the trainer that was timed
        print(f"gflop_per_iter={gflop:.3f} ({gflop / np.median(times) * 1000:.0f} GFLOP/s at the median)")
    print(f"ms_per_iter={np.median(times):.1f}")


if __name__ == "__main__":
    app.run(main)
