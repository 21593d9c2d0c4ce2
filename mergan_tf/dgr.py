"""Deep generative replay (Shin et al. 2017) as the MeRGAN paper implements its DGR baseline.

An UNCONDITIONAL WGAN-GP generator (the gan32 generator with a single batch-norm row, i.e.
plain batch-statistics BN, and no class input) and a solver classifier. Class-conditional
samples come from rejection: generate, keep what the solver labels as the class.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


class SolverFilteredSampler:
    """`sample_fn(z, labels)` for an unconditional generator and a solver.

    Each call is for one class c (the protocol's per-class batches): candidates are
    generated in batches (the first from `z`, then from seeded noise), and those the solver
    labels c are kept, for at most `max_tries` batches. If too few are accepted, the batch
    is completed with the remaining candidates the solver finds most likely to be c, and
    `stats` counts them, so the acceptance rate is always reported.

    Args:
      generator: unconditional Generator (labels are all 0).
      solver: classifier, images -> logits.
      max_tries: candidate batches per call at most.
      seed: seeds the extra candidate noise.
    """

    def __init__(self, generator, solver, max_tries: int = 20, seed: int = 0):
        self.generator, self.solver, self.max_tries = generator, solver, max_tries
        self.rng = np.random.RandomState(seed)
        self.stats = {"requested": 0, "candidates": 0, "accepted": 0, "filled": 0}
        self._fn = tf.function(self._candidates, input_signature=[
            tf.TensorSpec([None, generator.z_dim], tf.float32)])

    def _candidates(self, z):
        images = self.generator(z, tf.zeros([tf.shape(z)[0]], tf.int32))
        return images, tf.nn.softmax(self.solver(images, training=False))

    def __call__(self, z, labels):
        z = np.asarray(z, np.float32)
        c = int(np.asarray(labels)[0])
        n = len(z)
        kept, spare, spare_p = [], [], []
        for attempt in range(self.max_tries):
            batch = z if attempt == 0 else self.rng.randn(*z.shape).astype(np.float32)
            images, probs = (t.numpy() for t in self._fn(batch))
            accept = probs.argmax(axis=1) == c
            kept.append(images[accept])
            spare.append(images[~accept])
            spare_p.append(probs[~accept, c])
            self.stats["candidates"] += n
            if sum(len(k) for k in kept) >= n:
                break
        accepted = np.concatenate(kept)[:n]
        self.stats["requested"] += n
        self.stats["accepted"] += len(accepted)
        if len(accepted) < n:
            order = np.argsort(-np.concatenate(spare_p))[:n - len(accepted)]
            accepted = np.concatenate([accepted, np.concatenate(spare)[order]])
            self.stats["filled"] += len(order)
        return accepted

    def acceptance_rate(self) -> float:
        """Accepted candidates / generated candidates, in percent."""
        return 100.0 * self.stats["accepted"] / max(self.stats["candidates"], 1)
