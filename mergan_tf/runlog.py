"""One logger for a run: every message of mergan_tf goes through absl logging, and while a
run trains it is also appended to `<run>/train.log`.

absl's messages reach the console through the handler `absl.app.run` installs; the file gets
the same records (INFO and above) in absl's format, from the `absl` Python logger, so the
progress lines, per-task summaries, warnings and errors of every session of a run (the first
and each `--resume`) are kept in one place.
"""

from __future__ import annotations

import contextlib
import logging as py_logging
import os
from typing import Iterator

from absl import logging

from mergan_tf.run_dir import TRAIN_LOG

# absl's own line format: level letter, date and time, pid, file:line] message.
_FORMAT = "%(levelname).1s%(asctime)s.%(msecs)03d %(process)d %(filename)s:%(lineno)d] %(message)s"
_DATE = "%m%d %H:%M:%S"


@contextlib.contextmanager
def train_log(run_dir: str) -> Iterator[str]:
    """Appends absl's log records (INFO and above) to `<run_dir>/train.log` inside the block.

    A quieter absl verbosity (e.g. a library caller's WARNING) is raised to INFO for the
    block, so the file always holds the progress lines, while absl's console handler keeps
    the level it showed before. Yields the file path.
    """
    path = os.path.join(run_dir, TRAIN_LOG)
    handler = py_logging.FileHandler(path, mode="a", encoding="utf-8", delay=True)
    handler.setLevel(py_logging.INFO)
    handler.setFormatter(py_logging.Formatter(_FORMAT, _DATE))
    verbosity = logging.get_verbosity()
    console = logging.get_absl_handler()
    console_level = console.level
    if verbosity < logging.INFO:
        console.setLevel(max(console_level, py_logging.WARNING))
        logging.set_verbosity(logging.INFO)
    logger = logging.get_absl_logger()
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        handler.close()
        logging.set_verbosity(verbosity)
        console.setLevel(console_level)
