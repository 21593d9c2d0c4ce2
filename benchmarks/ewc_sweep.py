"""EWC's lambda for this Fisher: a sweep at a short schedule, beside SFT.

  python benchmarks/ewc_sweep.py --data_dir ../shared/data/mnist --tasks 3 --iters 1000 \
      --mixed_precision bf16 --out_root ~/mergan_runs/ewc_sweep

The paper's lambda (1e9) belongs to a Fisher whose scale the paper does not give. This
trains SFT over the first --tasks classes and, continuing from its task-1 snapshot (task 1
is the same training for both), EWC once per --lambdas value; it then evaluates every run
after its last task with the release's test mode and prints, per lambda, the mean and
per-class accuracy, the accuracy on the last class (learning) and the mean over the
earlier ones (remembering). Runs are reused or resumed like reproduce_table1.py's, so
several invocations with disjoint --lambdas can train side by side. Ends with
`RESULT best_lambda=<value> mean=<acc>`.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from mergan_tf import benchmark, configs, data, interrupts  # noqa: E402
from mergan_tf.evaluation import table1  # noqa: E402

flags.DEFINE_string("dataset", "mnist", "Dataset preset.")
flags.DEFINE_string("data_dir", None, "IDX / .mat directory.")
flags.DEFINE_integer("tasks", 3, "Tasks (first N classes).")
flags.DEFINE_integer("iters", 1000, "Iterations per task.")
flags.DEFINE_list("lambdas", [f"1e{k}" for k in range(2, 10)], "EWC lambdas to try.")
flags.DEFINE_string("out_root", "runs/ewc_sweep", "Runs directory.")
flags.DEFINE_integer("batches", 100, "Evaluation batches of 64 per class (release 100).")
flags.DEFINE_integer("seed", 0, "Seed.")
flags.DEFINE_string("classifier_dir", None, "Evaluator (default checkpoints/classifiers/<dataset>).")
flags.DEFINE_enum("mixed_precision", "none", list(configs.PRECISIONS), "none: float32; bf16.")
flags.DEFINE_integer("checkpoint_every", 500, "Training-state checkpoint every N iterations.")
flags.DEFINE_boolean("train_only", False, "Train (or resume) the runs; do not evaluate.")
flags.DEFINE_integer("threads", 0, "TensorFlow intra- and inter-op threads (0: TF's default, "
                     "all cores); 1 for each of two campaign processes on a 2-core machine.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    benchmark.set_threads(FLAGS.threads)
    try:
        lambdas = [float(v) for v in FLAGS.lambdas]
        runs = table1.ewc_sweep_runs(FLAGS.dataset, FLAGS.tasks, FLAGS.iters,
                                     os.path.expanduser(FLAGS.out_root), FLAGS.data_dir, lambdas,
                                     FLAGS.seed, FLAGS.mixed_precision,
                                     checkpoint_every=FLAGS.checkpoint_every)
        d = data.load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir)
        for name, cfg in runs.items():
            table1.train_run(cfg, d, base_dir=None if name == "sft" else runs["sft"].out_dir,
                             log=logging.info)
    except (ValueError, table1.CampaignError) as e:
        raise app.UsageError(str(e))
    except interrupts.TrainingInterrupted as e:  # a clean stop: the next invocation resumes
        print(f"interrupted: {e}; run the same command again to resume the sweep", file=sys.stderr)
        sys.exit(e.exit_code)
    if FLAGS.train_only:
        return
    results = {name: table1.evaluate(cfg, [FLAGS.tasks], FLAGS.batches, FLAGS.seed,
                                     FLAGS.classifier_dir)[FLAGS.tasks]
               for name, cfg in runs.items() if table1.run_state(cfg).kind == "finished"}
    print(table1.sweep_table(results, runs, FLAGS.tasks, FLAGS.iters))
    best = max((n for n in results if n != "sft"), key=lambda n: results[n]["mean"], default=None)
    if best is not None:
        print(f"RESULT best_lambda={runs[best].method.ewc_lambda:.0e} mean={results[best]['mean']:.2f}")


if __name__ == "__main__":
    app.run(main)
