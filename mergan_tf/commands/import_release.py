"""Import checkpoints of the original TF1 release as a run directory of this project.

  mergan-import-release --checkpoint result/mnist_RA/model/WGAN_GP.model9-4000 \
      --dataset mnist --method ra --out_dir runs/release_mnist_ra
  mergan-import-release --checkpoint M/WGAN_GP.model4-4000,M/WGAN_GP.model9-4000 \
      --dataset mnist --method jtr --out_dir runs/release_mnist_jtr

(also `python -m mergan_tf import-release ...` and `python scripts/import_release.py ...`)
Then mergan-evaluate, mergan-export, mergan-sample and mergan-figures work on --out_dir.
See docs/release.md; the logic is `mergan_tf.release_import`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from mergan_tf import configs, release, release_import, runlock, snapshots  # noqa: E402
from mergan_tf.commands import run_main  # noqa: E402

flags.DEFINE_list("checkpoint", None, "Release checkpoint prefix(es), e.g. "
                  "result/mnist_RA/model/WGAN_GP.model9-4000 (the .index file without "
                  "'.index'); comma-separated for several tasks of one run.")
flags.DEFINE_enum("dataset", None, sorted(release.RELEASE_MODELS), "The release's dataset "
                  "(gan32 for mnist/svhn, gan64 for lsun).")
flags.DEFINE_string("out_dir", None, "Run directory to write (new or empty).")
flags.DEFINE_integer("task", None, "Snapshot number (1-based) of a single checkpoint; "
                     "default: from its file name.")
flags.DEFINE_enum("method", None, list(release_import.SEQUENTIAL_METHODS) + ["jt"], "The "
                  "method that trained it (the release does not record it): sft (no flag), ra "
                  "(--RA), jtr (--JTR), jt (joint.py; default for its checkpoints).")
flags.DEFINE_string("data_dir", None, "The dataset's files, recorded in config.json for "
                    "reverse accuracy, FID and continued training.")
flags.DEFINE_integer("seed", 0, "Seed of the fixed noise and of the run's config.")
flags.DEFINE_boolean("export", True, "Export every imported snapshot as a SavedModel sampler.")
flags.DEFINE_boolean("overwrite", False, "Replace an earlier import in --out_dir.")
for _name in ("checkpoint", "dataset", "out_dir"):
    flags.mark_flag_as_required(_name)
FLAGS = flags.FLAGS
# --help lists the flags in these groups.
HELP_GROUPS = (
    ("inputs", ("checkpoint", "dataset", "task", "method", "data_dir", "seed")),
    ("outputs", ("out_dir", "export", "overwrite")),
    ("run control", ("debug",)),
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = FLAGS
    try:
        manifest = release_import.import_release(f.checkpoint, f.dataset, f.out_dir, f.task,
                                                 f.method, f.overwrite, f.export, f.seed,
                                                 f.data_dir)
    except (release.ReleaseCheckpointError, release_import.ReleaseImportError,
            snapshots.SnapshotError, configs.ConfigError, runlock.RunLockedError) as e:
        raise app.UsageError(str(e))
    for entry in manifest["checkpoints"]:
        print(f"imported {entry['prefix']} as task {entry['task']} ({entry['how']})")
        if entry["not_imported"]:
            print(f"  not imported (unknown to the release's model): {entry['not_imported']}")
    if not manifest["method_given"]:
        print("method: the release does not record it; labelled sft (pass --method ra|jtr)")
    print(f"written: {f.out_dir} (config.json, snapshots/, samples/, "
          f"{'export/, ' if f.export else ''}{release_import.IMPORT_JSON})")


def run():
    """Entry point of `mergan-import-release`."""
    run_main(main, __doc__, [__name__], groups=HELP_GROUPS)


if __name__ == "__main__":
    run()
