"""Milliseconds per outer iteration of the real trainer (1 generator + 5 critic updates).

  python benchmarks/throughput.py --dataset mnist --data_dir ../shared/data/mnist \
      --method ra --learned_classes 9 --iters 30
  python benchmarks/throughput.py --dataset lsun --data_dir LSUN_DIR --iters 3 --warmup 1

The last line is exactly `ms_per_iter=<median>`.
"""

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from mergan_tf import benchmark, configs, data  # noqa: E402

flags.DEFINE_string("dataset", "mnist", "Dataset preset.")
flags.DEFINE_string("data_dir", None, "IDX / .mat directory, LSUN folders (default: auto source).")
flags.DEFINE_integer("max_images_per_class", 1000, "LSUN: images loaded per category.")
flags.DEFINE_integer("model_dim", None, "Model width DIM (default: the preset's).")
flags.DEFINE_enum("kernels", None, list(configs.KERNELS), "dcgan32's stride-2 convolutions "
                  "(default: the config's, fast).")
flags.DEFINE_enum("method", "sft", list(configs.METHODS), "Method to time.")
flags.DEFINE_integer("learned_classes", 0, "Classes already learned (replayed).")
flags.DEFINE_integer("iters", 30, "Timed outer iterations.")
flags.DEFINE_integer("warmup", 5, "Untimed outer iterations first (tracing).")
flags.DEFINE_boolean("fused_iteration", True, "One tf.function per outer iteration.")
flags.DEFINE_boolean("concat_critic", True, "One critic call on [real; fake].")
flags.DEFINE_boolean("batch_critic_inputs", True, "One generator call for the fakes (and "
                     "replays) of all the critic updates of an outer iteration.")
flags.DEFINE_enum("mixed_precision", "none", list(configs.PRECISIONS),
                  "bf16: dense and convolution layers in bfloat16 (see --mixed_precision of "
                  "run_sequential.py).")
flags.DEFINE_boolean("flops", True, "Also count the floating-point operations of one outer "
                     "iteration (tf.profiler over the traced graph) and print the rate reached.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    cfg = configs.preset_config(FLAGS.dataset)
    cfg = cfg.replace(data=dataclasses.replace(
        cfg.data, data_dir=FLAGS.data_dir,
        max_images_per_class=FLAGS.max_images_per_class if cfg.data.categories else None))
    d = data.load_for_config(cfg, verbose=False)
    model = {"dim": FLAGS.model_dim} if FLAGS.model_dim else {}
    if FLAGS.kernels:
        model["kernels"] = FLAGS.kernels
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
