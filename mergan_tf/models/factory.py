"""The model factory: a run's generator and critic from its configuration.

`build_models` picks the architecture (`dcgan32` for MNIST/SVHN, `resnet64` for LSUN),
DGR's unconditional generator, and the layers' precision (`--mixed_precision`). The
trainer, snapshot loading, export and the release import all build their models here.
"""

from __future__ import annotations

import contextlib
from typing import Optional

import keras

from mergan_tf.configs import ConfigError, RunConfig
from mergan_tf.models import dcgan32, resnet64

# configs.ARCHS -> the module of that architecture (tests/test_models.py checks they agree).
MODEL_MODULES = {"dcgan32": dcgan32, "resnet64": resnet64}

# configs.PRECISIONS (--mixed_precision) -> the Keras dtype policy the models' layers are
# built with.
DTYPE_POLICIES = {"none": "float32", "bf16": "mixed_bfloat16"}


@contextlib.contextmanager
def dtype_policy(name: str):
    """Layers created inside use the Keras dtype policy `name`; the global policy is
    restored afterwards (a layer keeps the policy it was created with)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_models(cfg: RunConfig, mixed_precision: Optional[str] = None
                 ) -> tuple[keras.Model, keras.Model]:
    """Fresh generator and critic of the run's architecture, `cfg.model.arch` (dcgan32 or
    resnet64). DGR's generator is unconditional: one label slot that every sample uses
    (one conditional-BN row for dcgan32, a constant one-hot for resnet64).

    `mixed_precision` ("none" or "bf16"; default "none", float32) sets the precision of the
    dense and convolution layers; the trainer passes the run's `--mixed_precision`, while
    sampling and evaluation load snapshots (float32 weights either way) in float32.
    The normalisation layers always compute in float32 and the models return float32.

    Raises:
      ConfigError: an architecture or precision this version does not know.
    """
    m = cfg.model
    if m.arch not in MODEL_MODULES:
        raise ConfigError(f"unknown model arch {m.arch!r} in the config; choose one of "
                          f"{sorted(MODEL_MODULES)}")
    precision = mixed_precision or "none"
    if precision not in DTYPE_POLICIES:
        raise ConfigError(f"unknown mixed precision {precision!r}; choose one of "
                          f"{sorted(DTYPE_POLICIES)}")
    models = MODEL_MODULES[m.arch]
    generator_classes = 1 if cfg.method.name == "dgr" else m.num_label_slots
    options = {"kernels": m.kernels} if m.arch == "dcgan32" else {}
    with dtype_policy(DTYPE_POLICIES[precision]):
        return (models.Generator(m.channels, m.dim, m.z_dim, generator_classes, name="generator",
                                 **(dict(options, deconv=m.deconv) if options else {})),
                models.Critic(m.channels, m.dim, m.num_label_slots, name="critic", **options))
