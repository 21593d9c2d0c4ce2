"""SavedModel samplers: a task snapshot's generator as a self-contained `tf.saved_model`.

`export_snapshot(run_dir, task)` writes `<run>/export/task_NN/` (a SavedModel plus
`export.json`); loading it needs TensorFlow only, no `mergan_tf`:

    sampler = tf.saved_model.load("runs/mnist_ra/export/task_10")
    images = sampler.sample_class(64, 3, 1)        # uint8 [64, 32, 32, 1], seed 1
    meta = json.loads(sampler.metadata_json.numpy())

Batch statistics: the generator's conditional batch norm always normalises with the
statistics of the batch it is given, as the release does, so an image depends on the
other images of its call. `sample(z, labels)` treats the whole request as ONE batch;
`sample_per_class(z, labels)` normalises each class of the request as its own batch, as
the release and the trainer's grids do (one class per batch), and returns the images in
the request's order. `sample_mixed(z, labels)` completes the request with images of the
other learned classes so that the batch holds every learned class in equal counts, the
regime joint training (JT) trains in. `sample_class(n, label, seed)` samples in the regime
the run trained in (`batch_regime` in `export.json`; see `mergan_tf.sampling`).

Serving: the `serving_default` signature (inputs `z`, `labels`; output `images`) samples in
the run's regime and refuses labels the snapshot has not learned, naming the learned
classes; `sample_any_label` is the same for any label slot, for sampling an unlearned slot
deliberately. Both take one dict `{"z", "labels"}` when called as attributes, so
`saved_model_cli run`, TF Serving and `keras.layers.TFSMLayer` can call them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
from typing import Any, Iterator

import tensorflow as tf
from absl import logging as absl_logging

from mergan_tf import data as data_lib
from mergan_tf import sampling, snapshots
from mergan_tf.configs import RunConfig
from mergan_tf.run_dir import CONFIG, EXPORT, SNAPSHOTS, task_dir

EXPORT_FORMAT = "mergan_tf.sampler/1"
EXPORT_JSON = "export.json"
BATCH_STATISTICS_NOTE = (
    "The generator's conditional batch norm always uses the statistics of the batch it is "
    "given (as the release does), so an image depends on the other images generated in "
    "the same call. sample(z, labels) normalises the whole request as one batch; "
    "sample_per_class(z, labels) normalises each class as its own batch, as the release "
    "and the training grids of the sequential methods do; sample_mixed(z, labels) adds "
    "images of the other learned classes so that the batch holds every learned class in "
    "equal counts, as joint training (JT) trains; sample_class(n, label, seed) uses the "
    "run's own regime (batch_regime). The release trains on batches of 64 and draws its "
    "grids as batches of 100; much smaller batches (a few images) get noisier statistics "
    "and differ visibly from those images.")
FUNCTIONS = {
    "sample(z float32[N,z_dim], labels int32[N])": "uint8 [N,H,W,C]; the request is one batch",
    "sample_per_class(z float32[N,z_dim], labels int32[N])":
        "uint8 [N,H,W,C]; each class its own batch, in the request's order",
    "sample_mixed(z float32[N,z_dim], labels int32[N])":
        "uint8 [N,H,W,C]; one batch completed to equal counts of every learned class",
    "sample_class(n int32, label int32, seed int64)":
        "uint8 [n,H,W,C]; z = noise(n, seed), in the run's batch regime (batch_regime: "
        "class = one batch of that class, mixed = sample_mixed)",
    "noise(n int32, seed int64)": "float32 [n,z_dim]; stateless N(0, I) from the seed",
    "serving_default({z float32[N,z_dim], labels int32[N]})":
        "{images: uint8 [N,H,W,C]} in the run's batch regime (class: each class its own "
        "batch; mixed: sample_mixed); labels the snapshot has not learned are refused; also "
        "the SavedModel's serving_default signature",
    "sample_any_label({z float32[N,z_dim], labels int32[N]})":
        "serving_default for any label slot, learned or not; also a signature",
}
# SavedModel signatures (saved_model_cli, TF Serving, keras.layers.TFSMLayer).
SERVING_SIGNATURE = "serving_default"
ANY_LABEL_SIGNATURE = "sample_any_label"

# What tf.saved_model.save and export_snapshot write into an export directory.
EXPORT_ENTRIES = ("saved_model.pb", "fingerprint.pb", "variables", "assets", EXPORT_JSON)


class ExportError(ValueError):
    """The export's destination cannot be used (a file, a run, or not empty without
    overwrite)."""


def uint8_images(images: tf.Tensor) -> tf.Tensor:
    """[-1, 1] floats to uint8 as the release writes samples: round((x + 1) * 127.5)."""
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


class SamplerModule(tf.Module):
    """A generator with `tf.function` samplers that have fixed input signatures.

    Args:
      generator: a built generator of `mergan_tf.models` (dcgan32 or resnet64; weights
        restored).
      metadata: JSON-serialisable description, stored as the string variable
        `metadata_json` (readable after `tf.saved_model.load`); its `learned_classes` are
        the classes `sample_mixed` completes a request with, and its `batch_regime`
        ("class" by default) the regime of `sample_class`.
    """

    def __init__(self, generator, metadata: dict[str, Any], name: str = "mergan_sampler"):
        super().__init__(name=name)
        # The Keras model itself is not tracked: Keras 3 would add a one-input
        # `serving_default` to it on save, which the two-input generator cannot trace. Its
        # variables are tracked instead, and the functions below capture them: the
        # tf.Variables inside the Keras variables, which TF1-style loaders
        # (`saved_model_cli run`, TF Serving) can restore; they cannot restore a Keras
        # variable wrapper ("Could not find variable generator/bias").
        self._generate = generator.__call__
        self.generator_variables = [_tf_variable(v) for v in generator.variables]
        self._z_dim = int(generator.z_dim)
        self._num_label_slots = int(generator.num_classes)
        self._image_shape = [int(generator.image_size), int(generator.image_size),
                             int(generator.channels)]
        self.metadata_json = tf.Variable(json.dumps(metadata, sort_keys=True), trainable=False,
                                         dtype=tf.string, name="metadata_json")
        self._learned = tf.constant(metadata.get("learned_classes", []), tf.int32)
        # serving_default's classes: the learned ones, or every slot when none are named.
        servable = sorted(metadata.get("learned_classes") or range(self._num_label_slots))
        self._servable = tf.constant(servable, tf.int32)
        self._unlearned_message = unlearned_message(servable, metadata.get("task"))
        self._regime = sampling.check_regime(metadata.get("batch_regime", sampling.CLASS))
        z = tf.TensorSpec([None, self._z_dim], tf.float32, name="z")
        labels = tf.TensorSpec([None], tf.int32, name="labels")
        n = tf.TensorSpec([], tf.int32, name="n")
        seed = tf.TensorSpec([], tf.int64, name="seed")
        label = tf.TensorSpec([], tf.int32, name="label")
        self.sample = tf.function(self._sample, input_signature=[z, labels])
        self.sample_per_class = tf.function(self._sample_per_class, input_signature=[z, labels])
        self.sample_mixed = tf.function(self._sample_mixed, input_signature=[z, labels])
        self.noise = tf.function(self._noise, input_signature=[n, seed])
        self.sample_class = tf.function(self._sample_class, input_signature=[n, label, seed])
        request = {"z": z, "labels": labels}  # one dict argument: what TFSMLayer passes
        self.serving_default = tf.function(self._serve, input_signature=[request])
        self.sample_any_label = tf.function(self._serve_any_label, input_signature=[request])

    def signature_functions(self) -> dict[str, Any]:
        """The SavedModel signatures: `serving_default` and `sample_any_label`."""
        return {SERVING_SIGNATURE: self.serving_default,
                ANY_LABEL_SIGNATURE: self.sample_any_label}

    def _checked(self, z: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(z, labels) after the checks the input signature cannot express."""
        slots = self._num_label_slots
        checks = [
            tf.debugging.assert_equal(
                tf.shape(z)[0], tf.shape(labels)[0],
                message="z and labels must have the same number of rows (one label per z)"),
            tf.debugging.assert_non_negative(labels, message=f"labels must be in [0, {slots})"),
            tf.debugging.assert_less(labels, slots, message=f"labels must be in [0, {slots})"),
        ]
        with tf.control_dependencies(checks):  # so they fail before the generator does
            return tf.identity(z), tf.identity(labels)

    def _sample(self, z: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """uint8 images of (z, labels), the whole request normalised as one batch."""
        z, labels = self._checked(z, labels)
        return uint8_images(self._generate(z, labels))

    def _sample_per_class(self, z: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """uint8 images of (z, labels), each class normalised as its own batch.

        A `tf.while_loop` over the request's distinct labels: each class's rows are
        gathered (in request order), generated in one call and scattered back, so the
        result equals one generator call per class, whatever labels the request holds.
        """
        z, labels = self._checked(z, labels)
        classes, _ = tf.unique(labels)
        out = tf.zeros(tf.concat([tf.shape(labels), self._image_shape], axis=0))

        def body(i, out):
            rows = tf.where(tf.equal(labels, classes[i]))
            images = self._generate(tf.gather_nd(z, rows), tf.gather_nd(labels, rows))
            return i + 1, tf.tensor_scatter_nd_update(out, rows, images)

        _, out = tf.while_loop(lambda i, _: i < tf.size(classes), body, [tf.constant(0), out])
        return uint8_images(out)

    def _sample_mixed(self, z: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """uint8 images of (z, labels), normalised as one batch that also holds images of
        the other learned classes, so that every learned class has as many images as the
        request's most frequent one (JT's training regime). The extra images come from a
        fixed stateless noise stream, so the result is a pure function of the request."""
        z, labels = self._checked(z, labels)
        counts = tf.gather(tf.math.bincount(labels, minlength=self._num_label_slots,
                                            maxlength=self._num_label_slots), self._learned)
        extra = tf.repeat(self._learned, tf.reduce_max(tf.concat([counts, [0]], 0)) - counts)
        extra_z = tf.random.stateless_normal(tf.stack([tf.size(extra), self._z_dim]),
                                             seed=tf.constant([0, 1], tf.int64))
        images = self._generate(tf.concat([z, extra_z], 0), tf.concat([labels, extra], 0))
        return uint8_images(images[:tf.shape(labels)[0]])

    def _as_trained(self, z: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """uint8 images of (z, labels) in the run's batch regime: each class its own batch,
        or (mixed) one batch completed to equal counts of every learned class."""
        fn = self._sample_mixed if self._regime == sampling.MIXED else self._sample_per_class
        return fn(z, labels)

    def _learned_only(self, labels: tf.Tensor) -> tf.Tensor:
        """`labels` once each is known to be a class the snapshot has learned."""
        known = tf.reduce_any(tf.equal(labels[:, None], self._servable[None, :]), axis=1)
        unlearned, _ = tf.unique(tf.boolean_mask(labels, tf.logical_not(known)))
        check = tf.debugging.Assert(tf.reduce_all(known), [self._unlearned_message, unlearned],
                                    summarize=self._num_label_slots)
        with tf.control_dependencies([check]):
            return tf.identity(labels)

    def _serve(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """{"images": uint8} of {"z", "labels"} in the run's regime, learned classes only."""
        labels = self._learned_only(inputs["labels"])
        return {"images": self._as_trained(inputs["z"], labels)}

    def _serve_any_label(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """`serving_default` without the learned-class check (any slot in [0, slots))."""
        return {"images": self._as_trained(inputs["z"], inputs["labels"])}

    def _noise(self, n: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """float32 [n, z_dim] from N(0, I), a pure function of (n, seed)."""
        n = _checked_count(n)
        return tf.random.stateless_normal(tf.stack([n, self._z_dim]),
                                          seed=tf.stack([seed, tf.constant(0, tf.int64)]))

    def _sample_class(self, n: tf.Tensor, label: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """n uint8 images of one class from `noise(n, seed)`, in the run's batch regime:
        one batch of that class, or (mixed) that batch completed by `sample_mixed`."""
        n = _checked_count(n)
        fn = self._sample_mixed if self._regime == sampling.MIXED else self._sample
        return fn(self._noise(n, seed), tf.fill(tf.reshape(n, [1]), label))


def _tf_variable(variable):
    """The `tf.Variable` holding a Keras 3 variable's value (itself if it is one)."""
    value = getattr(variable, "value", variable)
    return value if isinstance(value, tf.Variable) else variable


def unlearned_message(learned: list[int], task: int | None = None) -> str:
    """The refusal of `serving_default` for labels outside `learned` (the requested
    unlearned labels follow it in the error)."""
    after = f" after task {task}" if task is not None else ""
    return (f"labels must be classes this snapshot has learned{after}: "
            f"{[int(c) for c in learned]}; to sample another label slot deliberately, call "
            f"{ANY_LABEL_SIGNATURE}. Unlearned labels requested:")


def _checked_count(n: tf.Tensor) -> tf.Tensor:
    """`n` once it is known to be >= 0 (before any op that would fail less clearly)."""
    with tf.control_dependencies([tf.debugging.assert_non_negative(n, message="n must be >= 0")]):
        return tf.identity(n)


def export_dir(run_dir: str, task: int) -> str:
    """Default export directory of the snapshot after `task` tasks."""
    return task_dir(run_dir, EXPORT, task)


def class_names(dataset: str, num_label_slots: int, categories=()) -> list[str]:
    """Names of the label slots: the run's categories (LSUN: label t is task t's category),
    else the dataset's names, else the digits 0..num_slots-1."""
    names = list(categories) or list(data_lib.class_names(dataset))
    return names + [str(i) for i in range(len(names), num_label_slots)]


def export_metadata(cfg: RunConfig, info: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """What a user of an exported sampler needs to know, as one JSON-able dict."""
    m = cfg.model
    return {
        "format": EXPORT_FORMAT,
        "dataset": cfg.data.dataset,
        "class_names": class_names(cfg.data.dataset, m.num_label_slots, cfg.data.categories),
        "model_arch": m.arch,
        "task_order": list(cfg.classes),
        "learned_classes": list(info["classes"]),
        "method": info.get("method", cfg.method.name),
        "batch_regime": sampling.regime_of(info.get("method", cfg.method.name)),
        "task": int(info["task"]),
        "num_tasks": len(cfg.classes),
        "iteration": info.get("iteration"),
        "global_step": info.get("global_step"),
        "z_dim": m.z_dim,
        "image_shape": [m.image_size, m.image_size, m.channels],
        "num_label_slots": m.num_label_slots,
        "pixel_values": "uint8 = round((x + 1) * 127.5) of the generator's tanh output x",
        "batch_statistics": BATCH_STATISTICS_NOTE,
        "functions": FUNCTIONS,
        "source_run_dir": os.path.abspath(run_dir),
        "run_config": cfg.to_dict(),
    }


@contextlib.contextmanager
def _python_random_preserved() -> Iterator[None]:
    """Keras draws initializer seeds from Python's `random`; building the export's model
    must not shift the random stream of a training run that calls the export."""
    state = random.getstate()
    try:
        yield
    finally:
        random.setstate(state)


def build_sampler(run_dir: str, task: int) -> SamplerModule:
    """A SamplerModule of the snapshot after `task` tasks, with its metadata."""
    cfg = snapshots.load_run_config(run_dir)
    with _python_random_preserved():
        generator, info = snapshots.load_generator(run_dir, task)
    return SamplerModule(generator, export_metadata(cfg, info, run_dir))


@contextlib.contextmanager
def _quiet_tensorflow_logger() -> Iterator[None]:
    """Keeps `tf.saved_model.save`'s INFO lines out of a training run's log."""
    logger = logging.getLogger("tensorflow")
    level, verbosity = logger.level, absl_logging.get_verbosity()
    logger.setLevel(max(level, logging.WARNING))
    absl_logging.set_verbosity(min(verbosity, absl_logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
        absl_logging.set_verbosity(verbosity)


def _is_earlier_export(directory: str) -> bool:
    """Whether `directory` holds an export and nothing else (what `tf.saved_model.save`
    and this module write: saved_model.pb, fingerprint.pb, variables/variables.*, an empty
    assets/, export.json)."""
    names = set(os.listdir(directory))
    if EXPORT_JSON not in names or not names <= set(EXPORT_ENTRIES):
        return False
    for sub, allowed in (("variables", "variables."), ("assets", None)):
        path = os.path.join(directory, sub)
        if sub in names and (not os.path.isdir(path) or any(
                allowed is None or not name.startswith(allowed) or
                not os.path.isfile(os.path.join(path, name)) for name in os.listdir(path))):
            return False
    return all(os.path.isfile(os.path.join(directory, n)) for n in names - {"variables", "assets"})


def _check_destination(final: str, run_dir: str, overwrite: bool) -> None:
    """Refuses a destination that is a file or a run directory, or one that holds other
    files than an earlier export without `overwrite`."""
    if not os.path.exists(final):
        return
    if not os.path.isdir(final):
        raise ExportError(f"export directory {final} is a file; choose a new or empty directory")
    if os.path.exists(os.path.join(final, CONFIG)) or (
            os.path.isdir(run_dir) and os.path.samefile(final, run_dir)):
        raise ExportError(f"export directory {final} holds a run (config.json); an export needs "
                          f"a directory of its own: choose a new or empty one, e.g. the default "
                          f"{os.path.join(os.path.abspath(run_dir), 'export', 'task_NN')}")
    names = sorted(os.listdir(final))
    if names and not overwrite and not _is_earlier_export(final):
        raise ExportError(
            f"export directory {final} is not empty (it holds {', '.join(names[:5])}"
            f"{' ...' if len(names) > 5 else ''}); choose a new or empty directory, or pass "
            f"--overwrite to replace only the files an export writes "
            f"({', '.join(EXPORT_ENTRIES)}) and leave the rest")


def _install(tmp: str, final: str) -> None:
    """Moves the complete export `tmp` to `final`. A missing destination, or one holding
    only an earlier export, is replaced in one rename; otherwise each file of the export
    replaces its namesake (export.json last, so it announces a complete export) and the
    destination's other files stay."""
    if not os.path.exists(final) or _is_earlier_export(final):
        old = f"{final}.old-{os.getpid()}"
        if os.path.exists(final):
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        return
    for dirpath, _, filenames in os.walk(tmp):
        target = os.path.normpath(os.path.join(final, os.path.relpath(dirpath, tmp)))
        os.makedirs(target, exist_ok=True)
        for name in filenames:
            if dirpath != tmp or name != EXPORT_JSON:
                os.replace(os.path.join(dirpath, name), os.path.join(target, name))
    os.replace(os.path.join(tmp, EXPORT_JSON), os.path.join(final, EXPORT_JSON))
    shutil.rmtree(tmp)


def export_snapshot(run_dir: str, task: int, out_dir: str | None = None,
                    overwrite: bool = False) -> str:
    """Exports the snapshot after `task` tasks as a SavedModel sampler.

    Written under a temporary name beside `out_dir` and renamed when complete, so a
    reader never sees a half-written export. Takes a few seconds on a CPU. Nothing the
    export did not write is ever removed.

    Args:
      run_dir: the run directory (with `config.json` and `snapshots/task_NN`).
      task: 1-based task number of the snapshot.
      out_dir: destination; default `<run_dir>/export/task_NN`.
      overwrite: write into a destination that holds other files than an earlier export
        (which is replaced without it), replacing only the files an export writes
        (`EXPORT_ENTRIES`) and leaving the others.

    Returns:
      The export directory (holding `saved_model.pb`, `variables/`, `export.json`).

    Raises:
      snapshots.SnapshotError: no such snapshot, or it does not fit the run's model.
      ExportError: the destination is a run directory, or not empty without `overwrite`.
    """
    final = os.path.abspath(out_dir or export_dir(run_dir, task))
    _check_destination(final, run_dir, overwrite)
    sampler = build_sampler(run_dir, task)
    tmp = f"{final}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    try:
        with _quiet_tensorflow_logger():
            tf.saved_model.save(sampler, tmp, signatures=sampler.signature_functions())
        with open(os.path.join(tmp, EXPORT_JSON), "w") as f:
            json.dump(json.loads(sampler.metadata_json.numpy()), f, indent=2, sort_keys=True)
        _install(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # this call's own temporary copy, if left
    return final


def export_run(run_dir: str, out_root: str | None = None, overwrite: bool = False) -> list[str]:
    """Exports every task snapshot of a run; returns the export directories.

    Args:
      run_dir: the run directory.
      out_root: parent of the `task_NN` exports; default `<run_dir>/export`.
      overwrite: as `export_snapshot`, for each `task_NN` that is not empty.

    Raises:
      snapshots.SnapshotError, ExportError: as `export_snapshot`, checked for every task
        before the first is written.
    """
    tasks = snapshots.list_snapshots(run_dir)
    if not tasks:
        raise snapshots.SnapshotError(
            f"no task snapshots in {os.path.join(run_dir, SNAPSHOTS)} to export: a snapshot "
            f"is written at the end of each task; train (or, if interrupted, --resume) at "
            f"least one task with scripts/run_sequential.py --out_dir {run_dir}")
    root = out_root or os.path.join(run_dir, EXPORT)
    finals = [os.path.abspath(os.path.join(root, f"task_{t:02d}")) for t in tasks]
    for final in finals:
        _check_destination(final, run_dir, overwrite)
    return [export_snapshot(run_dir, t, final, overwrite) for t, final in zip(tasks, finals)]


def read_export_metadata(path: str) -> dict[str, Any]:
    """The `export.json` of an export directory."""
    with open(os.path.join(path, EXPORT_JSON)) as f:
        return json.load(f)
