"""Where the real trainer's outer iteration spends its time: a tf.profiler trace by op type.

  python benchmarks/profile_step.py --mixed_precision bf16 [--method ra --learned_classes 9]

Runs warm-up iterations (tracing), then `--iters` profiled outer iterations (generator
update and critic updates, as in training), and prints per op type: milliseconds per
iteration summed over its ops, the share of all op time, its ops' GFLOP and GFLOP/s where
TensorFlow counts FLOPs under the op's name (Grappler's fused ops, e.g. a convolution fused
with its bias and activation, carry another node's name and show none), then the `--top`
slowest single ops. Op time is summed over both cores: with two ops in flight it exceeds
the wall time, whose figure (`wall_ms_per_iter=`) ends the output, with a matmul reading of
the same run. Pause training runs that share the machine while it runs.
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from mergan_tf import benchmark  # noqa: E402

benchmark.define_trainer_flags()
flags.DEFINE_integer("iters", 10, "Profiled outer iterations.")
flags.DEFINE_integer("warmup", 5, "Outer iterations first, not profiled (tracing).")
flags.DEFINE_integer("top", 20, "Single ops listed, the slowest first.")
FLAGS = flags.FLAGS


def format_profile(profile: benchmark.OpProfile, top: int) -> str:
    """The by-type table and the `top` slowest ops of a profile, as text."""
    total = sum(profile.op_ms.values())
    lines = [f"op time {total:.1f} ms per outer iteration (both cores), "
             f"wall {profile.wall_ms:.1f} ms",
             "| op type | ms per iteration | share | ops | GFLOP | GFLOP/s |", "|---|---|---|---|---|---|"]
    for op_type, ms, gflop, count in profile.by_type():
        counted = f"{gflop:.2f} | {gflop / ms * 1000:.0f}" if gflop and ms else "- | -"
        lines.append(f"| {op_type} | {ms:.1f} | {100 * ms / total:.1f}% | {count} | {counted} |")
    lines.append(f"slowest {top} ops (ms per iteration, GFLOP):")
    for name, ms in sorted(profile.op_ms.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {ms:7.2f}  {profile.op_gflop.get(name, 0.0):6.3f}  {name}")
    return "\n".join(lines)


def main(argv):
    del argv
    d, model = benchmark.trainer_inputs(FLAGS)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer, task = benchmark.trainer_at_task(d, FLAGS.method, FLAGS.learned_classes, run_dir,
                                                  model, mixed_precision=FLAGS.mixed_precision)
        benchmark.run_iterations(trainer, task, FLAGS.warmup)  # tracing, not profiled
        profile = benchmark.profile_iterations(trainer, task, FLAGS.iters)
        trainer.log.close()
    print(f"data: {d.source}; method={FLAGS.method} learned_classes={FLAGS.learned_classes} "
          f"mixed_precision={FLAGS.mixed_precision} kernels={FLAGS.kernels or 'default'}")
    print(format_profile(profile, FLAGS.top))
    print(f"matmul reading: float32 {benchmark.matmul_gflops(tf.float32):.0f}, "
          f"bf16 {benchmark.matmul_gflops(tf.bfloat16):.0f} GFLOP/s")
    print(f"wall_ms_per_iter={profile.wall_ms:.1f}")


if __name__ == "__main__":
    app.run(main)
