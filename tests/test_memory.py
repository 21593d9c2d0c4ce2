"""The memory of a run must not grow with the tasks: a finished task's traces are freed.

Each task traces its own fused step (`steps.Steps.compile_iteration`). Keras's optimizer step
used to all-reduce the gradients through a `tf.custom_gradient` even on one replica, whose
gradient function TF registers for good in its global gradient registry: every task's
traces (FuncGraphs and all their tensors, ~50-70 MiB) then stayed alive until exit.
"""

import dataclasses
import gc
import weakref

import keras
import tensorflow as tf

from mergan_tf import configs, layers, optimizers
from mergan_tf.run_dir import prepare_run_dir
from mergan_tf.trainer import Trainer


def _func_graphs():
    gc.collect()
    return [o for o in gc.get_objects() if type(o).__name__ == "FuncGraph"]


def test_optimizer_step_trace_is_freed():
    """A traced ReplicaMeanAdam step leaves nothing of its graph behind once dropped."""
    var = keras.Variable([1.0, 2.0])
    opt = optimizers.ReplicaMeanAdam(learning_rate=0.1)
    opt.build([var])

    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(var * x))
        opt.apply_gradients([(tape.gradient(loss, [var])[0], var)])
        return loss

    fn = tf.function(step)
    fn(tf.constant(3.0))
    graph = weakref.ref(fn.get_concrete_function(tf.constant(3.0)).graph)
    del fn
    gc.collect()
    assert graph() is None, "the traced optimizer step is still referenced"


def test_finished_tasks_traces_are_freed(mnist_data, tmp_path):
    """A 4-task run: the traces made during task 2 are gone after task 4."""
    cfg = configs.preset_config("mnist", "sft")
    cfg = configs.validate(cfg.replace(
        classes=(0, 1, 2, 3), out_dir=str(tmp_path),
        model=dataclasses.replace(cfg.model, dim=8),
        train=dataclasses.replace(cfg.train, iters=2),
        output=dataclasses.replace(cfg.output, sample_every=10 ** 6, checkpoint_every=10 ** 6,
                                   export=False)))
    prepare_run_dir(cfg)
    alive_after, during_task2, registered = {}, {}, {}

    class Recording(Trainer):
        def _after_iteration(self, task, iteration, terms):
            super()._after_iteration(task, iteration, terms)
            if task.index == 1 and iteration == self.cfg.train.iters - 1:  # task 2's steps live
                during_task2.update({id(g): weakref.ref(g) for g in _func_graphs()})

        def train_task(self, task_index, task=None, first_iteration=0):
            super().train_task(task_index, task, first_iteration)
            alive_after[task_index] = {id(g) for g in _func_graphs()}
            registered[task_index] = layers.custom_gradient_names()

    Recording(cfg, mnist_data).train()
    task2 = [ref for key, ref in during_task2.items() if key not in alive_after[0]]
    assert len(task2) >= 2, "task 2 did not trace its fused steps (with and without G)"
    gc.collect()
    leaked = [ref() for ref in task2 if ref() is not None]
    assert not leaked, f"{len(leaked)} traces of task 2 are still alive after task 4"
    assert len(alive_after[3]) == len(alive_after[1])
    # The critic's custom-gradient activation registers a gradient function per trace in
    # TensorFlow's global registry; a finished task's registrations are dropped with it.
    task2_names = registered[1] - registered[0]
    assert task2_names and not task2_names & registered[3]
    assert len(registered[3]) == len(registered[1])
