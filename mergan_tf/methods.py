"""Continual-learning methods as small hook objects (SFT, RA, JTR).

The task loop lives in `mergan_tf.trainer`; a method only answers hooks. `before_task` and
`after_task` run eagerly between tasks; `generator_extra_loss` and `critic_extra_loss` run
inside the compiled steps and use tensor ops only. The mathematics is in `losses.py`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Optional, Sequence

import tensorflow as tf

import keras

from mergan_tf import dgr, distribute, ewc, losses, sampling, snapshots
from mergan_tf.configs import MethodConfig

if TYPE_CHECKING:  # pragma: no cover
    from mergan_tf.trainer import Trainer


@dataclasses.dataclass(frozen=True)
class ReplayBatch:
    """Replays of the previous classes for one step.

    Attributes:
      z: noise [t * n, z_dim], shared by Old and New (replay alignment needs the same z).
      labels: int32 [t * n], t consecutive groups of n, one previous class each.
      old: Old(z, c), the frozen replay generator's images (no gradient), or None in a step
        whose losses do not read it (see `Method.old_in_generator_update`).
      num_classes: t, the number of previous classes; each is its own batch-norm group.
    """

    z: tf.Tensor
    labels: tf.Tensor
    old: Optional[tf.Tensor]
    num_classes: int


class Method:
    """Sequential fine-tuning (SFT): no extra term. Base class of the other methods.

    Attributes:
      needs_replay: the trainer builds a ReplayBatch for every step after task 1.
    """

    name = "sft"
    needs_replay = False
    conditional = True  # the generator takes a class (False: DGR's unconditional one)
    # Whether the generator / critic update's losses read Old(z, c): a step that does not
    # still draws the replay noise (same random stream) but builds no Old forward.
    old_in_generator_update = False
    old_in_critic_update = False

    def __init__(self, config: MethodConfig):
        self.config = config

    @property
    def batch_regime(self) -> str:
        """How the generator is sampled ("class" or "mixed", see `mergan_tf.sampling`)."""
        return sampling.regime_of(self.name)

    def tasks(self, classes: Sequence[int]) -> list[tuple[int, ...]]:
        """The classes of each task: one class per task (the sequential setting)."""
        return [(int(c),) for c in classes]

    def setup(self, trainer: "Trainer") -> None:
        """Runs once when the trainer is built: create any state to checkpoint."""

    def checkpoint_objects(self) -> dict:
        """Trackable method state saved in task snapshots and training checkpoints."""
        return {}

    def before_task(self, trainer: "Trainer", task_index: int) -> None:
        """Runs eagerly before the task's first iteration."""

    def build_updates(self, trainer: "Trainer", task_index: int, g_opt, d_opt):
        """The task's (generator_update, critic_update); None: the trainer's own, which
        call `generator_extra_loss` / `critic_extra_loss`."""
        return None

    def sampler(self, trainer: "Trainer"):
        """`sample_fn(z, labels)` for sample grids and the forgetting monitor."""
        return trainer._sample

    def after_task(self, trainer: "Trainer", task_index: int) -> None:
        """Runs eagerly after the task's last iteration, before its snapshot is written
        (so state computed here is saved with the snapshot)."""

    def generator_extra_loss(self, generator, critic,
                             replay: Optional[ReplayBatch]) -> dict[str, tf.Tensor]:
        """Extra generator-loss terms, keyed by log name (tensor ops only)."""
        return {}

    def critic_extra_loss(self, generator, critic,
                          replay: Optional[ReplayBatch]) -> dict[str, tf.Tensor]:
        """Extra critic-loss terms, keyed by log name (tensor ops only)."""
        return {}


class JointTraining(Method):
    """JT, the non-sequential upper bound (release `joint.py`): one task with every class
    of the sequence; real batches mix the classes and fake labels are uniform over them."""

    name = "jt"

    def tasks(self, classes: Sequence[int]) -> list[tuple[int, ...]]:
        return [tuple(int(c) for c in classes)]


class ElasticWeightConsolidation(Method):
    """EWC for GANs (paper Eq. 9, Seff et al. 2017): a quadratic penalty that keeps the
    generator near its weights at the end of the previous task, weighted by a diagonal
    Fisher estimated after each task (see `mergan_tf.ewc` for the estimator)."""

    name = "ewc"

    def __init__(self, config: MethodConfig):
        super().__init__(config)
        self.fisher: list[tf.Variable] = []
        self.anchor: list[tf.Variable] = []
        self._fisher_fn = None

    def setup(self, trainer: "Trainer") -> None:
        params = trainer.generator.trainable_variables
        self.fisher = [tf.Variable(tf.zeros_like(p), trainable=False, name="ewc_fisher") for p in params]
        self.anchor = [tf.Variable(p, trainable=False, name="ewc_anchor") for p in params]

    def checkpoint_objects(self) -> dict:
        return {"ewc_fisher": self.fisher, "ewc_anchor": self.anchor}

    def generator_extra_loss(self, generator, critic, replay):
        # Zero on task 1: the Fisher is still all zeros.
        return {"loss/gen/ewc": losses.ewc_penalty(generator.trainable_variables, self.anchor,
                                                   self.fisher, self.config.ewc_lambda)}

    def after_task(self, trainer: "Trainer", task_index: int) -> None:
        if self._fisher_fn is None:
            self._fisher_fn = ewc.make_fisher_fn(trainer.generator, trainer.critic)
        fisher = ewc.estimate_fisher(trainer.generator, trainer.critic,
                                     trainer.learned_classes(task_index), self.config.ewc_samples,
                                     trainer.rng, fisher_fn=self._fisher_fn)
        for var, new in zip(self.fisher, fisher):
            var.assign(var + new if self.config.ewc_accumulate else new)
        for var, param in zip(self.anchor, trainer.generator.trainable_variables):
            var.assign(param)


class ReplayMethod(Method):
    """A method that replays the previous generator (MeRGAN): restores and freezes it."""

    needs_replay = True

    def before_task(self, trainer: "Trainer", task_index: int) -> None:
        if task_index > 0:
            trainer.restore_replay_generator(task_index - 1)

    @staticmethod
    def new_replays(generator, replay: ReplayBatch) -> tf.Tensor:
        """New(z, c) for the replay batch's z and c, each class its own BN group."""
        return generator(replay.z, replay.labels, num_groups=replay.num_classes)


class ReplayAlignment(ReplayMethod):
    """MeRGAN-RA (paper section 3.2, Eq. 13): align New(z, c) with Old(z, c)."""

    name = "ra"
    old_in_generator_update = True

    def generator_extra_loss(self, generator, critic, replay):
        if replay is None:
            return {"loss/gen/replay_alignment": tf.constant(0.0)}
        new = self.new_replays(generator, replay)
        # A sum over the replays: with R replicas each holds 1/R of them, so R times its
        # share is its estimate of the whole (the replicas' estimates are averaged).
        loss = losses.replay_alignment_loss(replay.old, new, replay.num_classes,
                                            self.config.ra_factor, self.config.ra_divide_by_t)
        return {"loss/gen/replay_alignment": distribute.num_replicas_in_sync() * loss}


class JointTrainingWithReplay(ReplayMethod):
    """MeRGAN-JTR (paper section 3.1): Old replays as real, New replays as fake."""

    name = "jtr"
    old_in_critic_update = True

    def generator_extra_loss(self, generator, critic, replay):
        if replay is None:
            return {"loss/gen/jtr": tf.constant(0.0)}
        new_logits, new_class_logits = critic(self.new_replays(generator, replay))
        return {"loss/gen/jtr": losses.jtr_generator_loss(
            new_logits, new_class_logits, replay.labels, replay.num_classes,
            self.config.jtr_divide_by_t)}

    def critic_extra_loss(self, generator, critic, replay):
        if replay is None:
            return {"loss/critic/jtr": tf.constant(0.0)}
        new = tf.stop_gradient(self.new_replays(generator, replay))
        # The critic has no batch-dependent layer: one call on [old; new] equals two calls.
        logits, class_logits = critic(tf.concat([replay.old, new], axis=0))
        old_logits, new_logits = tf.split(logits, 2)
        old_class_logits, _ = tf.split(class_logits, 2)
        return {"loss/critic/jtr": losses.jtr_critic_loss(
            old_logits, new_logits, old_class_logits, replay.labels, replay.num_classes,
            self.config.jtr_divide_by_t)}


class DeepGenerativeReplay(Method):
    """DGR (Shin et al. 2017), the paper's baseline: an unconditional WGAN-GP generator and
    a solver classifier. In task t the critic sees the real images of the class plus one
    batch of replays of the previous tasks from the frozen previous generator; the solver
    learns the real images (their labels) plus those replays labelled by the frozen
    previous solver. Class-conditional samples come from `dgr.SolverFilteredSampler`.
    """

    name = "dgr"
    conditional = False

    def setup(self, trainer: "Trainer") -> None:
        from mergan_tf.evaluation import classifiers
        m = trainer.cfg.model
        arch = classifiers.default_arch(trainer.cfg.data.dataset, m.channels)
        shape = (m.image_size, m.image_size, m.channels)
        self.solver = classifiers.build_classifier(arch, shape, m.num_label_slots)
        self.old_solver = classifiers.build_classifier(arch, shape, m.num_label_slots)
        self.solver_opt = keras.optimizers.Adam(self.config.dgr_solver_lr)
        self.solver_opt.build(self.solver.trainable_variables)
        self._sampler = dgr.SolverFilteredSampler(trainer.generator, self.solver, seed=trainer.cfg.seed)

    def checkpoint_objects(self) -> dict:
        # Lists of variables: tracked by position, whatever Keras names its layers.
        return {"solver": list(self.solver.weights), "solver_opt": self.solver_opt}

    def before_task(self, trainer: "Trainer", task_index: int) -> None:
        if task_index > 0:
            number = trainer.snapshot_number(task_index - 1)
            snapshots.restore_into(trainer.run_dir, number, generator=trainer.replay_generator,
                                   solver=list(self.old_solver.weights))
            trainer.replay_generator.trainable = False

    def sampler(self, trainer: "Trainer"):
        return self._sampler

    def build_updates(self, trainer: "Trainer", task_index: int, g_opt, d_opt):
        """Generator, critic and solver updates of DGR (the critic update also trains the
        solver on the same real batch and a fresh replay batch)."""
        tc, b = trainer.cfg.train, trainer.cfg.train.batch_size
        z_dim, replay = trainer.cfg.model.z_dim, task_index > 0
        g_vars, d_vars = trainer.generator.trainable_variables, trainer.critic.trainable_variables
        s_vars = self.solver.trainable_variables
        g_opt.build(g_vars)
        d_opt.build(d_vars)

        def generate(model, n):
            return model(trainer.rng.normal([n, z_dim]), tf.zeros([n], tf.int32))

        def generator_update():
            with tf.GradientTape() as tape:
                fake_logits, _ = trainer.critic(generate(trainer.generator, b))
                total = losses.wasserstein_generator_loss(fake_logits)
            g_opt.apply_gradients(zip(tape.gradient(total, g_vars), g_vars))
            return {"loss/gen/wasserstein": total, "loss/gen/total": total}

        def critic_update(real, real_labels):
            labels = real_labels
            if replay:  # one batch of replays of every previous task per real batch
                old = tf.stop_gradient(generate(trainer.replay_generator, b))
                old_labels = tf.argmax(self.old_solver(old, training=False), axis=1, output_type=tf.int32)
                real, labels = tf.concat([real, old], 0), tf.concat([real_labels, old_labels], 0)
            n = tf.shape(real)[0]
            fake = tf.stop_gradient(generate(trainer.generator, real.shape[0]))
            alpha = trainer.rng.uniform([real.shape[0], 1, 1, 1])
            with tf.GradientTape() as tape:
                logits, _ = trainer.critic(tf.concat([real, fake], 0))
                wass = losses.wasserstein_critic_loss(logits[:n], logits[n:])
                gp = tc.gp_weight * losses.gradient_penalty(
                    lambda x: trainer.critic(x)[0], real, fake, alpha)
                total = wass + gp
            d_opt.apply_gradients(zip(tape.gradient(total, d_vars), d_vars))
            with tf.GradientTape() as tape:
                solver_loss = losses.classification_loss(self.solver(real, training=True), labels)
            self.solver_opt.apply_gradients(zip(tape.gradient(solver_loss, s_vars), s_vars))
            return {"loss/critic/wasserstein": wass, "loss/critic/gp": gp, "loss/critic/total": total,
                    "loss/solver/ce": solver_loss}

        return generator_update, critic_update


METHOD_CLASSES = {cls.name: cls for cls in (Method, JointTraining, ElasticWeightConsolidation,
                                             ReplayAlignment, JointTrainingWithReplay,
                                             DeepGenerativeReplay)}


def make_method(config: MethodConfig) -> Method:
    """The method object for `config.name`."""
    if config.name not in METHOD_CLASSES:
        raise ValueError(f"unknown method {config.name!r}; choose one of {sorted(METHOD_CLASSES)}")
    return METHOD_CLASSES[config.name](config)
