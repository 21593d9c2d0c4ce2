"""Deep generative replay (Shin et al. 2017) as the MeRGAN paper implements its DGR baseline.

An UNCONDITIONAL WGAN-GP generator (the gan32 generator with a single batch-norm row, i.e.
plain batch-statistics BN, and no class input) and a solver classifier of the evaluator's
architecture (`models.classifiers`). Class-conditional samples come from rejection:
generate, keep what the solver labels as the class (`SolverFilteredSampler`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mergan_tf import losses, snapshots, tasks
from mergan_tf.configs import RunConfig
from mergan_tf.methods.base import Method, TrainingRun
from mergan_tf.models import classifiers as classifier_models


def build_solver(cfg: RunConfig) -> keras.Model:
    """A fresh solver classifier for a DGR run: the dataset's evaluator architecture, one
    logit per label slot."""
    m = cfg.model
    arch = classifier_models.default_arch(cfg.data.dataset, m.channels)
    return classifier_models.build_classifier(arch, (m.image_size, m.image_size, m.channels),
                                              m.num_label_slots)


class SolverFilteredSampler:
    """`sample_fn(z, labels)` for an unconditional generator and a solver.

    Each call is for one class c (the protocol's per-class batches): candidates are
    generated in batches (the first from `z`, then from seeded noise), and those the solver
    labels c are kept, for at most `max_tries` batches. If too few are accepted, the batch
    is completed with the remaining candidates the solver finds most likely to be c, and
    `stats` counts them, so the acceptance rate is always reported.

    Args:
      generator: unconditional Generator (labels are all 0).
      solver: classifier, images -> logits.
      max_tries: candidate batches per call at most.
      seed: seeds the extra candidate noise.
    """

    def __init__(self, generator, solver, max_tries: int = 20, seed: int = 0):
        self.generator, self.solver, self.max_tries = generator, solver, max_tries
        self.rng = np.random.RandomState(seed)
        self.stats = {"requested": 0, "candidates": 0, "accepted": 0, "filled": 0}
        self._fn = tf.function(self._candidates, input_signature=[
            tf.TensorSpec([None, generator.z_dim], tf.float32)])

    def _candidates(self, z):
        images = self.generator(z, tf.zeros([tf.shape(z)[0]], tf.int32))
        return images, tf.nn.softmax(self.solver(images, training=False))

    def __call__(self, z, labels):
        z = np.asarray(z, np.float32)
        c = int(np.asarray(labels)[0])
        n = len(z)
        kept, spare, spare_p = [], [], []
        for attempt in range(self.max_tries):
            batch = z if attempt == 0 else self.rng.randn(*z.shape).astype(np.float32)
            images, probs = (t.numpy() for t in self._fn(batch))
            accept = probs.argmax(axis=1) == c
            kept.append(images[accept])
            spare.append(images[~accept])
            spare_p.append(probs[~accept, c])
            self.stats["candidates"] += n
            if sum(len(k) for k in kept) >= n:
                break
        accepted = np.concatenate(kept)[:n]
        self.stats["requested"] += n
        self.stats["accepted"] += len(accepted)
        if len(accepted) < n:
            order = np.argsort(-np.concatenate(spare_p))[:n - len(accepted)]
            accepted = np.concatenate([accepted, np.concatenate(spare)[order]])
            self.stats["filled"] += len(order)
        return accepted

    def acceptance_rate(self) -> float:
        """Accepted candidates / generated candidates, in percent."""
        return 100.0 * self.stats["accepted"] / max(self.stats["candidates"], 1)


class DeepGenerativeReplay(Method):
    """DGR, the paper's baseline. In task t the critic sees the real images of the class
    plus one batch of replays of the previous tasks from the frozen previous generator; the
    solver learns the real images (their labels) plus those replays labelled by the frozen
    previous solver. Class-conditional samples come from `SolverFilteredSampler`.
    """

    name = "dgr"
    conditional = False

    def setup(self, trainer: TrainingRun) -> None:
        self.solver = build_solver(trainer.cfg)
        self.old_solver = build_solver(trainer.cfg)
        self.solver_opt = keras.optimizers.Adam(self.config.dgr_solver_lr)
        self.solver_opt.build(self.solver.trainable_variables)
        self._sampler = SolverFilteredSampler(trainer.generator, self.solver, seed=trainer.cfg.seed)

    def checkpoint_objects(self) -> dict:
        # Lists of variables: tracked by position, whatever Keras names its layers.
        return {"solver": list(self.solver.weights), "solver_opt": self.solver_opt}

    def before_task(self, trainer: TrainingRun, task_index: int) -> None:
        if task_index > 0:
            number = tasks.snapshot_number(trainer.tasks, task_index - 1)
            snapshots.restore_into(trainer.run_dir, number, generator=trainer.replay_generator,
                                   solver=list(self.old_solver.weights))
            trainer.replay_generator.trainable = False

    def sampler(self, trainer: TrainingRun):
        return self._sampler

    def build_updates(self, trainer: TrainingRun, task_index: int, g_opt, d_opt):
        """Generator, critic and solver updates of DGR (the critic update also trains the
        solver on the same real batch and a fresh replay batch)."""
        g_opt.build(trainer.generator.trainable_variables)
        d_opt.build(trainer.critic.trainable_variables)
        return (self._generator_update(trainer, g_opt),
                self._critic_update(trainer, d_opt, replay=task_index > 0))

    @staticmethod
    def _generate(trainer: TrainingRun, model, n):
        """n images of an unconditional generator (every label 0)."""
        return model(trainer.rng.normal([n, trainer.cfg.model.z_dim]), tf.zeros([n], tf.int32))

    def _generator_update(self, trainer: TrainingRun, g_opt):
        g_vars, b = trainer.generator.trainable_variables, trainer.cfg.train.batch_size

        def generator_update():
            with tf.GradientTape() as tape:
                fake_logits, _ = trainer.critic(self._generate(trainer, trainer.generator, b))
                total = losses.wasserstein_generator_loss(fake_logits)
            g_opt.apply_gradients(zip(tape.gradient(total, g_vars), g_vars))
            return {"loss/gen/wasserstein": total, "loss/gen/total": total}

        return generator_update

    def _critic_update(self, trainer: TrainingRun, d_opt, replay: bool):
        tc, b = trainer.cfg.train, trainer.cfg.train.batch_size
        d_vars, s_vars = trainer.critic.trainable_variables, self.solver.trainable_variables

        def critic_update(real, real_labels):
            labels = real_labels
            if replay:  # one batch of replays of every previous task per real batch
                old = tf.stop_gradient(self._generate(trainer, trainer.replay_generator, b))
                old_labels = tf.argmax(self.old_solver(old, training=False), axis=1, output_type=tf.int32)
                real, labels = tf.concat([real, old], 0), tf.concat([real_labels, old_labels], 0)
            fake = tf.stop_gradient(self._generate(trainer, trainer.generator, real.shape[0]))
            alpha = trainer.rng.uniform([real.shape[0], 1, 1, 1])
            with tf.GradientTape() as tape:
                wass, gp, _ = losses.wgan_gp_critic_loss(trainer.critic, real, fake, alpha,
                                                         tc.gp_weight)
                total = wass + gp
            d_opt.apply_gradients(zip(tape.gradient(total, d_vars), d_vars))
            with tf.GradientTape() as tape:
                solver_loss = losses.classification_loss(self.solver(real, training=True), labels)
            self.solver_opt.apply_gradients(zip(tape.gradient(solver_loss, s_vars), s_vars))
            return {"loss/critic/wasserstein": wass, "loss/critic/gp": gp, "loss/critic/total": total,
                    "loss/solver/ce": solver_loss}

        return critic_update
