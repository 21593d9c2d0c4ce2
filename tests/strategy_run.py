"""Helper of tests/test_distribute.py, run in a subprocess: TensorFlow must see two
logical CPU devices before it initialises them, which a pytest process has done already.

  python tests/strategy_run.py OUT.npz RUN_DIR MNIST_DIR METHOD OPTIMIZER [PRECISION]

Saves to OUT.npz, keys prefixed `units|`: batch norm on the global batch split across the
two replicas (values and input gradients, grouped and not) next to one device, the noise
of the two replicas, and the real-batch shards. Then trains METHOD on the MNIST IDX files
of MNIST_DIR for 2 tasks x 3 iterations (dim 8, 2 critic updates) with OPTIMIZER (adam:
the trainer's; sgd: plain gradient steps, which show the gradient's scale) once on one
device and once mirrored on the two CPUs, both drawing the same noise (`ShardedNoise`), and saves every logged scalar
and the final weights, keys prefixed `none|` and `mirrored|`. PRECISION (default none)
is the runs' --mixed_precision.
"""

import collections
from functools import partial
import csv
import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from mergan_tf import configs, distribute, layers, optimizers  # noqa: E402
from mergan_tf.data import load_dataset  # noqa: E402
from mergan_tf.run_dir import prepare_run_dir  # noqa: E402
from mergan_tf.trainer import Trainer  # noqa: E402


_CALLS = collections.Counter()  # draws per (trace, replica); kept off the trackable


class ShardedNoise(tf.Module):
    """Stands in for the trainer's tf.random.Generator: the k-th draw of a trace at global
    step s is a fixed function of (k, s) of the GLOBAL shape, and replica i takes its i-th
    slice. A one-device run and a run on R replicas therefore see the same numbers."""

    def __init__(self, step: tf.Variable):
        super().__init__()
        self._step = lambda: step  # a function: not saved again under "rng"

    def _draw(self, sample, shape, **kwargs):
        ctx = tf.distribute.get_replica_context()
        replicas = 1 if ctx is None else ctx.num_replicas_in_sync
        replica = 0 if ctx is None else int(tf.get_static_value(ctx.replica_id_in_sync_group))
        key = (id(tf.compat.v1.get_default_graph()), replica)
        _CALLS[key] += 1
        seed = tf.stack([tf.constant(_CALLS[key], tf.int64), tf.cast(self._step(), tf.int64)])
        full = sample([shape[0] * replicas] + list(shape[1:]), seed=seed, **kwargs)
        return full[replica * shape[0]:(replica + 1) * shape[0]]

    def normal(self, shape):
        return self._draw(tf.random.stateless_normal, shape)

    def uniform(self, shape, minval=0, maxval=None, dtype=tf.float32):
        return self._draw(tf.random.stateless_uniform, shape, minval=minval, maxval=maxval, dtype=dtype)


def train(method, strategy, run_dir, data, optimizer, precision="none", kernels="fast"):
    cfg = configs.preset_config("mnist", method)
    cfg = configs.validate(cfg.replace(
        classes=(0, 1), out_dir=run_dir, seed=5,
        model=dataclasses.replace(cfg.model, dim=8, kernels=kernels),
        train=dataclasses.replace(cfg.train, iters=3, critic_iters=2, strategy=strategy,
                                  mixed_precision=precision),
        output=dataclasses.replace(cfg.output, sample_every=100, checkpoint_every=2, log_every=1,
                                   export=False)))
    prepare_run_dir(cfg)
    trainer = Trainer(cfg, data)
    trainer.rng = trainer.steps.rng = ShardedNoise(trainer.global_step)
    if optimizer == "sgd":
        trainer._make_optimizer = lambda: ReplicaMeanSGD(learning_rate=SGD_LR)
    init = {f"init|{v.path}": v.numpy() for m in (trainer.generator, trainer.critic) for v in m.weights}
    trainer.train()
    with open(os.path.join(run_dir, "scalars.csv")) as f:
        out = {f"scalar|{r['global_step']}|{r['key']}": float(r["value"]) for r in csv.DictReader(f)
               if not r["key"].startswith("perf/")}
    for model in (trainer.generator, trainer.critic):
        out.update({f"weight|{v.path}": v.numpy() for v in model.weights})
    return {**out, **init}


class ReplicaMeanSGD(optimizers.ReplicaMean, keras.optimizers.SGD):
    """Plain gradient steps: unlike Adam's, they are proportional to the gradient."""


SGD_LR = 1e-3


def units(strategy):
    """Checks of the pieces on the two replicas, next to their one-device values."""
    out = {}
    x = tf.random.stateless_normal([8, 3, 3, 4], seed=[1, 2]) * 3.0 + 1.5
    for groups in (1, 2):
        def normalize(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layers.batch_normalize(x, groups, 1e-5)
                # A weighted sum (weights: a function of each element), whose input gradient
                # goes through the batch statistics; the replicas' sums add up to the global one.
                loss = tf.reduce_sum(y * tf.stop_gradient(tf.sin(3.0 * x)))
            return y, tape.gradient(loss, x)

        shards = [tf.concat([x[g * 4 + r * 2:g * 4 + r * 2 + 2] for g in range(2)], 0) if groups == 2
                  else x[r * 4:(r + 1) * 4] for r in range(2)]
        per_replica = strategy.experimental_distribute_values_from_function(
            lambda ctx: shards[ctx.replica_id_in_sync_group])
        y, grad = tf.function(partial(strategy.run, normalize))(args=(per_replica,))
        one, one_grad = normalize(x)
        out[f"units|bn{groups}_one"], out[f"units|bn{groups}_grad_one"] = one.numpy(), one_grad.numpy()
        out[f"units|bn{groups}_replicas"] = np.stack([t.numpy() for t in strategy.experimental_local_results(y)])
        out[f"units|bn{groups}_shards"] = np.stack([t.numpy() for t in shards])
        out[f"units|bn{groups}_grad_replicas"] = np.stack(
            [t.numpy() for t in strategy.experimental_local_results(grad)])
    # The trainer's generator (created in the strategy's scope): one stream per replica.
    with strategy.scope():
        rng = tf.random.Generator.from_seed(0)
    noise = tf.function(partial(strategy.run, partial(rng.normal, [4])))()
    out["units|noise"] = np.stack([t.numpy() for t in strategy.experimental_local_results(noise)])
    reals = tf.reshape(tf.range(2 * 6, dtype=tf.float32), [2, 6])
    shards = distribute.distribute_batches(strategy, reals, reals)
    out["units|real_shards"] = np.stack([t[0].numpy() for t in strategy.experimental_local_results(shards)])
    return out


def main(out, run_root, mnist_dir, method, optimizer, precision="none", kernels="fast"):
    results = units(distribute.get_strategy("mirrored"))
    data = load_dataset("mnist", data_dir=mnist_dir, verbose=False)
    for strategy in ("none", "mirrored"):
        run = train(method, strategy, os.path.join(run_root, strategy), data, optimizer, precision, kernels)
        results.update({f"{strategy}|{k}": v for k, v in run.items()})
    np.savez(out, **results)


if __name__ == "__main__":
    main(*sys.argv[1:])
