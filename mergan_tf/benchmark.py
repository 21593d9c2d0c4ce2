"""Throughput of the real trainer: milliseconds per outer iteration and data rate.

Times `Trainer.run_iteration`, the code path of training, with the real data pipeline,
after a warm-up, at a chosen number of already-learned classes (replay cost grows with it).
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import flags

from mergan_tf import configs
from mergan_tf.data import ImageData, load_for_config, task_dataset
from mergan_tf.trainer import Trainer


def define_trainer_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the absl flags that the benchmarks of the real trainer share: the preset and
    its data (--dataset, --data_dir, --max_images_per_class), what runs (--method,
    --learned_classes), the model (--model_dim, --kernels) and --mixed_precision. Read them
    back with `trainer_inputs`."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_string("dataset", "mnist", "Dataset preset.", **fv)
    flags.DEFINE_string("data_dir", None, "IDX / .mat directory, LSUN folders (default: auto "
                        "source).", **fv)
    flags.DEFINE_integer("max_images_per_class", 1000, "LSUN: images loaded per category.",
                         **fv)
    flags.DEFINE_enum("method", "sft", list(configs.METHODS), "Method to run.", **fv)
    flags.DEFINE_integer("learned_classes", 0, "Classes already learned (replayed).", **fv)
    flags.DEFINE_integer("model_dim", None, "Model width DIM (default: the preset's).", **fv)
    flags.DEFINE_enum("kernels", None, list(configs.KERNELS), "dcgan32's stride-2 "
                      "convolutions (default: the config's, fast).", **fv)
    flags.DEFINE_enum("mixed_precision", "none", list(configs.PRECISIONS),
                      "bf16: dense and convolution layers in bfloat16 (see --mixed_precision "
                      "of run_sequential.py).", **fv)


def trainer_inputs(flag_values: flags.FlagValues) -> tuple[ImageData, dict]:
    """The data and the model overrides (for `trainer_at_task`) that the flags of
    `define_trainer_flags` name."""
    cfg = configs.preset_config(flag_values.dataset)
    cfg = cfg.replace(data=dataclasses.replace(
        cfg.data, data_dir=flag_values.data_dir,
        max_images_per_class=flag_values.max_images_per_class if cfg.data.categories else None))
    model = {"dim": flag_values.model_dim} if flag_values.model_dim else {}
    if flag_values.kernels:
        model["kernels"] = flag_values.kernels
    return load_for_config(cfg, verbose=False), model


def trainer_at_task(data: ImageData, method: str, learned_classes: int, run_dir: str,
                    model_overrides: dict | None = None, **train_overrides) -> tuple[Trainer, object]:
    """A Trainer positioned at task `learned_classes` (0-based) with its TaskState; the
    preset's model and training settings, changed by `model_overrides` (e.g. dim) and
    `train_overrides`."""
    model_overrides = model_overrides or {}
    cfg = configs.preset_config(data.name if data.name in configs.PRESETS else "mnist", method)
    classes = cfg.classes[:learned_classes + 1]
    categories = cfg.data.categories[:learned_classes + 1]  # LSUN: one per task
    cfg = configs.validate(cfg.replace(
        classes=classes, out_dir=run_dir,
        data=dataclasses.replace(cfg.data, categories=categories),
        model=dataclasses.replace(cfg.model, channels=data.channels, **model_overrides),
        train=dataclasses.replace(cfg.train, **train_overrides)))
    trainer = Trainer(cfg, data)
    if learned_classes > 0:
        trainer.write_snapshot(learned_classes - 1, 0)  # the replay generator's source
    return trainer, trainer.start_task(learned_classes)


def run_iterations(trainer: Trainer, task, iters: int) -> np.ndarray:
    """Runs `iters` outer iterations of `task` as training does (every one updates the
    generator) and returns each one's seconds, read back so that a time covers its work."""
    times = []
    for i in range(iters):
        start = time.perf_counter()
        terms = trainer.run_iteration(task, i + 1)  # i + 1: every iteration updates G
        float(terms["loss/critic/total"])  # wait for the result
        times.append(time.perf_counter() - start)
    return np.array(times)


def time_iterations(data: ImageData, method: str, learned_classes: int, iters: int,
                    warmup: int = 5, model_overrides: dict | None = None,
                    count_flops: bool = False, **train_overrides) -> tuple[np.ndarray, float | None]:
    """Seconds of each of `iters` timed outer iterations (generator + critic updates), and
    the GFLOP of one outer iteration of the same trainer when `count_flops` (else None)."""
    with tempfile.TemporaryDirectory() as run_dir:
        trainer, task = trainer_at_task(data, method, learned_classes, run_dir, model_overrides,
                                        **train_overrides)
        times = run_iterations(trainer, task, warmup + iters)
        gflops = _trainer_gflops(trainer, learned_classes, task) if count_flops else None
        trainer.log.close()
    return times[warmup:], gflops


def graph_gflops(fn, *args) -> float:
    """Floating-point operations, in 10^9, of one call of `fn(*args)` traced as a
    `tf.function`: TF's registered FLOP statistics (convolutions, matmuls, their gradients,
    elementwise ops; a multiply-add counts 2) summed over the traced graph, as tf.profiler
    counts them. Shapes must be static. Ops the graph builds but whose results go unused
    are counted too, so a step should not build what it does not use."""
    if not hasattr(fn, "get_concrete_function"):  # a tf.function already, or plain code
        fn = tf.function(fn)
    graph = fn.get_concrete_function(*args).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops / 1e9


def _trainer_gflops(trainer: Trainer, task_index: int, task) -> float:
    """GFLOP of one outer iteration (with the generator update) of a positioned trainer."""
    g_fn, d_fn = trainer.task_updates(task_index)
    reals, labels = next(task.batches)
    prepare = getattr(d_fn, "prepare", None)
    return graph_gflops(lambda r, y: trainer.steps.iteration_body(r, y, True, g_fn, d_fn, prepare),
                        reals, labels)


def iteration_gflops(data: ImageData, method: str, learned_classes: int,
                     model_overrides: dict | None = None, **train_overrides) -> float:
    """GFLOP of one outer iteration of the real trainer (generator + K critic updates)."""
    with tempfile.TemporaryDirectory() as run_dir:
        trainer, task = trainer_at_task(data, method, learned_classes, run_dir, model_overrides,
                                        **train_overrides)
        gflops = _trainer_gflops(trainer, learned_classes, task)
        trainer.log.close()
    return gflops


# Types of the trace's events that wrap other ops (counting them would count their ops twice).
_CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})


def trace_op_times(xplane_path: str) -> dict[str, float]:
    """Milliseconds spent in each TensorFlow op of a `tf.profiler` trace (an `.xplane.pb`
    file): {"op name:OpType": ms, summed over the trace}. Only the events of single ops
    (named `name:Type`) are kept: not the executor's and function calls' events that
    enclose them, nor tf.data's (`Iterator::...`)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # TF's own copy of the proto

    space = xplane_pb2.XSpace()
    with open(xplane_path, "rb") as f:
        space.ParseFromString(f.read())
    times = collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" not in name or "::" in name or " " in name:
                    continue
                if name.rsplit(":", 1)[1] in _CALL_OPS:
                    continue
                times[name] += event.duration_ps / 1e9
    return dict(times)


def node_flops(graph: tf.Graph) -> dict[str, float]:
    """FLOPs of each node of `graph` that has TF's registered FLOP statistics, by name."""
    from tensorflow.python.framework import ops as framework_ops

    flops = {}
    for op in graph.get_operations():
        try:
            stats = framework_ops.get_stats_for_node_def(graph, op.node_def, "flops")
        except ValueError:  # shape not fully known
            continue
        if stats.value:
            flops[op.name] = float(stats.value)
    return flops


@dataclasses.dataclass
class OpProfile:
    """Where an outer iteration's time goes: per op, ms per iteration and GFLOP (where TF
    counts them for the op under that name; Grappler's fused ops take another node's name)."""
    wall_ms: float  # per outer iteration, as timed around the profiled iterations
    op_ms: dict[str, float]  # "name:Type" -> ms per iteration
    op_gflop: dict[str, float]  # "name:Type" -> GFLOP per iteration (0 if not counted)

    def by_type(self) -> list[tuple[str, float, float, int]]:
        """[(op type, ms, GFLOP, ops)] per iteration, the slowest type first."""
        rows = collections.defaultdict(lambda: [0.0, 0.0, 0])
        for name, ms in self.op_ms.items():
            row = rows[name.rsplit(":", 1)[1]]
            row[0] += ms
            row[1] += self.op_gflop.get(name, 0.0)
            row[2] += 1
        return sorted(((t, *r) for t, r in rows.items()), key=lambda row: -row[1])


def profile_iterations(trainer: Trainer, task, iters: int) -> OpProfile:
    """Runs `iters` outer iterations (with the generator update) under `tf.profiler` and
    returns their op times per iteration, with each op's FLOPs in the fused iteration's
    graph. Trace the iteration first (warm-up), so that tracing is not profiled."""
    fused = getattr(task.iteration_fn, "function", None)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            wall = float(run_iterations(trainer, task, iters).sum())
        finally:
            tf.profiler.experimental.stop()
        paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        if len(paths) != 1:
            raise RuntimeError(f"profile_iterations: expected one trace file in {logdir}, "
                               f"found {paths}")
        op_ms = {name: ms / iters for name, ms in trace_op_times(paths[0]).items()}
    flops = {}
    if fused is not None:  # the unfused path has several graphs; its ops are timed all the same
        reals, labels = next(task.batches)
        flops = node_flops(fused.get_concrete_function(reals, labels, True).graph)
    op_gflop = {name: flops.get(name.rsplit(":", 1)[0], 0.0) / 1e9 for name in op_ms}
    return OpProfile(wall_ms=1000 * wall / iters, op_ms=op_ms, op_gflop=op_gflop)


def data_images_per_second(data: ImageData, batches: int = 200, batch_size: int = 64) -> float:
    """Images per second that one task's tf.data pipeline delivers on its own."""
    it = iter(task_dataset(data, [int(data.train_labels[0])], batch_size))
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - start)


def matmul_gflops(dtype: tf.DType = tf.float32, n: int = 2048, reps: int = 10) -> float:
    """GFLOP/s of an n x n matmul in `dtype` (2 n^3 per product), the machine's reading in
    the same run as a timing: the median of `reps` timed runs of 4 chained products."""
    a = tf.random.stateless_normal([n, n], seed=[1, 2], dtype=tf.float32)
    a = tf.cast(a / np.sqrt(n), dtype)

    @tf.function
    def chain(x):
        for _ in range(4):
            x = tf.matmul(x, a)
        return x
    chain(a).numpy()  # trace and warm up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        chain(a).numpy()
        times.append(time.perf_counter() - start)
    return 4 * 2 * n ** 3 / float(np.median(times)) / 1e9


def median_ms(fn, iters: int, warmup: int) -> float:
    """Median milliseconds of `fn()` over `iters` timed calls after `warmup` untimed ones;
    `fn` returns a tensor, read back so that the time covers the work."""
    for _ in range(warmup):
        np.asarray(fn())
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        np.asarray(fn())
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def set_threads(n: int) -> None:
    """TensorFlow intra- and inter-op threads (before any op runs); 0 keeps TF's default."""
    if n:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
