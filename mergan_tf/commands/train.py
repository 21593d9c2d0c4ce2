"""Train MeRGAN over a sequence of one-class tasks (the release's `mergan.py`).

  mergan-train --dataset mnist --method ra
  mergan-train --dataset mnist --data_dir DIR --method jtr --tasks 2 --iters 200
  TF_CONFIG=... mergan-train --strategy multi_worker ...  (on every host)
  mergan-train --dataset lsun --data_dir LSUN_DIR --method ra
  mergan-train --out_dir RUN --resume        (after a stop or a crash)

(also `python -m mergan_tf train ...` and `python scripts/run_sequential.py ...`)

SIGTERM or SIGINT (Ctrl-C) stop a run after the current iteration with a checkpoint, and
the process exits with status 128 + the signal (143 for SIGTERM, 130 for SIGINT); a second
signal stops at once. Errors print one line (exit status 1); --debug shows the traceback.
"""

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from mergan_tf import cli, configs, data, distribute, runlock, trainer  # noqa: E402
from mergan_tf.commands import run_main  # noqa: E402
from mergan_tf.run_dir import prepare_run_dir  # noqa: E402
from mergan_tf.evaluation import classifiers  # noqa: E402
from mergan_tf.evaluation.monitor import forgetting_monitor  # noqa: E402

cli.define_flags()
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    resuming = FLAGS.resume or FLAGS.start_from_task is not None
    try:
        cfg = cli.resume_config(FLAGS) if resuming else cli.config_from_flags(FLAGS)
    except configs.ConfigError as e:
        raise app.UsageError(str(e))
    if FLAGS.dry_run:
        print(cfg.to_json())
        return
    try:  # first: a multi-worker strategy must exist before any other TensorFlow work
        strategy = distribute.get_strategy(cfg.train.strategy)
        distribute.replica_batch_size(cfg.train.batch_size, strategy)  # splits equally?
    except configs.ConfigError as e:
        raise app.UsageError(str(e))
    if resuming and not distribute.is_chief(strategy):
        raise app.UsageError("--resume/--start_from_task with --strategy multi_worker is not "
                             "supported: only the chief keeps the run's state")
    cfg = distribute.for_this_worker(cfg, strategy)  # other workers: a temporary --out_dir
    try:  # before any output: --eval_every without a usable evaluator fails here
        monitor = forgetting_monitor(cfg)
    except classifiers.EvaluatorError as e:
        raise app.UsageError(f"--eval_every needs an evaluator: {e}")
    try:  # before prepare_run_dir: a run that cannot start must not empty --out_dir
        dataset = data.load_for_config(cfg)
        data.check_task_classes(dataset, cfg.classes)
    except data.DataError as e:
        raise app.UsageError(str(e))
    if not resuming:
        try:
            prepare_run_dir(cfg, overwrite=FLAGS.overwrite)
        except (FileExistsError, PermissionError, runlock.RunLockedError) as e:
            raise app.UsageError(str(e))
    logging.info("data source: %s", dataset.source)
    cfg = cfg.replace(data=dataclasses.replace(cfg.data, resolved_source=dataset.source))
    trainer.Trainer(cfg, dataset, monitor=monitor).train(resume=FLAGS.resume,
                                                         start_from_task=FLAGS.start_from_task)
    logging.info("done: %s", cfg.out_dir)


def run():
    """Entry point of `mergan-train`."""
    logging.set_verbosity(logging.INFO)
    usage = __doc__ + "\nFlags (the defaults are each preset's, --dataset):" + cli.grouped_help()
    run_main(main, usage, [])  # (the usage lists the flags)


if __name__ == "__main__":
    run()
