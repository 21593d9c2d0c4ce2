"""Training on several devices or hosts with `tf.distribute` (`--strategy`).

`none` (default) is the single-device run. `mirrored` is `tf.distribute.MirroredStrategy`
over the local GPUs (or the logical CPUs when there is no GPU); `multi_worker` is
`tf.distribute.MultiWorkerMirroredStrategy` over the hosts named in `TF_CONFIG`.

What a distributed run keeps equal to the single-device one:
  * The global batch (release 64) is split equally across the replicas: each replica gets
    its shard of every real batch (`distribute_batches`), and draws its share of the fakes,
    of the interpolation weights and of the replays (`replica_batch_size`, `replica_share`).
  * Batch norm of the generator uses the statistics of the whole global batch:
    `cross_replica_moments` all-reduces the sums over the replicas (differentiably).
  * Every loss term a replica computes is its estimate of the global term (a mean over its
    shard; a sum such as replay alignment is scaled by the number of replicas), and the
    update uses the mean of the replicas' gradients (`optimizers.ReplicaMean`): the gradient of
    the global-batch loss.
  * Each replica draws different noise: the run's `tf.random.Generator` is created in the
    strategy's scope, which gives every replica its own stream.
  * Checkpoints, snapshots, sample grids, TensorBoard and CSV come from the chief (worker 0)
    only: other workers write to a temporary directory (`for_this_worker`).
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import shutil
import tempfile
from typing import Callable

import tensorflow as tf

from mergan_tf.configs import STRATEGIES, ConfigError

_strategies: dict[str, tf.distribute.Strategy] = {}


def get_strategy(name: str) -> tf.distribute.Strategy:
    """The process's strategy for `--strategy name` (created once, then reused).

    `none` is TF's default strategy (one device, no change to any computation). Create a
    `multi_worker` strategy before any other TensorFlow work of the process.

    Raises:
      ConfigError: for an unknown name, or multi_worker without TF_CONFIG.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"unknown --strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "none":
        return tf.distribute.get_strategy()
    if name not in _strategies:
        _strategies[name] = _mirrored() if name == "mirrored" else _multi_worker()
    return _strategies[name]


def _mirrored() -> tf.distribute.MirroredStrategy:
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    return tf.distribute.MirroredStrategy(gpus or [d.name for d in tf.config.list_logical_devices("CPU")])


def _multi_worker() -> tf.distribute.MultiWorkerMirroredStrategy:
    if "TF_CONFIG" not in os.environ:
        raise ConfigError("--strategy multi_worker needs TF_CONFIG (the cluster and this "
                         "worker's task), e.g. {\"cluster\": {\"worker\": [\"host1:port\", "
                         "\"host2:port\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}")
    comm = tf.distribute.experimental.CommunicationImplementation
    # Ring all-reduce runs on CPUs; NCCL is preferable between GPUs (AUTO picks it).
    implementation = comm.AUTO if tf.config.list_physical_devices("GPU") else comm.RING
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=implementation))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's outputs: the chief, else worker 0."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_name() -> str:
    """`<type>_<index>` of this process in TF_CONFIG (`chief_0` without one)."""
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    return f"{task.get('type', 'chief')}_{task.get('index', 0)}"


def for_this_worker(cfg, strategy: tf.distribute.Strategy):
    """`cfg` for this process: the chief keeps `out_dir`; another worker gets a private
    temporary directory (removed at exit), so each output is written once, by the chief.

    The other workers still write there (every worker takes part in the same saves) and
    read their own snapshots back for replay: the weights are identical on every worker.
    """
    if is_chief(strategy):
        return cfg
    out_dir = tempfile.mkdtemp(prefix=f"mergan_{worker_name()}_")
    atexit.register(shutil.rmtree, out_dir, ignore_errors=True)
    return dataclasses.replace(cfg, out_dir=out_dir)


# ------------------------------------------------------------------ inside a replica
def num_replicas_in_sync() -> int:
    """Replicas that share the current step: 1 outside `strategy.run` (cross-replica
    context or no strategy), the strategy's replica count inside it."""
    ctx = tf.distribute.get_replica_context()
    return 1 if ctx is None else int(ctx.num_replicas_in_sync)


def cross_replica_moments(x: tf.Tensor, axes: list[int]) -> tuple[tf.Tensor, tf.Tensor]:
    """Mean and biased variance of `x` over `axes` and over every replica's `x` (keepdims).

    Sums and counts are all-reduced, so replicas may hold different numbers of rows. Two
    passes (the mean, then the centred squares) keep the precision of `tf.nn.moments`.
    The all-reduce is differentiable (its gradient is an all-reduce of the gradients).
    Call inside `strategy.run` only: every replica must make the same calls.
    """
    ctx = tf.distribute.get_replica_context()
    shape = tf.shape(x)
    count = tf.cast(tf.reduce_prod(tf.gather(shape, axes)), x.dtype)
    total, count = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                                  [tf.reduce_sum(x, axes, keepdims=True), count])
    mean = total / count
    squares = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                             tf.reduce_sum(tf.square(x - mean), axes, keepdims=True))
    return mean, squares / count


# ------------------------------------------------------------------ batch sizes
def replica_batch_size(global_batch: int, strategy: tf.distribute.Strategy) -> int:
    """Per-replica share of the global batch.

    Raises:
      ConfigError: when the batch does not split equally across the replicas.
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise ConfigError(f"--batch_size {global_batch} does not split equally across the "
                         f"{replicas} replicas of the strategy; use a multiple of {replicas}")
    return global_batch // replicas


def replica_share(count: int, strategy: tf.distribute.Strategy) -> int:
    """Per-replica share of `count` samples, rounded up (so no replica gets none).

    Used for the replays of each previous class (release: batch // t): when the replica
    count does not divide it, the replayed batch grows to the next multiple, e.g. 21 ->
    22 on two replicas.
    """
    replicas = strategy.num_replicas_in_sync
    return -(-count // replicas)


# ------------------------------------------------------------------ the compiled step
def distribute_batches(strategy: tf.distribute.Strategy, *tensors: tf.Tensor):
    """Splits tensors [K, B, ...] along B: replica i gets columns [i*B/R, (i+1)*B/R).

    Every worker reads the same global batch (same data, same seed), so each replica's
    shard is exactly the slice the single-device run would put in that place.
    """
    def shard(ctx: tf.distribute.ValueContext):
        size = tensors[0].shape[1] // ctx.num_replicas_in_sync
        begin = ctx.replica_id_in_sync_group * size
        return tuple(t[:, begin:begin + size] for t in tensors)

    return strategy.experimental_distribute_values_from_function(shard)


def compile_replicated(strategy: tf.distribute.Strategy,
                       iteration: Callable[..., dict]) -> Callable[..., dict]:
    """`iteration(reals, labels, with_generator)` run on every replica in one `tf.function`.

    The returned function takes the global batches [K, B, ...], gives each replica its
    shard and returns each loss term averaged over the replicas (for the estimates that
    every term is, the global-batch value).
    """
    @tf.function
    def step(reals, labels, with_generator):
        terms = strategy.run(iteration, args=(reals, labels, with_generator))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in terms.items()}

    def run(reals, labels, with_generator):
        return step(*distribute_batches(strategy, reals, labels), with_generator)

    return run
