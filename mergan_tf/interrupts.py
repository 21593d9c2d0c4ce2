"""Graceful stop on SIGTERM and SIGINT: finish the outer iteration, checkpoint, exit.

A cluster scheduler or `docker stop` sends SIGTERM, Ctrl-C sends SIGINT. While the trainer
runs, `GracefulStop` turns the first of them into a request that the trainer honours after
the current outer iteration (it writes a checkpoint, closes its logs, releases the run lock
and raises `TrainingInterrupted`, which the command line turns into one message and exit
status 128 + the signal number: 143 for SIGTERM, 130 for SIGINT, the shell's convention).
A second signal restores the default handling and re-delivers itself, so it stops at once.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Optional

from absl import logging

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after writing its state; the message says how to go on.

    Attributes:
      signum: the signal that stopped it.
      exit_code: the process exit status that says "interrupted": 128 + signum.
    """

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


def signal_name(signum: int) -> str:
    """'SIGTERM' for 15, or the number when it has no name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


class GracefulStop:
    """Context manager: while inside, SIGTERM/SIGINT request a stop instead of killing.

    `requested` is the first signal's number (None until one arrives). Handlers are only
    installed in the main thread (Python delivers signals there); elsewhere this is a no-op
    whose `requested` stays None. The previous handlers are restored on exit.
    """

    def __init__(self):
        self.requested: Optional[int] = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        del frame
        if self.requested is None:
            self.requested = signum
            logging.warning("%s received: stopping after the current iteration with a "
                            "checkpoint (send it again to stop at once, losing the "
                            "iterations since the last checkpoint)", signal_name(signum))
            return
        # The second signal: default handling (termination), delivered again right now.
        for other in SIGNALS:
            signal.signal(other, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
