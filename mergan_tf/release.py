"""The original release's TF1 checkpoints: variable names, layouts, and how they map here.

The release (`mergan.py`, `joint.py`) saves its graph with `tf.train.Saver` as
`model/WGAN_GP.model<class>-<iteration>.{index,data-00000-of-00001}` (`joint.py`:
`WGAN_GP.model-<iteration>`). Its variables are tflib params named after their layer:
`New.Generator.*` (the generator being trained), `Old.Generator.*` (the frozen replay copy,
`mergan.py` only), `Discriminator.*` (the critic), plus Adam slots (`<name>/Adam`,
`<name>/Adam_1`, `beta1_power`, `beta2_power`; `joint.py` only) that are ignored. The
release runs NCHW; this project runs NHWC. D is the width DIM (release 32 for gan32, 64
for gan64), C the image channels, `in`/`out` a layer's input/output channels.

gan32 (`network/gan32_model.py`; MNIST C = 1, SVHN C = 3) -> `models/dcgan32.py`:

| release variable | release shape | here | conversion |
|---|---|---|---|
| `New.Generator.Input.W` | [128, 4*4*4D] | `generator.fc.kernel` | columns (c,h,w) -> (h,w,c) |
| `New.Generator.Input.b` | [4*4*4D] | `generator.fc.bias` | (c,h,w) -> (h,w,c) |
| `New.Generator.BN{1,2,3}.scale` / `.offset` | [10, 4D / 2D / D] | `generator.bn{1,2,3}.gamma` / `.beta` | none |
| `New.Generator.{2,3,5}.Filters` | [5, 5, out, in] | `generator.deconv{2,3,4}.kernel` | none (both transposed-conv layout) |
| `New.Generator.{2,3,5}.Biases` | [out] | `generator.deconv{2,3,4}.bias` | none |
| `Discriminator.{1,2,3}.Filters` | [5, 5, in, out] (HWIO) | `critic.conv{1,2,3}.kernel` | none |
| `Discriminator.{1,2,3}.Biases` | [out] | `critic.conv{1,2,3}.bias` | none |
| `Discriminator.Output.W` / `.b` | [4*4*4D, 1] / [1] | `critic.wgan_head.kernel` / `.bias` | rows (c,h,w) -> (h,w,c) |
| `Discriminator.ACGANOutput.W` / `.b` | [4*4*4D, 10] / [10] | `critic.ac_head.kernel` / `.bias` | rows (c,h,w) -> (h,w,c) |

gan64 (`network/gan64_model.py`, LSUN, C = 3) -> `models/resnet64.py`; generator blocks
Res1..Res4 go 8D->8D->4D->2D->D, critic blocks Res1..Res4 go D->2D->4D->8D->8D:

| release variable | release shape | here | conversion |
|---|---|---|---|
| `New.Generator.Input.W` / `.b` | [138, 4*4*8D] / [4*4*8D] | `generator.fc.kernel` / `.bias` | (c,h,w) -> (h,w,c) |
| `New.Generator.Res{i}.Shortcut.Filters` / `.Biases` | [1, 1, in, out] / [out] | `generator.res{i}.shortcut` | none |
| `New.Generator.Res{i}.BN1.scale` / `.offset` | [in] | `generator.res{i}.bn1.scale` / `.offset` | none |
| `New.Generator.Res{i}.Conv1.Filters` (no bias) | [3, 3, in, out] | `generator.res{i}.conv1.kernel` | none |
| `New.Generator.Res{i}.BN2.scale` / `.offset` | [out] | `generator.res{i}.bn2` | none |
| `New.Generator.Res{i}.Conv2.Filters` / `.Biases` | [3, 3, out, out] / [out] | `generator.res{i}.conv2` | none |
| `New.Generator.OutputN.scale` / `.offset` | [D] | `generator.bn_out` | none |
| `New.Generator.Output.Filters` / `.Biases` | [3, 3, D, 3] / [3] | `generator.conv_out` | none |
| `Discriminator.Input.Filters` / `.Biases` | [3, 3, 3, D] / [D] | `critic.conv_in` | none |
| `Discriminator.Res{i}.Shortcut.Filters` / `.Biases` | [1, 1, in, out] / [out] | `critic.res{i}.shortcut` | none |
| `Discriminator.Res{i}.BN1.scale` / `.offset` (LayerNorm) | [in] | `critic.res{i}.ln1` | none |
| `Discriminator.Res{i}.Conv1.Filters` (no bias) | [3, 3, in, in] | `critic.res{i}.conv1.kernel` | none |
| `Discriminator.Res{i}.BN2.scale` / `.offset` (LayerNorm) | [in] | `critic.res{i}.ln2` | none |
| `Discriminator.Res{i}.Conv2.Filters` / `.Biases` | [3, 3, in, out] / [out] | `critic.res{i}.conv2` | none |
| `Discriminator.Output.W`, `.ACGANOutput.W` (+ `.b`) | [4*4*8D, 1 / 10] | `critic.wgan_head`, `critic.ac_head` | rows (c,h,w) -> (h,w,c) |

Why the two conversions: the release reshapes the generator's first Linear output to
[N, C, 4, 4] (index c*16 + h*4 + w), this project to [N, 4, 4, C] (index (h*4 + w)*C + c),
so that layer's columns are permuted; the critic's heads read the last feature map
flattened in NCHW order, here in NHWC order, so their rows are permuted. Convolution
filters are HWIO in both (TF's `conv2d` takes HWIO also on NCHW data) and transposed-conv
filters are [kh, kw, out, in] in both. The batch-norm `moving_mean`/`moving_variance` the
release creates are never read by it (it always normalises with batch statistics) and are
ignored; so are `Old.Generator.*` (checked for shape, not imported: import the previous
task's own checkpoint instead).

Every reader here only reads the checkpoint (`tf.train.load_checkpoint`) and never writes
beside it.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf

NEW, OLD = "New.", "Old."
# dataset -> (architecture here, image channels); the release has exactly these three.
RELEASE_MODELS = {"mnist": ("dcgan32", 1), "svhn": ("dcgan32", 3), "lsun": ("resnet64", 3)}
RELEASE_DIM = {"dcgan32": 32, "resnet64": 64}
# The generator's first Linear: input size and the channels (in units of D) of its 4x4 map.
_INPUT = {"dcgan32": (128, 4), "resnet64": (138, 8)}
_MAX_LISTED = 12
# Optimizer state and counters a TF1 Saver may hold next to the weights.
_IGNORED_RE = re.compile(r"(/(Adam|Adam_1|Momentum|RMSProp|RMSProp_1)$)|(^beta[12]_power(_\d+)?$)"
                         r"|(^global_step$)")


class ReleaseCheckpointError(ValueError):
    """A release checkpoint is missing, unreadable, or holds another model's variables."""


@dataclasses.dataclass(frozen=True)
class Param:
    """One release variable and where it goes.

    Attributes:
      name: the variable's name in the checkpoint.
      shape: its shape in the release.
      target: attribute path in {"generator": G, "critic": D}, e.g. "generator.fc.kernel".
      layout: "same", "chw_columns" (last axis (c,4,4) -> (4,4,c)) or "chw_rows" (first
        axis (c,4,4) -> (4,4,c)); see the module docstring.
    """

    name: str
    shape: tuple[int, ...]
    target: str
    layout: str = "same"


def _chw_columns(value: np.ndarray) -> np.ndarray:
    """Last axis ordered (c, h, w) over a 4x4 map -> ordered (h, w, c)."""
    lead, c = value.shape[:-1], value.shape[-1] // 16
    return np.moveaxis(value.reshape(lead + (c, 4, 4)), -3, -1).reshape(lead + (-1,))


def _chw_rows(value: np.ndarray) -> np.ndarray:
    """First axis ordered (c, h, w) over a 4x4 map -> ordered (h, w, c)."""
    c, rest = value.shape[0] // 16, value.shape[1:]
    return np.moveaxis(value.reshape((c, 4, 4) + rest), 0, 2).reshape((-1,) + rest)


LAYOUTS = {"same": lambda v: v, "chw_columns": _chw_columns, "chw_rows": _chw_rows}


def _conv(release: str, target: str, shape: Sequence[int], bias: bool = True,
          transposed: bool = False) -> list[Param]:
    """A conv's filters (and biases): release `<release>.Filters/.Biases` -> `<target>`."""
    params = [Param(f"{release}.Filters", tuple(shape), f"{target}.kernel")]
    if bias:  # output channels: axis 3 of HWIO, axis 2 of a transposed conv's filters
        params.append(Param(f"{release}.Biases", (shape[2] if transposed else shape[3],),
                            f"{target}.bias"))
    return params


def _norm(release: str, target: str, shape: Sequence[int], names=("scale", "offset")) -> list[Param]:
    """A normalisation's scale and offset -> `<target>.<names>`."""
    return [Param(f"{release}.scale", tuple(shape), f"{target}.{names[0]}"),
            Param(f"{release}.offset", tuple(shape), f"{target}.{names[1]}")]


def _linear(release: str, target: str, shape: Sequence[int], layout: str) -> list[Param]:
    """A Linear's W and b, both converted with `layout` (b only for chw_columns)."""
    return [Param(f"{release}.W", tuple(shape), f"{target}.kernel", layout),
            Param(f"{release}.b", (shape[1],), f"{target}.bias",
                  layout if layout == "chw_columns" else "same")]


def _heads(dim_units: int, dim: int) -> list[Param]:
    feat = 4 * 4 * dim_units * dim
    return (_linear("Discriminator.Output", "critic.wgan_head", (feat, 1), "chw_rows")
            + _linear("Discriminator.ACGANOutput", "critic.ac_head", (feat, 10), "chw_rows"))


def dcgan32_params(dim: int, channels: int) -> tuple[list[Param], list[Param]]:
    """(generator params without the New./Old. prefix, critic params) of release gan32."""
    g = _linear("Generator.Input", "generator.fc", (128, 64 * dim), "chw_columns")
    widths = [4 * dim, 2 * dim, dim, channels]
    for i, layer in enumerate(("2", "3", "5")):
        g += _norm(f"Generator.BN{i + 1}", f"generator.bn{i + 1}", (10, widths[i]), ("gamma", "beta"))
        g += _conv(f"Generator.{layer}", f"generator.deconv{i + 2}",
                   (5, 5, widths[i + 1], widths[i]), transposed=True)
    d = []
    widths = [channels, dim, 2 * dim, 4 * dim]
    for i in range(3):
        d += _conv(f"Discriminator.{i + 1}", f"critic.conv{i + 1}", (5, 5, widths[i], widths[i + 1]))
    return g, d + _heads(4, dim)


def resnet64_params(dim: int, channels: int) -> tuple[list[Param], list[Param]]:
    """(generator params without the New./Old. prefix, critic params) of release gan64."""
    g = _linear("Generator.Input", "generator.fc", (138, 128 * dim), "chw_columns")
    widths = [8 * dim, 8 * dim, 4 * dim, 2 * dim, dim]
    for i in range(4):
        cin, cout, r, t = widths[i], widths[i + 1], f"Generator.Res{i + 1}", f"generator.res{i + 1}"
        g += (_conv(f"{r}.Shortcut", f"{t}.shortcut", (1, 1, cin, cout))
              + _norm(f"{r}.BN1", f"{t}.bn1", (cin,))
              + _conv(f"{r}.Conv1", f"{t}.conv1", (3, 3, cin, cout), bias=False)
              + _norm(f"{r}.BN2", f"{t}.bn2", (cout,))
              + _conv(f"{r}.Conv2", f"{t}.conv2", (3, 3, cout, cout)))
    g += _norm("Generator.OutputN", "generator.bn_out", (dim,))
    g += _conv("Generator.Output", "generator.conv_out", (3, 3, dim, channels))
    d = _conv("Discriminator.Input", "critic.conv_in", (3, 3, channels, dim))
    widths = [dim, 2 * dim, 4 * dim, 8 * dim, 8 * dim]
    for i in range(4):
        cin, cout, r, t = widths[i], widths[i + 1], f"Discriminator.Res{i + 1}", f"critic.res{i + 1}"
        d += (_conv(f"{r}.Shortcut", f"{t}.shortcut", (1, 1, cin, cout))
              + _norm(f"{r}.BN1", f"{t}.ln1", (cin,))
              + _conv(f"{r}.Conv1", f"{t}.conv1", (3, 3, cin, cin), bias=False)
              + _norm(f"{r}.BN2", f"{t}.ln2", (cin,))
              + _conv(f"{r}.Conv2", f"{t}.conv2", (3, 3, cin, cout)))
    return g, d + _heads(8, dim)


_PARAMS = {"dcgan32": dcgan32_params, "resnet64": resnet64_params}


def gan_params(arch: str, dim: int, channels: int) -> list[Param]:
    """Every release variable this project imports, with full names (New. generator)."""
    generator, critic = _PARAMS[arch](dim, channels)
    return [dataclasses.replace(p, name=NEW + p.name) for p in generator] + critic


def _optional_variables(arch: str, dim: int, channels: int) -> dict[str, tuple[int, ...]]:
    """Release variables that may be present and are checked but not imported: the unused
    batch-norm moving statistics and the whole Old.Generator copy."""
    generator, _ = _PARAMS[arch](dim, channels)
    optional = {}
    for prefix in (NEW, OLD):
        for p in generator:
            if prefix == OLD:
                optional[OLD + p.name] = p.shape
            if p.name.endswith(".scale"):
                stem = p.name[:-len(".scale")]
                optional[f"{prefix}{stem}.moving_mean"] = p.shape
                optional[f"{prefix}{stem}.moving_variance"] = p.shape
    return optional


# ----------------------------------------------------------------- reading checkpoints


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def listing(items: Sequence[str], limit: int = _MAX_LISTED, sep: str = ", ") -> str:
    """'a, b, c' with at most `limit` items and '... and N more'."""
    items = list(items)
    shown = sep.join(items[:limit])
    return shown + (f"{sep}... and {len(items) - limit} more" if len(items) > limit else "")


def resolve_prefix(path: str) -> str:
    """The checkpoint prefix of `path` (a prefix, or one of its .index/.data-*/.meta files).

    Raises:
      ReleaseCheckpointError: no `<prefix>.index` there, or `path` is a directory.
    """
    path = os.fspath(path)
    prefix = re.sub(r"\.(index|meta|data-\d{5}-of-\d{5})$", "", path)
    if os.path.isdir(prefix):
        found = sorted(os.path.join(prefix, os.path.basename(f)[:-len(".index")])
                       for f in glob.glob(os.path.join(glob.escape(prefix), "*.index")))
        raise ReleaseCheckpointError(
            f"{path} is a directory; pass a checkpoint prefix (a file path without .index or "
            f".data-*). " + (f"Prefixes in it: {listing(found)}" if found else
                             "It holds no *.index file."))
    if not os.path.isfile(prefix + ".index"):
        raise ReleaseCheckpointError(
            f"no checkpoint at {prefix}: {prefix}.index does not exist. Pass the prefix of a "
            f"tf.train.Saver checkpoint, the path of its .index file without '.index' (e.g. "
            f"result/mnist_RA/model/WGAN_GP.model9-4000 for WGAN_GP.model9-4000.index and "
            f"WGAN_GP.model9-4000.data-00000-of-00001).")
    return prefix


def _reader(prefix: str):
    try:
        return tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as e:
        raise ReleaseCheckpointError(
            f"cannot read the checkpoint {prefix} ({_first_line(e)}): it is not a tf.train.Saver "
            f"checkpoint, or its files are truncated; copy them again") from e


def read_shapes(prefix: str) -> dict[str, tuple[int, ...]]:
    """Variable name -> shape of a checkpoint (reads its index only)."""
    return {n: tuple(s) for n, s in _reader(prefix).get_variable_to_shape_map().items()}


def read_values(prefix: str, names: Iterable[str]) -> dict[str, np.ndarray]:
    """The named variables of a checkpoint as numpy arrays (copies; the files are only read)."""
    reader = _reader(prefix)
    try:
        return {n: np.asarray(reader.get_tensor(n)) for n in names}
    except (tf.errors.OpError, ValueError, IndexError, OSError) as e:  # IndexError: truncated
        raise ReleaseCheckpointError(
            f"cannot read the variables of {prefix} ({_first_line(e)}): its "
            f".data-00000-of-00001 file is missing or truncated; copy it again next to "
            f"{prefix}.index") from e


def is_optimizer_state(name: str) -> bool:
    """Adam/Momentum slots, beta powers and global_step: ignored by every reader."""
    return bool(_IGNORED_RE.search(name))


def check_variables(prefix: str, found: dict, required: dict, what: str,
                    optional: dict | None = None, hint: str = "") -> list[str]:
    """Checks a checkpoint's variables against the expected names and shapes.

    Args:
      prefix: the checkpoint (for messages).
      found: its variable name -> shape.
      required: name -> shape that must all be present with that shape.
      what: what the checkpoint should be, e.g. "a release gan32 checkpoint for mnist".
      optional: name -> shape that may be present; checked for shape when they are.
      hint: a last line for the error (what the checkpoint looks like instead).

    Returns:
      The found names that are neither expected nor optimizer state (sorted).

    Raises:
      ReleaseCheckpointError: listing the missing, wrong-shaped and unexpected variables.
    """
    optional = optional or {}
    expected = {**required, **optional}
    missing = [n for n in required if n not in found]
    wrong = [n for n in expected if n in found and tuple(found[n]) != tuple(expected[n])]
    extra = sorted((n for n in found if n not in expected and not is_optimizer_state(n)),
                   key=lambda n: (n.startswith(OLD), n))  # the replay copy last
    if not missing and not wrong:
        return extra
    lines = [f"{prefix} is not {what}:"]
    if missing:
        lines.append(f"  missing ({len(missing)} of the {len(required)} expected): "
                     + listing([f"{n} {list(required[n])}" for n in missing], sep="; "))
    if wrong:
        lines.append("  wrong shape: " + listing(
            [f"{n} expected {list(expected[n])}, found {list(found[n])}" for n in wrong], sep="; "))
    if extra:
        lines.append(f"  found instead ({len(extra)}): "
                     + listing([f"{n} {list(found[n])}" for n in extra], sep="; "))
    if hint:
        lines.append(hint)
    raise ReleaseCheckpointError("\n".join(lines))


# ----------------------------------------------------------------- the GAN


@dataclasses.dataclass(frozen=True)
class ReleaseGAN:
    """The weights of a release GAN checkpoint, converted to this project's layouts.

    Attributes:
      prefix: the checkpoint prefix.
      dataset: "mnist", "svhn" or "lsun".
      arch: "dcgan32" or "resnet64".
      dim: the models' width DIM, read from the checkpoint.
      channels: image channels.
      values: target path (see `Param.target`) -> converted value.
      has_old: the checkpoint holds the Old.Generator replay copy (`mergan.py`).
      unexpected: variables that are neither expected nor optimizer state (not imported).
    """

    prefix: str
    dataset: str
    arch: str
    dim: int
    channels: int
    values: dict
    has_old: bool
    unexpected: tuple[str, ...] = ()


def infer_dim(found: dict, arch: str) -> int:
    """DIM from the shape of the generator's first Linear; the release's DIM if absent."""
    in_size, units = _INPUT[arch]
    shape = found.get(NEW + "Generator.Input.W")
    if shape and len(shape) == 2 and shape[0] == in_size and shape[1] % (16 * units) == 0:
        return max(1, shape[1] // (16 * units))
    return RELEASE_DIM[arch]


def _describe(dataset: str, dim: int) -> str:
    arch, channels = RELEASE_MODELS[dataset]
    name = {"dcgan32": "gan32", "resnet64": "gan64"}[arch]
    return (f"a checkpoint of the release's {name} model for {dataset} ({channels} channel(s), "
            f"DIM {dim}, written by mergan.py or joint.py)")


def _expected(found: dict, dataset: str) -> tuple[int, dict, dict]:
    arch, channels = RELEASE_MODELS[dataset]
    dim = infer_dim(found, arch)
    required = {p.name: p.shape for p in gan_params(arch, dim, channels)}
    return dim, required, _optional_variables(arch, dim, channels)


def _guess(found: dict, dataset: str) -> str:
    """What a checkpoint that fails `dataset` looks like, for the error message."""
    if not any(n.startswith(NEW + "Generator.") for n in found):
        if any(n.endswith(("_weights", "_filters")) for n in found):
            return ("It holds no generator: it looks like one of the release's pretrained "
                    "evaluators (pretrain/); use it with scripts/evaluate.py --evaluator "
                    "release:PREFIX.")
        return ("It holds no New.Generator.* variable: it was not written by the release's "
                "mergan.py or joint.py.")
    for other in RELEASE_MODELS:
        _, required, optional = _expected(found, other)
        if other != dataset and all(tuple(found.get(n, ())) == s for n, s in required.items()):
            return f"It is the release's {other} model: pass --dataset {other}."
    return ""


def read_gan(path: str, dataset: str) -> ReleaseGAN:
    """Reads and checks a release GAN checkpoint (`mergan.py` or `joint.py`) of `dataset`.

    Raises:
      ReleaseCheckpointError: missing files, another dataset's or model's variables (the
        message lists expected and found names and shapes), unreadable data.
    """
    if dataset not in RELEASE_MODELS:
        raise ReleaseCheckpointError(f"the release has models for {sorted(RELEASE_MODELS)}, not "
                                     f"{dataset!r}; pass --dataset mnist, svhn or lsun")
    prefix = resolve_prefix(path)
    found = read_shapes(prefix)
    arch, channels = RELEASE_MODELS[dataset]
    dim, required, optional = _expected(found, dataset)
    unexpected = check_variables(prefix, found, required, _describe(dataset, dim), optional,
                                 _guess(found, dataset))
    params = gan_params(arch, dim, channels)
    raw = read_values(prefix, [p.name for p in params])
    values = {p.target: LAYOUTS[p.layout](raw[p.name]).astype(np.float32) for p in params}
    has_old = any(n.startswith(OLD + "Generator.") for n in found)
    return ReleaseGAN(prefix, dataset, arch, dim, channels, values, has_old, tuple(unexpected))


def _resolve(models: dict, target: str):
    obj = models
    for i, part in enumerate(target.split(".")):
        obj = obj[part] if i == 0 else getattr(obj, part)
    return obj


def assign_gan(gan: ReleaseGAN, generator, critic) -> None:
    """Assigns the imported weights to a generator and critic of the same arch and DIM.

    Raises:
      ReleaseCheckpointError: a model was built with another size.
      RuntimeError: a model weight has no release variable (a gap in the mapping).
    """
    models = {"generator": generator, "critic": critic}
    assigned = set()
    for target, value in gan.values.items():
        variable = _resolve(models, target)
        if tuple(variable.shape) != value.shape:
            raise ReleaseCheckpointError(
                f"{target} is {list(variable.shape)} here but {list(value.shape)} in "
                f"{gan.prefix}: build the models with DIM {gan.dim} and {gan.channels} channel(s)")
        variable.assign(value)
        assigned.add(id(variable))
    left = [v.path for v in list(generator.weights) + list(critic.weights) if id(v) not in assigned]
    if left:
        raise RuntimeError(f"no release variable maps to {left}: mergan_tf.release is incomplete")
