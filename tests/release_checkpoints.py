"""Test helpers: checkpoints in the original release's format, written here.

No release checkpoint ships with this repository, so tests write their own the way the
release does: TF1 graph-mode variables under the release's names and shapes, saved with
`tf.compat.v1.train.Saver` (a V2 checkpoint: `<prefix>.index` and `<prefix>.data-*`).
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import tensorflow as tf


def save_release_checkpoint(prefix: str, arrays: dict[str, np.ndarray]) -> str:
    """Saves `arrays` (release name -> value) as a TF1 Saver checkpoint; returns `prefix`."""
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(np.asarray(v), name=n) for n, v in arrays.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, prefix, write_meta_graph=False)
    return prefix


def random_arrays(shapes: dict[str, tuple], seed: int = 0, scale: float = 0.2) -> dict[str, np.ndarray]:
    """Random float32 arrays of the given shapes (scales near 1 for norm scales)."""
    rs = np.random.RandomState(seed)
    out = {}
    for name, shape in shapes.items():
        value = scale * np.asarray(rs.randn(*shape))
        if name.endswith(".scale"):
            value += 1.0
        out[name] = value.astype(np.float32)
    return out


def file_digests(prefix: str) -> dict[str, str]:
    """sha256 of every file of a checkpoint (to check a reader changed none)."""
    folder = os.path.dirname(prefix)
    base = os.path.basename(prefix)
    return {f: hashlib.sha256(open(os.path.join(folder, f), "rb").read()).hexdigest()
            for f in sorted(os.listdir(folder)) if f.startswith(base)}
