"""--mixed_precision bf16: bfloat16 dense/conv layers on float32 weights, float32 elsewhere."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from mergan_tf import configs, snapshots
from mergan_tf.models import factory
from test_cli import resolve
from tiny_run import train_two_tasks


def models(dataset, precision, dim):
    cfg = configs.preset_config(dataset, "ra")
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, dim=dim))
    return factory.build_models(cfg, precision)


def rel_rms(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(a ** 2)))


@pytest.mark.parametrize("dataset,dim", [("mnist", 16), ("lsun", 4)])
def test_bf16_models_compute_in_bf16_and_match_float32(dataset, dim):
    g32, d32 = models(dataset, "none", dim)
    g16, d16 = models(dataset, "bf16", dim)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    # Same float32 variables (snapshots interchange); bf16 compute in dense/conv layers;
    # normalisation in float32.
    for model in (g16, d16):
        assert {v.dtype for v in model.weights} == {"float32"}
    kinds = {}
    for layer in g16._flatten_layers() if hasattr(g16, "_flatten_layers") else []:
        kinds.setdefault(type(layer).__name__, set()).add(layer.compute_dtype)
    conv = "FastConv2DTranspose" if dataset == "mnist" else "Conv2D"  # dcgan32: --kernels fast
    norm = "ConditionalBatchNorm" if dataset == "mnist" else "BatchNorm"
    assert kinds[conv] == {"bfloat16"} and kinds["Dense"] == {"bfloat16"}, kinds
    assert kinds[norm] == {"float32"}, kinds

    g16.set_weights(g32.get_weights())
    d16.set_weights(d32.get_weights())
    z = tf.random.normal([32, 128], seed=1)
    c = tf.zeros([32], tf.int32)
    x32, x16 = g32(z, c), g16(z, c)
    assert x16.dtype == tf.float32
    # bfloat16 keeps 8 significant bits (relative rounding 2^-9 = 0.2%); through the
    # model's 4-6 layers the images differ by about 0.5-1% rms (measured). A layer left in
    # float32 would give 0; a wrong cast (e.g. float16 overflow, lost weights) far more.
    assert 1e-4 < rel_rms(x32, x16) < 0.03
    (w32, a32), (w16, a16) = d32(x32), d16(x32)
    assert w16.dtype == tf.float32 and a16.dtype == tf.float32
    assert 1e-5 < rel_rms(w32, w16) < 0.03
    assert 1e-5 < rel_rms(a32, a16) < 0.03


def train(mnist_data, run_dir, precision):
    trainer, scalars = train_two_tasks("ra", mnist_data, run_dir, mixed_precision=precision)
    return trainer, {k: v for k, v in scalars.items() if k[1].startswith("loss/")}


def test_bf16_training_follows_float32_and_snapshots_load_in_float32(mnist_data, tmp_path):
    full, full_scalars = train(mnist_data, tmp_path / "f32", "none")
    half, half_scalars = train(mnist_data, tmp_path / "bf16", "bf16")
    assert full_scalars.keys() == half_scalars.keys()
    # The first step's losses (same weights, same data and noise) agree to bf16 precision:
    # the Wasserstein terms are differences of near-equal critic means, so they get an
    # absolute tolerance on the scale of the critic outputs.
    first = [k for k in full_scalars if k[0] == "1"]
    assert first
    for key in first:
        assert half_scalars[key] == pytest.approx(full_scalars[key], rel=0.03, abs=0.05), key
    # Every logged loss of both tasks (RA's replay alignment in task 2) stays finite and
    # near the float32 run.
    for key, value in full_scalars.items():
        assert np.isfinite(half_scalars[key]), key
        assert half_scalars[key] == pytest.approx(value, rel=0.1, abs=0.5), key
    # The snapshot is float32 weights: evaluation loads it in float32 and gets the images
    # of the bf16 generator it came from, to bf16 precision.
    generator, _ = snapshots.load_generator(str(tmp_path / "bf16"), 2)
    assert generator.fc.compute_dtype == "float32"
    z = tf.random.normal([16, 128], seed=2)
    labels = tf.ones([16], tf.int32)
    assert rel_rms(generator(z, labels), half.generator(z, labels)) < 0.03
    for va, vb in zip(generator.weights, half.generator.weights):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())


@pytest.mark.parametrize("method", ["jtr", "ewc", "dgr"])
def test_bf16_trains_like_float32_for_the_other_methods(method, mnist_data, tmp_path):
    # JTR's replay critic terms, EWC's penalty (its Fisher from bf16 gradients), DGR's
    # unconditional generator and solver: every logged loss of both tasks stays finite and
    # near the float32 run's (same weights, data and noise), as for RA above.
    _, full = train_two_tasks(method, mnist_data, tmp_path / "f32", mixed_precision="none")
    _, half = train_two_tasks(method, mnist_data, tmp_path / "bf16", mixed_precision="bf16")
    full = {k: v for k, v in full.items() if k[1].startswith("loss/")}
    half = {k: v for k, v in half.items() if k[1].startswith("loss/")}
    assert full.keys() == half.keys()
    extra = {"jtr": "loss/critic/jtr", "ewc": "loss/gen/ewc", "dgr": "loss/solver/ce"}[method]
    assert any(k[1] == extra for k in full), extra  # the method's own term is compared too
    for key, value in full.items():
        assert np.isfinite(half[key]), key
        assert half[key] == pytest.approx(value, rel=0.1, abs=0.5), key


def test_mixed_precision_flag_and_refusal():
    assert resolve(tasks=2, mixed_precision="bf16").train.mixed_precision == "bf16"
    assert resolve(tasks=2, mixed_precision=None).train.mixed_precision == "none"
    cfg = configs.preset_config("mnist", "sft")
    with pytest.raises(configs.ConfigError, match="--mixed_precision 'fp16'.*none, bf16"):
        configs.validate(cfg.replace(train=dataclasses.replace(cfg.train, mixed_precision="fp16")))
