"""Reproduce the paper's Table 1: train every method, evaluate after tasks 5 and 10.

  # the release's schedule (10 tasks x 4001 iterations; JT 40,001 and 20,005), as a campaign
  python benchmarks/reproduce_table1.py --data_dir ../shared/data/mnist --tasks 10 --iters 4001 \
      --methods sft,ra,jtr,dgr,jt --mixed_precision bf16 --eval_every 200 \
      --checkpoint_every 500 --out_root ~/mergan_runs/table1_mnist --train_only
  python benchmarks/reproduce_table1.py ... --status     # finished / partial / time left
  python benchmarks/reproduce_table1.py ...              # evaluate and print the tables

Each run lives in <out_root>/<run> (JT: `jt` on all classes, `jt_5` on the first five). A
finished run is reused, a partial one resumed from its latest checkpoint; SFT, RA, JTR and
EWC share task 1 (no replay nor penalty yet, same seed): the others continue from the SFT
run's task-1 snapshot, waiting for it if needed. Several invocations with disjoint
--methods (or --runs, e.g. `jt_5` and `jt`) can train side by side. The evaluation
(release test mode after tasks 5 and 10) writes eval.json/eval.md into each run,
<out_root>/table1.md, and ends with
`RESULT after_<t>:method=acc,...` lines.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from mergan_tf import benchmark, configs, data, interrupts  # noqa: E402
from mergan_tf.evaluation import classifiers, table1  # noqa: E402
from mergan_tf.evaluation.monitor import forgetting_monitor  # noqa: E402

flags.DEFINE_string("dataset", "mnist", "Dataset preset.")
flags.DEFINE_string("data_dir", None, "IDX / .mat directory.")
flags.DEFINE_integer("tasks", 5, "Tasks (first N classes).")
flags.DEFINE_integer("iters", 500, "Iterations per task.")
flags.DEFINE_list("methods", ["sft", "ra", "jtr"], f"Methods among {configs.METHODS}.")
flags.DEFINE_string("out_root", None, "Runs directory (default runs/table1_<dataset>_t<tasks>_i<iters>).")
flags.DEFINE_list("runs", None, "Train only these of the planned runs (e.g. jt_5 in one process "
                  "and jt in another); --status and the evaluation still cover every run.")
flags.DEFINE_integer("batches", 100, "Evaluation batches of 64 per class (release 100).")
flags.DEFINE_integer("seed", 0, "Seed.")
flags.DEFINE_string("classifier_dir", None, "Evaluator (default checkpoints/classifiers/<dataset>).")
flags.DEFINE_enum("mixed_precision", "none", list(configs.PRECISIONS), "none: float32 (the "
                  "release); bf16: dense/convolution layers in bfloat16 (faster on AVX512-BF16 CPUs).")
flags.DEFINE_integer("eval_every", 0, "Forgetting curves: each learned class's accuracy every N "
                     "iterations during training (0: off).")
flags.DEFINE_integer("checkpoint_every", None, "Training-state checkpoint every N iterations "
                     "(release 4000; a campaign that may be stopped wants ~500).")
flags.DEFINE_float("ewc_lambda", None, "EWC's lambda (default: the configured default).")
flags.DEFINE_boolean("share_first_task", True, "SFT/RA/JTR/EWC continue from the SFT run's "
                     "task-1 snapshot instead of training task 1 each.")
flags.DEFINE_boolean("status", False, "Print which runs are finished or partial and the time "
                     "left, then exit.")
flags.DEFINE_boolean("train_only", False, "Train (or resume) the runs; do not evaluate.")
flags.DEFINE_string("results_dir", None, "After evaluating, copy each finished run's results "
                    "(eval.json/md, forgetting.csv, Figure 3, mosaic, last export; never "
                    "checkpoints) to <results_dir>/<run>/ and write <results_dir>/README.md.")
flags.DEFINE_integer("threads", 0, "TensorFlow intra- and inter-op threads (0: TF's default, "
                     "all cores); 1 for each of two campaign processes on a 2-core machine.")
FLAGS = flags.FLAGS


def planned_runs(out_root):
    output = {"eval_every": FLAGS.eval_every, "evaluator_dir": FLAGS.classifier_dir}
    if FLAGS.checkpoint_every:
        output["checkpoint_every"] = FLAGS.checkpoint_every
    runs = table1.planned_runs(FLAGS.dataset, FLAGS.methods, FLAGS.tasks, FLAGS.iters, out_root,
                               FLAGS.data_dir, FLAGS.seed, FLAGS.mixed_precision, **output)
    if FLAGS.ewc_lambda is not None:
        runs = {n: table1.with_method(c, ewc_lambda=FLAGS.ewc_lambda) if c.method.name == "ewc"
                else c for n, c in runs.items()}
    base = table1.method_config(FLAGS.dataset, "sft", FLAGS.tasks, FLAGS.iters, out_root,
                                FLAGS.data_dir, FLAGS.seed, FLAGS.mixed_precision, **output)
    return runs, (base.out_dir if FLAGS.share_first_task else None)


def main(argv):
    del argv
    benchmark.set_threads(FLAGS.threads)
    suffix = "" if FLAGS.mixed_precision == "none" else f"_{FLAGS.mixed_precision}"
    out_root = os.path.expanduser(
        FLAGS.out_root or f"runs/table1_{FLAGS.dataset}_t{FLAGS.tasks}_i{FLAGS.iters}{suffix}")
    try:
        runs, base_dir = planned_runs(out_root)
        to_train = table1.runs_to_train(runs, FLAGS.runs)
        if FLAGS.status:
            print(table1.status_table(runs))
            return
        start = time.time()
        d = data.load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir)
        for name, cfg in to_train.items():
            shared = cfg.method.name in table1.SHARE_FIRST_TASK and cfg.method.name != "sft"
            table1.train_run(cfg, d, forgetting_monitor(cfg), base_dir if shared else None,
                             log=logging.info)
    except (configs.ConfigError, table1.CampaignError, classifiers.EvaluatorError) as e:
        raise app.UsageError(str(e))
    except interrupts.TrainingInterrupted as e:  # a clean stop: the next invocation resumes
        print(f"interrupted: {e}; run the same command again to resume the campaign",
              file=sys.stderr)
        sys.exit(e.exit_code)
    if FLAGS.train_only:
        print(table1.status_table(runs))
        return
    results = table1.evaluate_campaign(runs, FLAGS.tasks, FLAGS.batches, FLAGS.seed,
                                       FLAGS.classifier_dir)
    text = table1.campaign_tables(results, FLAGS.dataset, FLAGS.tasks, FLAGS.iters,
                                  FLAGS.mixed_precision)
    text += f"\n\nWall time of this invocation {time.time() - start:.0f} s; data: {d.source}.\n"
    os.makedirs(out_root, exist_ok=True)
    with open(os.path.join(out_root, "table1.md"), "w") as f:
        f.write(text)
    print(text)
    if FLAGS.results_dir:
        collect(runs, results, text)
    for column, by_method in results.items():
        print(f"RESULT after_{column}:" + table1.result_line(by_method)[len("RESULT "):])


def collect(runs, results, text):
    """Results of the finished runs into --results_dir, with its README."""
    import subprocess  # noqa: PLC0415
    from mergan_tf.evaluation import plots  # noqa: PLC0415
    root = os.path.expanduser(FLAGS.results_dir)
    finished = {n: c for n, c in runs.items() if table1.run_state(c).kind == "finished"}
    for name, cfg in finished.items():
        for path in table1.collect_run(cfg, os.path.join(root, name)):
            logging.info("written: %s", path)
    curves = [c.out_dir for c in finished.values()
              if os.path.exists(os.path.join(c.out_dir, "forgetting.csv"))]
    if curves:
        print(f"written: {plots.plot_forgetting(curves, os.path.join(root, 'forgetting.png'))}")
    commit = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse",
                             "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    args = " ".join(sys.argv[1:])
    commands = [f"python benchmarks/reproduce_table1.py {args} --train_only  # train / resume",
                f"python benchmarks/reproduce_table1.py {args}  # evaluate and collect"]
    notes_path = os.path.join(root, "NOTES.md")  # kept by hand: what the runs cannot record
    notes = ""
    if os.path.exists(notes_path):
        with open(notes_path) as f:
            notes = f.read()
    readme = table1.results_readme(results, finished, FLAGS.dataset, FLAGS.tasks, FLAGS.iters,
                                   FLAGS.mixed_precision, commit or "unknown", commands, notes)
    for name, content in (("README.md", readme), ("table1.md", text)):
        with open(os.path.join(root, name), "w") as f:
            f.write(content)
        print(f"written: {os.path.join(root, name)}")


if __name__ == "__main__":
    app.run(main)
