"""A numpy transcription, in the release's NCHW layout, of its gan32 and gan64 networks.

Written from the layer semantics in `../shared/golden/README.md` (section 4) and
ORIGINAL_RELEASE.md, independently of TensorFlow's layouts: the tests compare what
`mergan_tf.release` imports (NHWC) against it on weights they make themselves. Images go
in and out flat NCHW [N, C*H*W], as in the release.
"""

from __future__ import annotations

import math

import numpy as np


def conv2d(x, filters, biases=None, stride=1):
    """TF 'SAME' conv of NCHW `x` with HWIO `filters`."""
    n, c, h, w = x.shape
    k, out_h, out_w = filters.shape[0], math.ceil(h / stride), math.ceil(w / stride)
    pad_h, pad_w = max((out_h - 1) * stride + k - h, 0), max((out_w - 1) * stride + k - w, 0)
    xp = np.pad(x, ((0, 0), (0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)))
    out = np.zeros((n, filters.shape[3], out_h, out_w), np.float64)
    for ky in range(k):
        for kx in range(k):
            patch = xp[:, :, ky:ky + stride * out_h:stride, kx:kx + stride * out_w:stride]
            out += np.einsum("nchw,co->nohw", patch, filters[ky, kx])
    return out if biases is None else out + biases[None, :, None, None]


def deconv2d(x, filters, biases):
    """TF 'SAME' stride-2 transposed conv of NCHW `x`, filters [k, k, out, in], as a scatter."""
    n, c, h, w = x.shape
    k = filters.shape[0]
    before = max((h - 1) * 2 + k - 2 * h, 0) // 2
    out = np.zeros((n, filters.shape[2], 2 * h + k, 2 * w + k), np.float64)
    for ky in range(k):
        for kx in range(k):
            contrib = np.einsum("nchw,oc->nohw", x, filters[ky, kx])
            out[:, :, ky:ky + 2 * h:2, kx:kx + 2 * w:2] += contrib
    out = out[:, :, before:before + 2 * h, before:before + 2 * w]
    return out + biases[None, :, None, None]


def linear(x, p, name):
    return x @ p[name + ".W"] + p[name + ".b"]


def batchnorm(x, scale, offset):
    """Batch statistics over (N, H, W), biased variance, eps 1e-5; scale/offset [N or 1, C]."""
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * scale[:, :, None, None] + offset[:, :, None, None]


def layernorm(x, scale, offset):
    """Per-sample statistics over (C, H, W), eps 1e-5; per-channel scale/offset."""
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = x.var(axis=(1, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * scale[None, :, None, None] + offset[None, :, None, None]


def relu(x):
    return np.maximum(x, 0.0)


def lrelu(x):
    return np.maximum(0.2 * x, x)


def mean_pool(x):
    return (x[:, :, ::2, ::2] + x[:, :, 1::2, ::2] + x[:, :, ::2, 1::2] + x[:, :, 1::2, 1::2]) / 4.0


def upsample(x):
    return x.repeat(2, axis=2).repeat(2, axis=3)


def gan32_generator(p, z, labels, dim, channels, prefix="New."):
    g = prefix + "Generator."
    x = linear(z, p, g + "Input").reshape(len(z), 4 * dim, 4, 4)
    for bn, deconv in (("BN1", "2"), ("BN2", "3"), ("BN3", "5")):
        x = relu(batchnorm(x, p[g + bn + ".scale"][labels], p[g + bn + ".offset"][labels]))
        x = deconv2d(x, p[g + deconv + ".Filters"], p[g + deconv + ".Biases"])
    return np.tanh(x).reshape(len(z), -1)


def gan32_critic(p, images, dim, channels):
    x = images.reshape(len(images), channels, 32, 32)
    for i in (1, 2, 3):
        x = lrelu(conv2d(x, p[f"Discriminator.{i}.Filters"], p[f"Discriminator.{i}.Biases"], 2))
    x = x.reshape(len(images), -1)
    return linear(x, p, "Discriminator.Output")[:, 0], linear(x, p, "Discriminator.ACGANOutput")


def _bn(p, name, x):
    return batchnorm(x, p[name + ".scale"][None], p[name + ".offset"][None])


def gan64_generator(p, z, labels, dim, prefix="New."):
    g = prefix + "Generator."
    x = np.concatenate([z, np.eye(10)[labels]], axis=1)
    x = linear(x, p, g + "Input").reshape(len(z), 8 * dim, 4, 4)
    for i in range(1, 5):
        r = f"{g}Res{i}."
        shortcut = conv2d(upsample(x), p[r + "Shortcut.Filters"], p[r + "Shortcut.Biases"])
        h = conv2d(upsample(relu(_bn(p, r + "BN1", x))), p[r + "Conv1.Filters"])
        h = conv2d(relu(_bn(p, r + "BN2", h)), p[r + "Conv2.Filters"], p[r + "Conv2.Biases"])
        x = shortcut + h
    x = relu(_bn(p, g + "OutputN", x))
    return np.tanh(conv2d(x, p[g + "Output.Filters"], p[g + "Output.Biases"])).reshape(len(z), -1)


def gan64_critic(p, images, dim):
    x = conv2d(images.reshape(len(images), 3, 64, 64), p["Discriminator.Input.Filters"],
               p["Discriminator.Input.Biases"])
    for i in range(1, 5):
        r = f"Discriminator.Res{i}."
        shortcut = conv2d(mean_pool(x), p[r + "Shortcut.Filters"], p[r + "Shortcut.Biases"])
        h = conv2d(relu(layernorm(x, p[r + "BN1.scale"], p[r + "BN1.offset"])), p[r + "Conv1.Filters"])
        h = conv2d(relu(layernorm(h, p[r + "BN2.scale"], p[r + "BN2.offset"])), p[r + "Conv2.Filters"],
                   p[r + "Conv2.Biases"])
        x = shortcut + mean_pool(h)
    x = x.reshape(len(images), -1)
    return linear(x, p, "Discriminator.Output")[:, 0], linear(x, p, "Discriminator.ACGANOutput")


# --------------------------------------------------------------- the release's variables
# Transcribed from the release's graph construction (names as tflib's `lib.param` gives
# them), independently of `mergan_tf.release`; the golden test checks gan32's against the
# parameter list of ../shared/golden/gan32_c1.npz.


def _generator_shapes(prefix, layers):
    return {prefix + name: shape for name, shape in layers}


def gan32_shapes(dim, channels, old=True):
    """Every variable `mergan.py` creates for gan32, name -> shape (creation order)."""
    g = [("Generator.Input.W", (128, 64 * dim)), ("Generator.Input.b", (64 * dim,))]
    widths = [4 * dim, 2 * dim, dim, channels]
    for i, layer in enumerate(("2", "3", "5")):
        g += [(f"Generator.BN{i + 1}.{k}", (10, widths[i]))
              for k in ("offset", "scale", "moving_mean", "moving_variance")]
        g += [(f"Generator.{layer}.Filters", (5, 5, widths[i + 1], widths[i])),
              (f"Generator.{layer}.Biases", (widths[i + 1],))]
    shapes = _generator_shapes("New.", g)
    widths = [channels, dim, 2 * dim, 4 * dim]
    for i in range(3):
        shapes[f"Discriminator.{i + 1}.Filters"] = (5, 5, widths[i], widths[i + 1])
        shapes[f"Discriminator.{i + 1}.Biases"] = (widths[i + 1],)
    for head, n in (("Output", 1), ("ACGANOutput", 10)):
        shapes[f"Discriminator.{head}.W"], shapes[f"Discriminator.{head}.b"] = (64 * dim, n), (n,)
    if old:
        shapes.update(_generator_shapes("Old.", g))
    return shapes


def gan64_shapes(dim, old=True):
    """Every variable `mergan.py` creates for gan64 (LSUN), name -> shape."""
    g = [("Generator.Input.W", (138, 128 * dim)), ("Generator.Input.b", (128 * dim,))]
    widths = [8 * dim, 8 * dim, 4 * dim, 2 * dim, dim]
    for i in range(4):
        cin, cout, r = widths[i], widths[i + 1], f"Generator.Res{i + 1}"
        g += [(f"{r}.Shortcut.Filters", (1, 1, cin, cout)), (f"{r}.Shortcut.Biases", (cout,))]
        g += [(f"{r}.BN1.{k}", (cin,)) for k in ("offset", "scale", "moving_mean", "moving_variance")]
        g += [(f"{r}.Conv1.Filters", (3, 3, cin, cout))]
        g += [(f"{r}.BN2.{k}", (cout,)) for k in ("offset", "scale", "moving_mean", "moving_variance")]
        g += [(f"{r}.Conv2.Filters", (3, 3, cout, cout)), (f"{r}.Conv2.Biases", (cout,))]
    g += [(f"Generator.OutputN.{k}", (dim,))
          for k in ("offset", "scale", "moving_mean", "moving_variance")]
    g += [("Generator.Output.Filters", (3, 3, dim, 3)), ("Generator.Output.Biases", (3,))]
    shapes = _generator_shapes("New.", g)
    shapes["Discriminator.Input.Filters"], shapes["Discriminator.Input.Biases"] = (3, 3, 3, dim), (dim,)
    widths = [dim, 2 * dim, 4 * dim, 8 * dim, 8 * dim]
    for i in range(4):
        cin, cout, r = widths[i], widths[i + 1], f"Discriminator.Res{i + 1}"
        shapes.update({f"{r}.Shortcut.Filters": (1, 1, cin, cout), f"{r}.Shortcut.Biases": (cout,),
                       f"{r}.BN1.offset": (cin,), f"{r}.BN1.scale": (cin,),
                       f"{r}.Conv1.Filters": (3, 3, cin, cin),
                       f"{r}.BN2.offset": (cin,), f"{r}.BN2.scale": (cin,),
                       f"{r}.Conv2.Filters": (3, 3, cin, cout), f"{r}.Conv2.Biases": (cout,)})
    for head, n in (("Output", 1), ("ACGANOutput", 10)):
        shapes[f"Discriminator.{head}.W"], shapes[f"Discriminator.{head}.b"] = (128 * dim, n), (n,)
    if old:
        shapes.update(_generator_shapes("Old.", g))
    return shapes


def adam_slots(shapes, names=2):
    """A few Adam slots and beta powers, as a Saver made after the optimizer would hold."""
    slots = {}
    for name in list(shapes)[:names]:
        slots[name + "/Adam"] = shapes[name]
        slots[name + "/Adam_1"] = shapes[name]
    slots["beta1_power"], slots["beta2_power"], slots["beta1_power_1"] = (), (), ()
    return slots
