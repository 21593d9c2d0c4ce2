"""Fidelity to the authors' release: the gan32 models and losses against its own outputs.

The references are outputs of the release's network code and `mergan.py`'s loss
expressions (WuChenshen/MeRGAN @ 5285f6b, run under tf.compat.v1) on fixed parameters,
noise and alpha; `tests/golden/README.md` gives their provenance. The parameters and inputs
are redrawn in numpy (`golden_helpers`), loaded into the port's models, and the port's own
models and loss functions must reproduce the references to 1e-4 relative at the float32
policy. A batch-norm epsilon of 1e-3 instead of 1e-5, or a transposed convolution
aligned one pixel off, fails this by orders of magnitude.

Where the full golden files are present (`../shared/golden`, or $MERGAN_GOLDEN_DIR), two
more tests check that the redrawn parameters and inputs and the committed fixture are
bit-identical to them.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import golden_helpers as gh
from mergan_tf import losses, methods
from mergan_tf.configs import preset_config
from mergan_tf.models.dcgan32 import Critic, Generator

RTOL = 1e-4
DATASET = {1: "mnist", 3: "svhn"}


@pytest.fixture(autouse=True, scope="module")
def float32_policy():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy(previous)


def rel_err(got, ref) -> float:
    """max |got - ref| / max |ref|: relative to the reference's scale (not elementwise),
    so that entries near zero (pixels, logits) do not dominate."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


def assert_all_close(got: dict, ref: dict) -> dict:
    errors = {k: rel_err(got[k], ref[k]) for k in got}
    bad = {k: e for k, e in errors.items() if not e <= RTOL}
    assert not bad, "relative error > %g: %s" % (
        RTOL, ", ".join(f"{k} {e:.1e}" for k, e in bad.items()))
    return errors


def gan32_outputs(channels: int, params: dict, inputs: dict) -> dict:
    """The release's gan32 keys computed by the port (images back to flat NCHW)."""
    cfg = preset_config(DATASET[channels]).train
    g, d = Generator(channels), Critic(channels)
    gh.load_generator(g, params)
    gh.load_critic(d, params)
    z, labels = tf.constant(inputs["z"]), tf.constant(inputs["labels"])
    real = tf.constant(gh.nchw_flat_to_nhwc(inputs["x"], channels))
    fake = g(z, labels)
    fake_c5 = g(z, tf.constant(inputs["labels_c5"]))
    real_logits, real_class_logits = d(real)
    fake_logits, fake_class_logits = d(fake)
    alpha = tf.reshape(tf.constant(inputs["alpha"]), [-1, 1, 1, 1])
    gp = losses.gradient_penalty(lambda x: d(x)[0], real, fake, alpha)
    disc_cost = (losses.wasserstein_critic_loss(real_logits, fake_logits) + cfg.gp_weight * gp
                 + cfg.acgan_scale * losses.classification_loss(real_class_logits, labels))
    gen_cost = (losses.wasserstein_generator_loss(fake_logits)
                + cfg.acgan_scale_g * losses.classification_loss(fake_class_logits, labels))
    return {"G_out": gh.nhwc_to_nchw_flat(fake), "G_out_c5": gh.nhwc_to_nchw_flat(fake_c5),
            "D_real": real_logits, "D_real_acgan": real_class_logits,
            "D_fake": fake_logits, "D_fake_acgan": fake_class_logits,
            "gp": gp, "disc_cost": disc_cost, "gen_cost": gen_cost}


@pytest.mark.parametrize("variant", ["init", "pert"])
@pytest.mark.parametrize("channels", [1, 3])
def test_gan32_models_and_costs_match_the_release(channels, variant):
    params = gh.init_params(channels)
    prefix = ""
    if variant == "pert":  # non-zero biases and per-class BN tables: labels matter
        params, prefix = gh.perturbed_params(params), "pert_"
    ref = gh.load_fixture(f"gan32_c{channels}")
    got = gan32_outputs(channels, params, gh.gan32_inputs(channels))
    assert_all_close(got, {k: ref[prefix + k] for k in got})


def test_replay_alignment_and_jtr_costs_match_the_release():
    """mergan.py's RA and JTR costs for 2 learned classes of 32 replays (MNIST settings)."""
    ref = gh.load_fixture("replay_c1")
    new_params = gh.init_params(1)
    old_params = gh.old_params(new_params)
    new, old, critic = Generator(1), Generator(1), Critic(1)
    gh.load_generator(new, new_params)
    gh.load_generator(old, old_params, prefix="Old.")
    gh.load_critic(critic, new_params)
    ra_cfg = preset_config("mnist", "ra").method
    jtr_cfg = preset_config("mnist", "jtr").method
    assert np.float32(ra_cfg.ra_factor) == ref["RA_FACTOR"]

    inputs = gh.replay_inputs()
    z = tf.constant(np.concatenate([inputs["z_0"], inputs["z_1"]]))
    labels = tf.constant(np.concatenate([inputs["labels_0"], inputs["labels_1"]]))
    t = 2  # each class is its own batch-norm group, as the release's one call per class
    old_imgs, new_imgs = old(z, labels, num_groups=t), new(z, labels, num_groups=t)
    old_logits, old_class_logits = critic(old_imgs)
    new_logits, new_class_logits = critic(new_imgs)
    got = {
        "RA_costs": [losses.l2_loss(o - n) for o, n in zip(tf.split(old_imgs, t), tf.split(new_imgs, t))],
        "RA_cost": losses.replay_alignment_loss(old_imgs, new_imgs, t, ra_cfg.ra_factor,
                                                ra_cfg.ra_divide_by_t),
        "JTR_disc_cost": losses.jtr_critic_loss(old_logits, new_logits, old_class_logits, labels,
                                                t, jtr_cfg.jtr_divide_by_t),
        "JTR_gen_cost": losses.jtr_generator_loss(new_logits, new_class_logits, labels, t,
                                                  jtr_cfg.jtr_divide_by_t),
    }
    assert_all_close(got, ref)

    # The same terms through the method hooks the trainer calls.
    replay = methods.ReplayBatch(z=z, labels=labels, old=old_imgs, num_classes=t)
    ra, jtr = methods.ReplayAlignment(ra_cfg), methods.JointTrainingWithReplay(jtr_cfg)
    hooks = {
        "RA_cost": ra.generator_extra_loss(new, critic, replay)["loss/gen/replay_alignment"],
        "JTR_disc_cost": jtr.critic_extra_loss(new, critic, replay)["loss/critic/jtr"],
        "JTR_gen_cost": jtr.generator_extra_loss(new, critic, replay)["loss/gen/jtr"],
    }
    assert_all_close(hooks, ref)


# ------------------------------------------------- against the full golden files, if present

needs_shared = pytest.mark.skipif(
    not os.path.exists(os.path.join(gh.SHARED_DIR, "replay_c1.npz")),
    reason=f"full golden files not found at {gh.SHARED_DIR} (set MERGAN_GOLDEN_DIR); "
           "the fidelity tests above run from the committed fixture")


def assert_bit_identical(got: dict, full, keys) -> None:
    for k in keys:
        assert got[k].dtype == full[k].dtype and np.array_equal(got[k], full[k]), k


@needs_shared
@pytest.mark.parametrize("channels", [1, 3])
def test_regenerated_gan32_params_and_inputs_are_the_golden_ones(channels):
    full = np.load(os.path.join(gh.SHARED_DIR, f"gan32_c{channels}.npz"))
    params = gh.init_params(channels)
    assert list(params) == list(full["param_names"])  # creation order
    assert_bit_identical(params, full, params)
    pert = gh.perturbed_params(params)
    names = gh.pert_param_names(params)
    assert names == list(full["pert_param_names"])
    assert_bit_identical({"pert/" + n: pert[n] for n in names}, full, ["pert/" + n for n in names])
    inputs = gh.gan32_inputs(channels)
    assert_bit_identical(inputs, full, inputs)


@needs_shared
def test_regenerated_replay_params_and_inputs_are_the_golden_ones():
    full = np.load(os.path.join(gh.SHARED_DIR, "replay_c1.npz"))
    params = gh.init_params(1)
    params.update(gh.old_params(params))
    assert list(params) == list(full["param_names"])
    assert_bit_identical(params, full, params)
    inputs = gh.replay_inputs(int(full["num_samples"]))
    assert_bit_identical(inputs, full, inputs)


@needs_shared
@pytest.mark.parametrize("stem", ["gan32_c1", "gan32_c3", "replay_c1"])
def test_committed_fixture_is_a_copy_of_the_golden_files(stem):
    full = np.load(os.path.join(gh.SHARED_DIR, stem + ".npz"))
    fixture = gh.load_fixture(stem)
    assert_bit_identical(fixture, full, fixture)
