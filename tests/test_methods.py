"""mergan_tf.methods on their own: the hook contract of each method, on tiny models.

The trainer calls a step's hooks with `replay=None` before any class is learned, and with
`replay.old=None` in an update whose losses do not read Old (`old_in_*_update`).
"""

import types

import numpy as np
import pytest
import tensorflow as tf

from mergan_tf import configs
from mergan_tf.configs import MethodConfig
from mergan_tf.methods import METHOD_CLASSES, ReplayBatch, make_method
from mergan_tf.models import dcgan32

DIM, Z_DIM, PER_CLASS = 4, 128, 3


@pytest.fixture(scope="module")
def models():
    """New (the generator in training), Old (another generator) and a critic, at DIM 4."""
    new = dcgan32.Generator(1, DIM, Z_DIM, 10, name="generator")
    old = dcgan32.Generator(1, DIM, Z_DIM, 10, name="replay_generator")
    critic = dcgan32.Critic(1, DIM, 10, name="critic")
    z = tf.zeros([2, Z_DIM])
    for model in (new, old):
        model(z, tf.zeros([2], tf.int32))
    critic(tf.zeros([2, 32, 32, 1]))
    return new, old, critic


def replay_batch(old_generator, classes=(0, 1), with_old=True, seed=0):
    """Replays of `classes` (PER_CLASS each, one class per group), as the trainer builds them."""
    z = tf.random.stateless_normal([len(classes) * PER_CLASS, Z_DIM], [seed, 1])
    labels = tf.constant(np.repeat(classes, PER_CLASS), tf.int32)
    old = (tf.stop_gradient(old_generator(z, labels, num_groups=len(classes)))
           if with_old else None)
    return ReplayBatch(z=z, labels=labels, old=old, num_classes=len(classes))


def value(terms, key):
    assert list(terms) == [key]
    return float(terms[key])


def test_make_method_by_name():
    for name, cls in METHOD_CLASSES.items():
        method = make_method(MethodConfig(name=name))
        assert type(method) is cls and method.name == name
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        make_method(MethodConfig(name="magic"))


def test_the_registry_and_the_configs_name_the_same_methods():
    # configs.METHODS (the command line's choices) stays free of imports of the methods.
    assert sorted(configs.METHODS) == sorted(METHOD_CLASSES)


def test_tasks_one_class_each_except_joint_training():
    for name in ("sft", "ra", "jtr", "ewc", "dgr"):
        assert make_method(MethodConfig(name=name)).tasks([3, 1, 4]) == [(3,), (1,), (4,)]
    assert make_method(MethodConfig(name="jt")).tasks([3, 1, 4]) == [(3, 1, 4)]


def test_which_update_reads_old():
    flags = {name: (cls.needs_replay, cls.old_in_generator_update, cls.old_in_critic_update)
             for name, cls in METHOD_CLASSES.items()}
    assert flags == {"sft": (False, False, False), "jt": (False, False, False),
                     "ewc": (False, False, False), "dgr": (False, False, False),
                     "ra": (True, True, False), "jtr": (True, False, True)}


def test_methods_without_extra_terms_add_none(models):
    new, old, critic = models
    for name in ("sft", "jt"):
        method = make_method(MethodConfig(name=name))
        for replay in (None, replay_batch(old)):
            assert method.generator_extra_loss(new, critic, replay) == {}
            assert method.critic_extra_loss(new, critic, replay) == {}


def test_replay_methods_restore_old_from_the_previous_task_only():
    restored = []
    trainer = types.SimpleNamespace(restore_replay_generator=restored.append)
    for name in ("ra", "jtr"):
        method = make_method(MethodConfig(name=name))
        method.before_task(trainer, 0)  # task 1: nothing to replay
        method.before_task(trainer, 3)  # task 4: the snapshot after task 3 (index 2)
    assert restored == [2, 2]


def test_replay_alignment_is_zero_on_task_1_and_after_matches_eq13(models):
    new, old, critic = models
    ra = make_method(MethodConfig(name="ra", ra_factor=1e-2))
    assert value(ra.generator_extra_loss(new, critic, None), "loss/gen/replay_alignment") == 0.0
    # Old = New: nothing to align.
    same = replay_batch(new)
    assert value(ra.generator_extra_loss(new, critic, same),
                 "loss/gen/replay_alignment") == pytest.approx(0.0, abs=1e-9)
    replay = replay_batch(old)
    got = value(ra.generator_extra_loss(new, critic, replay), "loss/gen/replay_alignment")
    diff = replay.old.numpy() - new(replay.z, replay.labels, num_groups=2).numpy()
    assert got > 0
    assert got == pytest.approx(1e-2 * 0.5 * np.sum(diff ** 2) / 2, rel=1e-5)  # / t = 2
    assert ra.critic_extra_loss(new, critic, replay_batch(old, with_old=False)) == {}


def test_replay_alignment_gradient_reaches_the_generator_only(models):
    new, old, critic = models
    ra = make_method(MethodConfig(name="ra"))
    replay = replay_batch(old)
    watched = new.trainable_variables + old.trainable_variables + critic.trainable_variables
    with tf.GradientTape() as tape:
        loss = ra.generator_extra_loss(new, critic, replay)["loss/gen/replay_alignment"]
    grads = tape.gradient(loss, watched)
    n_new = len(new.trainable_variables)
    assert all(g is not None for g in grads[:n_new])
    assert any(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads[:n_new])
    assert all(g is None for g in grads[n_new:])


def test_jtr_is_zero_on_task_1_and_only_its_critic_term_reads_old(models):
    new, old, critic = models
    jtr = make_method(MethodConfig(name="jtr"))
    assert value(jtr.generator_extra_loss(new, critic, None), "loss/gen/jtr") == 0.0
    assert value(jtr.critic_extra_loss(new, critic, None), "loss/critic/jtr") == 0.0
    replay = replay_batch(old)
    # The generator update gets no Old (old_in_generator_update is False) and needs none.
    gen = value(jtr.generator_extra_loss(new, critic, replay_batch(old, with_old=False)),
                "loss/gen/jtr")
    assert gen != 0.0
    assert gen == pytest.approx(value(jtr.generator_extra_loss(new, critic, replay),
                                      "loss/gen/jtr"), rel=1e-6)
    critic_term = value(jtr.critic_extra_loss(new, critic, replay), "loss/critic/jtr")
    assert critic_term != 0.0
    other_old = replay_batch(new)  # the same z and labels, other Old images
    assert value(jtr.critic_extra_loss(new, critic, other_old), "loss/critic/jtr") != \
        pytest.approx(critic_term, rel=1e-6)
    # The critic term trains the critic only: New's replays enter it without gradient.
    with tf.GradientTape() as tape:
        loss = jtr.critic_extra_loss(new, critic, replay)["loss/critic/jtr"]
    grads = tape.gradient(loss, new.trainable_variables + critic.trainable_variables)
    assert all(g is None for g in grads[:len(new.trainable_variables)])
    assert all(g is not None for g in grads[len(new.trainable_variables):])


def test_ewc_is_zero_until_a_fisher_exists(models):
    new, _, critic = models
    ewc = make_method(MethodConfig(name="ewc", ewc_lambda=2.0))
    ewc.setup(types.SimpleNamespace(generator=new))
    assert set(ewc.checkpoint_objects()) == {"ewc_fisher", "ewc_anchor"}
    assert value(ewc.generator_extra_loss(new, critic, None), "loss/gen/ewc") == 0.0
    # A Fisher of ones and the generator moved by 0.1 from its anchor: lambda/2 * sum 0.01.
    for fisher in ewc.fisher:
        fisher.assign(tf.ones_like(fisher))
    saved = [v.numpy() for v in new.trainable_variables]
    try:
        for v in new.trainable_variables:
            v.assign_add(0.1 * tf.ones_like(v))
        size = sum(int(np.prod(v.shape)) for v in new.trainable_variables)
        assert value(ewc.generator_extra_loss(new, critic, None), "loss/gen/ewc") == \
            pytest.approx(2.0 / 2 * 0.01 * size, rel=1e-4)
    finally:
        for v, s in zip(new.trainable_variables, saved):
            v.assign(s)
