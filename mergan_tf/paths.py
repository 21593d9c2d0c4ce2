"""Default locations that do not depend on the working directory.

Evaluator classifiers are stored under the checkpoints directory: ``$MERGAN_CHECKPOINTS``
when it is set, else the project's own ``checkpoints/`` (beside the ``mergan_tf`` package
in a source checkout or an editable install), else, for a copy installed elsewhere,
``~/.mergan_tf/checkpoints``. So a default evaluator trained from one directory is found
from any other. Paths given on a command line stay relative to the current directory.
"""

from __future__ import annotations

import os

CHECKPOINTS_ENV = "MERGAN_CHECKPOINTS"
PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT_CHECKPOINTS = os.path.join(PROJECT_DIR, "checkpoints")
USER_CHECKPOINTS = os.path.join("~", ".mergan_tf", "checkpoints")


def checkpoints_dir() -> str:
    """The absolute checkpoints directory (see the module docstring for the order)."""
    override = os.environ.get(CHECKPOINTS_ENV)
    if override:
        return os.path.abspath(os.path.expanduser(override))
    if os.path.isdir(PROJECT_CHECKPOINTS):
        return PROJECT_CHECKPOINTS
    return os.path.abspath(os.path.expanduser(USER_CHECKPOINTS))


def describe_checkpoints() -> str:
    """Where `checkpoints_dir()` comes from, for messages."""
    if os.environ.get(CHECKPOINTS_ENV):
        return f"${CHECKPOINTS_ENV} is {os.environ[CHECKPOINTS_ENV]!r}"
    where = ("the project's checkpoints/" if os.path.isdir(PROJECT_CHECKPOINTS)
             else f"{USER_CHECKPOINTS} (no checkpoints/ beside the installed package)")
    return f"{where}; set ${CHECKPOINTS_ENV} to use another directory"
