"""Joint training (JT), the non-sequential upper bound of the paper (release `joint.py`)."""

from __future__ import annotations

from typing import Sequence

from mergan_tf import tasks
from mergan_tf.methods.base import Method


class JointTraining(Method):
    """JT: one task with every class of the sequence; real batches mix the classes and
    fake labels are uniform over them."""

    name = "jt"

    def tasks(self, classes: Sequence[int]) -> list[tuple[int, ...]]:
        return tasks.joint(classes)
