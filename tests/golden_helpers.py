"""Regenerates the golden run's parameters and inputs, and loads them into the gan32 port.

The golden outputs (`../shared/golden/*.npz`, README there) come from the authors' release
code (WuChenshen/MeRGAN @ 5285f6b) on parameters set by tflib's numpy initialisers after
`np.random.seed(0)`, plus documented RandomState perturbations, and on RandomState inputs.
This module redraws all of them in numpy (no release code), so the fidelity test needs only
the small committed fixture of reference outputs (`tests/golden/`); where the full files
are present, the test also checks that the redraws are bit-identical to them.

Layouts: the release is NCHW with flat `[B, C*H*W]` images, the port NHWC.
"""

from __future__ import annotations

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE_DIR = os.path.join(HERE, "golden")
# The full golden files: ../shared/golden beside the repository, or $MERGAN_GOLDEN_DIR (a
# git worktree elsewhere has no ../shared).
SHARED_DIR = os.environ.get("MERGAN_GOLDEN_DIR") or os.path.abspath(
    os.path.join(HERE, "..", "..", "shared", "golden"))

DIM = 32          # DIM_G = DIM_D of gan32
Z_DIM = 128
NUM_CLASSES = 10
BATCH = 8
KERNEL = 5
STRIDE = 2


# ------------------------------------------------------------------ tflib's initialisers


def _tflib_uniform(rng: np.random.RandomState, stdev: float, size) -> np.ndarray:
    # Same float64 expression and draw as tflib's `uniform`, then float32.
    return rng.uniform(low=-stdev * np.sqrt(3), high=stdev * np.sqrt(3), size=size).astype("float32")


def _linear(rng, params, name, fan_in, fan_out):
    params[name + ".W"] = _tflib_uniform(rng, np.sqrt(2. / (fan_in + fan_out)), (fan_in, fan_out))
    params[name + ".b"] = np.zeros((fan_out,), "float32")


def _conv(rng, params, name, in_ch, out_ch):
    """tflib Conv2D, he_init, stride 2: Filters HWIO."""
    fan_in = in_ch * KERNEL ** 2
    fan_out = out_ch * KERNEL ** 2 // STRIDE ** 2
    params[name + ".Filters"] = _tflib_uniform(rng, np.sqrt(4. / (fan_in + fan_out)),
                                               (KERNEL, KERNEL, in_ch, out_ch))
    params[name + ".Biases"] = np.zeros(out_ch, "float32")


def _deconv(rng, params, name, in_ch, out_ch):
    """tflib Deconv2D, he_init (stride 2 fixed): Filters [kh, kw, out, in]."""
    fan_in = in_ch * KERNEL ** 2 // STRIDE ** 2
    fan_out = out_ch * KERNEL ** 2
    params[name + ".Filters"] = _tflib_uniform(rng, np.sqrt(4. / (fan_in + fan_out)),
                                               (KERNEL, KERNEL, out_ch, in_ch))
    params[name + ".Biases"] = np.zeros(out_ch, "float32")


def _cond_bn(params, name, channels):
    # No draws; the moving statistics are created but never read.
    params[name + ".offset"] = np.zeros([NUM_CLASSES, channels], "float32")
    params[name + ".scale"] = np.ones([NUM_CLASSES, channels], "float32")
    params[name + ".moving_mean"] = np.zeros([NUM_CLASSES, channels], "float32")
    params[name + ".moving_variance"] = np.ones([NUM_CLASSES, channels], "float32")


def init_params(channels: int) -> dict[str, np.ndarray]:
    """The 30 gan32 parameters as the release initialises them after `np.random.seed(0)`,
    in creation order: the first `Generator('New.', ...)` call, then `Discriminator`."""
    rng = np.random.RandomState(0)
    p: dict[str, np.ndarray] = {}
    g = "New.Generator."
    _linear(rng, p, g + "Input", Z_DIM, 4 * 4 * 4 * DIM)
    _cond_bn(p, g + "BN1", 4 * DIM)
    _deconv(rng, p, g + "2", 4 * DIM, 2 * DIM)
    _cond_bn(p, g + "BN2", 2 * DIM)
    _deconv(rng, p, g + "3", 2 * DIM, DIM)
    _cond_bn(p, g + "BN3", DIM)
    _deconv(rng, p, g + "5", DIM, channels)
    _conv(rng, p, "Discriminator.1", channels, DIM)
    _conv(rng, p, "Discriminator.2", DIM, 2 * DIM)
    _conv(rng, p, "Discriminator.3", 2 * DIM, 4 * DIM)
    _linear(rng, p, "Discriminator.Output", 4 * 4 * 4 * DIM, 1)
    _linear(rng, p, "Discriminator.ACGANOutput", 4 * 4 * 4 * DIM, NUM_CLASSES)
    return p


def perturbed_params(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The "pert" variant: every bias, offset and scale + 0.1 * RandomState(7).randn, one
    stream in creation order; everything else unchanged."""
    rng = np.random.RandomState(7)
    out = dict(params)
    for name in pert_param_names(params):
        out[name] = (params[name] + 0.1 * rng.randn(*params[name].shape)).astype("float32")
    return out


def pert_param_names(params) -> list[str]:
    return [n for n in params if n.endswith((".b", ".Biases", ".offset", ".scale"))]


def old_params(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """replay_c1's `Old.*`: each `New.*` (moving statistics included) + 0.01 *
    RandomState(4).randn, one stream in creation order."""
    rng = np.random.RandomState(4)
    return {"Old." + n[len("New."):]: (v + 0.01 * rng.randn(*v.shape)).astype("float32")
            for n, v in params.items() if n.startswith("New.")}


def gan32_inputs(channels: int) -> dict[str, np.ndarray]:
    """z, labels, x (flat NCHW), alpha and labels_c5 of gan32_c{channels}."""
    return {
        "z": np.random.RandomState(1).randn(BATCH, Z_DIM).astype("float32"),
        "labels": np.array([0, 0, 1, 1, 2, 2, 3, 3], "int32"),
        "x": np.random.RandomState(2).uniform(-1, 1, size=(BATCH, channels * 32 * 32)).astype("float32"),
        "alpha": np.random.RandomState(3).rand(BATCH, 1).astype("float32"),
        "labels_c5": np.full(BATCH, 5, "int32"),
    }


def replay_inputs(num_samples: int = 32) -> dict[str, np.ndarray]:
    """replay_c1's z_i and labels_i for the 2 learned classes."""
    out = {}
    for i, seed in enumerate((5, 6)):
        out[f"z_{i}"] = np.random.RandomState(seed).randn(num_samples, Z_DIM).astype("float32")
        out[f"labels_{i}"] = np.full(num_samples, i, "int32")
    return out


# ------------------------------------------------------------------ layouts and loading


def nchw_flat_to_nhwc(x: np.ndarray, channels: int) -> np.ndarray:
    return np.asarray(x).reshape(-1, channels, 32, 32).transpose(0, 2, 3, 1)


def nhwc_to_nchw_flat(x) -> np.ndarray:
    x = np.asarray(x)
    return x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)


def _chw_to_hwc_columns(w: np.ndarray, channels: int) -> np.ndarray:
    """Columns ordered (c, h, w) -> (h, w, c): the release reshapes Linear's output to
    NCHW [B, C, 4, 4], the port to NHWC [B, 4, 4, C]."""
    lead = w.shape[:-1]
    return w.reshape(lead + (channels, 4, 4)).transpose(
        tuple(range(len(lead))) + (len(lead) + 1, len(lead) + 2, len(lead))).reshape(w.shape)


def _chw_to_hwc_rows(w: np.ndarray, channels: int) -> np.ndarray:
    """Rows ordered (c, h, w) -> (h, w, c): the release flattens NCHW features."""
    return w.reshape(channels, 4, 4, w.shape[-1]).transpose(1, 2, 0, 3).reshape(w.shape)


def load_generator(generator, params: dict[str, np.ndarray], prefix: str = "New.") -> None:
    """Assigns the release's `<prefix>Generator.*` parameters to a dcgan32.Generator."""
    g = prefix + "Generator."
    c = 4 * generator.dim
    generator.fc.kernel.assign(_chw_to_hwc_columns(params[g + "Input.W"], c))
    generator.fc.bias.assign(_chw_to_hwc_columns(params[g + "Input.b"], c))
    for i, (bn, deconv, name) in enumerate(zip(generator.bns, generator.deconvs, ("2", "3", "5"))):
        bn.gamma.assign(params[f"{g}BN{i + 1}.scale"])
        bn.beta.assign(params[f"{g}BN{i + 1}.offset"])
        # tflib's Deconv2D filters are already conv2d_transpose's [kh, kw, out, in].
        deconv.kernel.assign(params[g + name + ".Filters"])
        deconv.bias.assign(params[g + name + ".Biases"])


def load_critic(critic, params: dict[str, np.ndarray]) -> None:
    """Assigns the release's `Discriminator.*` parameters to a dcgan32.Critic."""
    for i, conv in enumerate(critic.convs):
        conv.kernel.assign(params[f"Discriminator.{i + 1}.Filters"])  # HWIO in both
        conv.bias.assign(params[f"Discriminator.{i + 1}.Biases"])
    for head, name in ((critic.wgan_head, "Output"), (critic.ac_head, "ACGANOutput")):
        head.kernel.assign(_chw_to_hwc_rows(params[f"Discriminator.{name}.W"], 4 * critic.dim))
        head.bias.assign(params[f"Discriminator.{name}.b"])


# ------------------------------------------------------------------ the committed fixture

# Reference outputs the test reads (the rest of the shared files is inputs and params,
# which are regenerated above, or diagnostics).
GAN32_KEYS = ("G_out", "G_out_c5", "D_real", "D_real_acgan", "D_fake", "D_fake_acgan",
              "gp", "disc_cost", "gen_cost")
REPLAY_KEYS = ("RA_cost", "RA_costs", "JTR_disc_cost", "JTR_gen_cost", "RA_FACTOR")


def fixture_keys(stem: str) -> list[str]:
    if stem == "replay_c1":
        return list(REPLAY_KEYS)
    return [p + k for p in ("", "pert_") for k in GAN32_KEYS]


def write_fixture(shared_dir: str = SHARED_DIR, out_dir: str = FIXTURE_DIR) -> None:
    """Copies the reference outputs from the full golden files into `tests/golden/`."""
    for stem in ("gan32_c1", "gan32_c3", "replay_c1"):
        f = np.load(os.path.join(shared_dir, stem + ".npz"))
        os.makedirs(os.path.join(out_dir, stem), exist_ok=True)
        for key in fixture_keys(stem):
            np.save(os.path.join(out_dir, stem, key + ".npy"), f[key], allow_pickle=False)


def load_fixture(stem: str) -> dict[str, np.ndarray]:
    return {k: np.load(os.path.join(FIXTURE_DIR, stem, k + ".npy"), allow_pickle=False)
            for k in fixture_keys(stem)}


if __name__ == "__main__":
    write_fixture()
