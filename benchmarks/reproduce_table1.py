"""Reproduce the paper's Table 1 at a CPU-sized budget.

  python benchmarks/reproduce_table1.py --dataset mnist --data_dir ../shared/data/mnist \
      --tasks 5 --iters 500 --methods sft,ra,jtr

Trains each method into <out_root>/<method> (a finished run with the same settings is
reused), evaluates the snapshot after the last task with the release's protocol, prints a
Markdown table beside the paper's numbers (also written to <out_root>/table1.md), and ends
with `RESULT method=acc,...`.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from mergan_tf import configs, data  # noqa: E402
from mergan_tf.evaluation import table1  # noqa: E402

flags.DEFINE_string("dataset", "mnist", "Dataset preset.")
flags.DEFINE_string("data_dir", None, "IDX / .mat directory.")
flags.DEFINE_integer("tasks", 5, "Tasks (first N classes).")
flags.DEFINE_integer("iters", 500, "Iterations per task.")
flags.DEFINE_list("methods", ["sft", "ra", "jtr"], f"Methods among {configs.METHODS}.")
flags.DEFINE_string("out_root", None, "Runs directory (default runs/table1_<dataset>_t<tasks>_i<iters>).")
flags.DEFINE_integer("batches", 100, "Evaluation batches of 64 per class (release 100).")
flags.DEFINE_integer("seed", 0, "Seed.")
flags.DEFINE_string("classifier_dir", None, "Evaluator (default checkpoints/classifiers/<dataset>).")
flags.DEFINE_enum("mixed_precision", "none", list(configs.PRECISIONS), "none: float32 (the "
                  "release); bf16: dense/convolution layers in bfloat16 (faster on AVX512-BF16 CPUs).")
flags.DEFINE_integer("eval_every", 0, "Forgetting curves: each learned class's accuracy every N "
                     "iterations during training (0: off).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    bad = [m for m in FLAGS.methods if m not in configs.METHODS]
    if bad:
        raise app.UsageError(f"unknown method(s) {bad}; choose among {configs.METHODS}")
    suffix = "" if FLAGS.mixed_precision == "none" else f"_{FLAGS.mixed_precision}"
    out_root = FLAGS.out_root or f"runs/table1_{FLAGS.dataset}_t{FLAGS.tasks}_i{FLAGS.iters}{suffix}"
    start = time.time()
    d = data.load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir)
    results = table1.reproduce(FLAGS.dataset, FLAGS.methods, FLAGS.tasks, FLAGS.iters, out_root, d,
                               FLAGS.data_dir, FLAGS.batches, FLAGS.seed, FLAGS.classifier_dir,
                               mixed_precision=FLAGS.mixed_precision, eval_every=FLAGS.eval_every,
                               evaluator_dir=FLAGS.classifier_dir)
    table = table1.markdown_table(results, FLAGS.dataset, FLAGS.tasks, FLAGS.iters,
                                  FLAGS.mixed_precision)
    table += f"\n\nWall time {time.time() - start:.0f} s; data: {d.source}.\n"
    os.makedirs(out_root, exist_ok=True)
    with open(os.path.join(out_root, "table1.md"), "w") as f:
        f.write(table)
    print(table)
    print(table1.result_line(results))


if __name__ == "__main__":
    app.run(main)
