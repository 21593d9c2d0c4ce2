"""A run's identity, recorded when it starts, so a resume never mixes two runs.

`<run>/run_identity.json` holds the training settings of `config.json` (everything that
determines the trained weights: dataset, method, classes, seed, model, schedule and
optimisation, data source), the configuration as written and its sha256, and a
fingerprint of the data (its source, image shape, images per class, a hash of the labels
and of a few images). `--resume` and `--start_from_task` compare the run they are asked to
continue with it and refuse any difference, naming the recorded and the new value.

What may change on resume (`RESUMABLE_FIELDS`): where the run and its data live, the
`--strategy`, TF op determinism and the output settings (grids, checkpoints, logs,
forgetting measurements, exports); also how the same function is computed (`--kernels`,
`--deconv`, `--batch_critic_inputs`) and the settings of other methods than the run's
(`configs.unused_fields`).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Optional

import numpy as np
from absl import logging

from mergan_tf.configs import RunConfig, unused_fields
from mergan_tf.run_dir import CONFIG, IDENTITY, write_json

FORMAT = "mergan_tf.run_identity/1"
# "section.field" (or a whole section / top-level field) that may differ on resume.
RESUMABLE_FIELDS = ("out_dir", "output", "data.data_dir", "data.resolved_source",
                    "train.strategy", "deterministic")
_IMAGES_HASHED = 32


class RunIdentityError(ValueError):
    """A resume would continue a run with other settings or other data than it started."""


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def training_settings(config: dict[str, Any]) -> dict[str, Any]:
    """{"section.field": value} of a configuration dict without the RESUMABLE_FIELDS and
    the fields that do not change what its method trains (`configs.unused_fields`)."""
    skip = RESUMABLE_FIELDS + unused_fields(config.get("method", {}).get("name", ""))
    return {k: v for k, v in _flatten(config).items()
            if not any(k == f or k.startswith(f + ".") for f in skip)}


def differences(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """"field: recorded X, now Y" for every training setting that differs."""
    a, b = training_settings(recorded), training_settings(now)
    return [f"{k}: recorded {a.get(k)!r}, now {b.get(k)!r}"
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def data_fingerprint(data) -> dict[str, Any]:
    """What identifies a dataset (an `ImageData`) whatever directory it is read from."""
    images, labels = data.train_images, data.train_labels
    picked = np.linspace(0, len(images) - 1, min(_IMAGES_HASHED, len(images))).astype(int)
    return {
        "source": data.source,
        "train_images": int(len(images)),
        "image_shape": [int(s) for s in images.shape[1:]],
        "images_per_class": np.bincount(labels, minlength=data.num_classes).tolist(),
        "labels_sha256": hashlib.sha256(labels.astype("<i8").tobytes()).hexdigest(),
        "images_sha256": hashlib.sha256(np.ascontiguousarray(images[picked]).tobytes()).hexdigest(),
    }


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def record(cfg: RunConfig, data) -> str:
    """Writes `run_identity.json` for the run starting in `cfg.out_dir` (atomically)."""
    run_dir = cfg.out_dir
    config_path = os.path.join(run_dir, CONFIG)
    identity = {
        "format": FORMAT,
        "settings": training_settings(cfg.to_dict()),
        "config": json.loads(json.dumps(cfg.to_dict())),
        "config_sha256": _sha256(config_path) if os.path.exists(config_path) else None,
        "data": data_fingerprint(data),
    }
    path = os.path.join(run_dir, IDENTITY)
    write_json(path, identity)
    return path


def load(run_dir: str) -> Optional[dict[str, Any]]:
    """The recorded identity of a run, or None for a run started before identities were
    recorded."""
    path = os.path.join(run_dir, IDENTITY)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            identity = json.load(f)
        if identity.get("format") != FORMAT or "settings" not in identity:
            raise ValueError(f"not a {FORMAT} file")
    except (OSError, ValueError, AttributeError) as e:
        raise RunIdentityError(
            f"cannot read the run identity {path} ({e}); it is written when a run starts and "
            f"lets --resume check that it continues the same run. Restore it from a backup, or "
            f"move it away to resume without that check") from e
    return identity


def check_config_file(run_dir: str) -> None:
    """Refuses a `config.json` whose training settings were edited since the run started."""
    identity = load(run_dir)
    path = os.path.join(run_dir, CONFIG)
    if identity is None or not os.path.exists(path) or _sha256(path) == identity.get("config_sha256"):
        return
    with open(path) as f:
        try:
            now = json.load(f)
        except ValueError as e:
            raise RunIdentityError(f"{path} is not valid JSON ({e}); restore it (the run's "
                                   f"configuration is recorded in {IDENTITY})") from e
    diff = differences(identity["config"], now)
    if diff:
        raise RunIdentityError(
            f"{path} was edited since the run started ({'; '.join(diff)}): resuming would "
            f"continue the run with other settings than it was trained with. Restore those "
            f"values (recorded in {os.path.join(run_dir, IDENTITY)}), or start a new run "
            f"with another --out_dir")


def check_resume(cfg: RunConfig, data) -> bool:
    """Checks that `cfg` and `data` continue the run recorded in `cfg.out_dir`.

    Returns:
      True when the run has a recorded identity (and it matches), False for a run started
      before identities were recorded (nothing to compare; the caller records one).

    Raises:
      RunIdentityError: config.json edited, a training setting or the data differs.
    """
    check_config_file(cfg.out_dir)
    identity = load(cfg.out_dir)
    if identity is None:
        logging.info("%s has no %s (an older run): recording it now", cfg.out_dir, IDENTITY)
        return False
    diff = differences(identity["config"], cfg.to_dict())
    if diff:
        raise RunIdentityError(
            f"cannot resume {cfg.out_dir} with other training settings than it started with: "
            f"{'; '.join(diff)}. Resume with the run's own settings (drop the flags that change "
            f"them), or start a new run with another --out_dir")
    _check_data(cfg.out_dir, identity["data"], data_fingerprint(data))
    return True


def _check_data(run_dir: str, recorded: dict[str, Any], now: dict[str, Any]) -> None:
    diff = [k for k in recorded if k != "source" and recorded[k] != now.get(k)]
    if not diff:
        return
    source = recorded["source"]
    hint = ""
    if source.startswith("tfds:") and "in " in source:
        root = source.rsplit("in ", 1)[1].rstrip(")")
        hint = f" (for that TFDS copy: TFDS_DATA_DIR={root})"
    raise RunIdentityError(
        f"cannot resume {run_dir} on other data than it was trained on: recorded "
        f"{source} ({recorded['train_images']} train images), now {now['source']} "
        f"({now['train_images']} train images); differs in {', '.join(diff)}. Resume with the "
        f"same data: --data_dir DIR where it now lives{hint}, or start a new run with "
        f"another --out_dir")
