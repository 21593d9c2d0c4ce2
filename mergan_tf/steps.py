"""The compiled training steps of MeRGAN: a task's generator and critic updates and the
outer iteration that runs them.

Follows the release (`mergan.py`): the critic update is WGAN-GP with the AC-GAN
cross-entropy on the real batch (`losses.wgan_gp_critic_loss`), the generator update the
Wasserstein and AC terms on a fake batch of the task's classes; the method adds its terms
(`Method.generator_extra_loss` / `critic_extra_loss`) on the replays of the previous
classes (`ReplayBatch`). Each update draws its noise from the run's `tf.random.Generator`.
The task loop that calls these is `mergan_tf.trainer`.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional

import tensorflow as tf

from mergan_tf import distribute, losses, tasks
from mergan_tf.configs import RunConfig
from mergan_tf.methods import Method, ReplayBatch


class Steps:
    """Builds each task's updates and compiles its outer iteration.

    Args:
      cfg: the run's configuration.
      strategy: the run's `tf.distribute` strategy (TF's default for --strategy none).
      replica_batch_size: each replica's share of the batch.
      method: the continual-learning method (its hooks add loss terms).
      task_list: the classes of each task.
      generator, critic, replay_generator: the run's models.
      rng: the run's random generator.
    """

    def __init__(self, cfg: RunConfig, strategy: tf.distribute.Strategy, replica_batch_size: int,
                 method: Method, task_list: list[tuple[int, ...]], generator, critic,
                 replay_generator, rng: tf.random.Generator):
        self.cfg, self.strategy, self.replica_batch_size = cfg, strategy, replica_batch_size
        self.method, self.tasks = method, task_list
        self.generator, self.critic, self.replay_generator = generator, critic, replay_generator
        self.rng = rng

    def replay_size(self, task_index: int) -> int:
        """Replay samples per previous class on each replica: `tasks.replay_size` (batch // t
        on MNIST/SVHN, a full batch on LSUN) split across the replicas of a --strategy run."""
        return distribute.replica_share(tasks.replay_size(self.cfg, task_index), self.strategy)

    def replay(self, replay_labels: Optional[tf.Tensor], t: int,
               with_old: bool) -> Optional[ReplayBatch]:
        """The step's replay noise and classes, and Old(z, c) when `with_old`."""
        if replay_labels is None:
            return None
        z = self.rng.normal([replay_labels.shape[0], self.cfg.model.z_dim])
        old = (tf.stop_gradient(self.replay_generator(z, replay_labels, num_groups=t))
               if with_old else None)
        return ReplayBatch(z=z, labels=replay_labels, old=old, num_classes=t)

    def fake_batch(self, task_classes: tuple[int, ...]):
        """A batch of fakes: all of the task's class (release), or labels drawn uniformly
        from the task's classes (joint training)."""
        b = self.replica_batch_size
        if len(task_classes) == 1:
            labels = tf.fill([b], tf.constant(task_classes[0], tf.int32))
        else:
            pick = self.rng.uniform([b], 0, len(task_classes), dtype=tf.int32)
            labels = tf.gather(tf.constant(task_classes, tf.int32), pick)
        return self.generator(self.rng.normal([b, self.cfg.model.z_dim]), labels), labels

    def build_updates(self, task_index: int, g_opt, d_opt):
        """The task's `generator_update()` and `critic_update(real, labels)` (traceable).

        Plain Python functions of tensor ops; `compile_iteration` wraps them in
        `tf.function`, traced once per task: the task's label, the replayed classes and
        their count are Python constants of the trace.
        """
        replay_labels = None
        if self.method.needs_replay and task_index > 0:
            replay_labels = tf.constant(
                tasks.replay_labels(self.tasks, task_index, self.replay_size(task_index)), tf.int32)
        g_opt.build(self.generator.trainable_variables)
        d_opt.build(self.critic.trainable_variables)
        return (self._generator_update(task_index, g_opt, replay_labels),
                self._critic_update(task_index, d_opt, replay_labels))

    def _generator_update(self, task_index: int, g_opt, replay_labels) -> Callable[[], dict]:
        tc, task_classes = self.cfg.train, self.tasks[task_index]
        g_vars = self.generator.trainable_variables

        def generator_update():
            replay = self.replay(replay_labels, task_index, self.method.old_in_generator_update)
            with tf.GradientTape() as tape:
                fake, labels = self.fake_batch(task_classes)
                fake_logits, fake_class_logits = self.critic(fake)
                terms = {
                    "loss/gen/wasserstein": losses.wasserstein_generator_loss(fake_logits),
                    "loss/gen/ac_fake": tc.acgan_scale_g * losses.classification_loss(
                        fake_class_logits, labels),
                }
                terms.update(self.method.generator_extra_loss(self.generator, self.critic, replay))
                total = tf.add_n(list(terms.values()))
            g_opt.apply_gradients(zip(tape.gradient(total, g_vars), g_vars))
            terms["loss/gen/total"] = total
            return terms

        return generator_update

    def critic_draws(self, task_classes: tuple[int, ...],
                     replay_labels: Optional[tf.Tensor]) -> dict:
        """One critic update's random draws, in the release's order: the fake batch's labels
        (several classes only) and noise, the penalty's alpha, the replay noise."""
        b, z_dim = self.replica_batch_size, self.cfg.model.z_dim
        if len(task_classes) == 1:
            labels = tf.fill([b], tf.constant(task_classes[0], tf.int32))
        else:
            pick = self.rng.uniform([b], 0, len(task_classes), dtype=tf.int32)
            labels = tf.gather(tf.constant(task_classes, tf.int32), pick)
        draws = {"fake_z": self.rng.normal([b, z_dim]), "fake_labels": labels,
                 "alpha": self.rng.uniform([b, 1, 1, 1])}
        if replay_labels is not None:
            draws["replay_z"] = self.rng.normal([replay_labels.shape[0], z_dim])
        return draws

    def critic_inputs(self, task_index: int, replay_labels: Optional[tf.Tensor],
                      count: int) -> list[dict]:
        """The inputs of `count` consecutive critic updates, made at once: their draws in
        the order the updates would make them, then every fake batch in one generator call
        and every replay in one call of each generator, each batch its own batch-norm group
        (the generators do not change during the critic updates, so this equals generating
        each update's own). Returns one dict per update: fake, alpha and, with replays,
        replay_z, old, new."""
        draws = [self.critic_draws(self.tasks[task_index], replay_labels) for _ in range(count)]
        fakes = self.generator(tf.concat([d["fake_z"] for d in draws], 0),
                               tf.concat([d["fake_labels"] for d in draws], 0), num_groups=count)
        inputs = [{"fake": tf.stop_gradient(f), "alpha": d["alpha"]}
                  for f, d in zip(tf.split(fakes, count), draws)]
        if replay_labels is None:
            return inputs
        z = tf.concat([d["replay_z"] for d in draws], 0)
        labels = tf.tile(replay_labels, [count])
        groups = count * task_index
        made = {"old": self.method.old_in_critic_update and self.replay_generator,
                "new": self.method.new_in_critic_update and self.generator}
        for key, model in made.items():
            if model:
                parts = tf.split(tf.stop_gradient(model(z, labels, num_groups=groups)), count)
                for update, part in zip(inputs, parts):
                    update[key] = part
        for update, d in zip(inputs, draws):
            update["replay_z"] = d["replay_z"]
        return inputs

    def _critic_update(self, task_index: int, d_opt, replay_labels) -> Callable[..., dict]:
        tc, task_classes = self.cfg.train, self.tasks[task_index]
        d_vars = self.critic.trainable_variables

        def critic_update(real, real_labels, inputs: Optional[dict] = None):
            if inputs is None:  # this update's own draws and generator calls
                fake, _ = self.fake_batch(task_classes)
                fake = tf.stop_gradient(fake)
                alpha = self.rng.uniform([self.replica_batch_size, 1, 1, 1])
                replay = self.replay(replay_labels, task_index, self.method.old_in_critic_update)
            else:  # made for every update of the iteration by `critic_inputs`
                fake, alpha = inputs["fake"], inputs["alpha"]
                replay = None if replay_labels is None else ReplayBatch(
                    z=inputs["replay_z"], labels=replay_labels, old=inputs.get("old"),
                    num_classes=task_index, new=inputs.get("new"))
            with tf.GradientTape() as tape:
                wasserstein, penalty, real_class_logits = losses.wgan_gp_critic_loss(
                    self.critic, real, fake, alpha, tc.gp_weight, tc.concat_critic)
                terms = {
                    "loss/critic/wasserstein": wasserstein,
                    "loss/critic/gp": penalty,
                    "loss/critic/ac_real": tc.acgan_scale * losses.classification_loss(
                        real_class_logits, real_labels),
                }
                terms.update(self.method.critic_extra_loss(self.generator, self.critic, replay))
                total = tf.add_n(list(terms.values()))
            d_opt.apply_gradients(zip(tape.gradient(total, d_vars), d_vars))
            terms["loss/critic/total"] = total
            terms["acc/critic/ac_real"] = tf.reduce_mean(tf.cast(
                tf.equal(tf.argmax(real_class_logits, axis=1, output_type=tf.int32), real_labels),
                tf.float32))
            return terms

        if tc.batch_critic_inputs:
            critic_update.prepare = functools.partial(self.critic_inputs, task_index, replay_labels)
        return critic_update

    def compile_iteration(self, generator_update, critic_update):
        """`iteration(reals [K, B, ...], labels [K, B], with_generator)` for one outer
        iteration: the generator update (when `with_generator`), then K critic updates.

        Fused (default): one `tf.function` for the whole outer iteration, traced twice per
        task (with and without the generator update), so no Python runs between the six
        updates. Unfused: one `tf.function` per update, the straightforward path that the
        tests compare the fused one against. A critic update with a `prepare` (the
        trainer's own, with --batch_critic_inputs) gets its fakes and replays from one
        batched call per iteration (`critic_inputs`).
        """
        prepare = getattr(critic_update, "prepare", None)

        def iteration(reals, labels, with_generator, g_fn=generator_update, d_fn=critic_update):
            return self.iteration_body(reals, labels, with_generator, g_fn, d_fn, prepare)

        if self.cfg.train.strategy != "none":  # the fused iteration on every replica
            return distribute.compile_replicated(self.strategy, iteration)
        if self.cfg.train.fused_iteration:
            fused = tf.function(iteration)

            def run(reals, labels, with_generator):
                return fused(reals, labels, with_generator)
            run.function = fused  # the traced graph, for benchmark.profile_iterations
            return run
        g_fn, d_fn = tf.function(generator_update), tf.function(critic_update)
        return lambda reals, labels, with_generator: iteration(
            reals, labels, with_generator, g_fn, d_fn)

    def iteration_body(self, reals, labels, with_generator: bool, g_fn, d_fn, prepare=None):
        """One outer iteration as plain tensor code: `g_fn()` when `with_generator`, then
        `d_fn(reals[k], labels[k])` for each of the K critic updates (with `prepare`, made
        after the generator update: `d_fn(reals[k], labels[k], prepare(K)[k])`); the last
        terms."""
        terms = dict(g_fn()) if with_generator else {}
        k_updates = self.cfg.train.critic_iters
        inputs = prepare(k_updates) if prepare is not None else [None] * k_updates
        for k in range(k_updates):
            d_terms = (d_fn(reals[k], labels[k]) if inputs[k] is None
                       else d_fn(reals[k], labels[k], inputs[k]))
        terms.update(d_terms)
        return terms
