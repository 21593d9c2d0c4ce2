"""One process per run directory: a lock file naming its owner.

`<run>/.lock` holds JSON: the owner's pid, the absolute path of the run directory and the
process's start time (`/proc/<pid>/stat` field 22, which defeats pid reuse). A second
process on the same run directory is refused, naming the owner. A lock is stale, and taken
over with a warning, when it is empty or unreadable, when its process is gone, when its pid
now belongs to another process (another start time; for an old plain-pid lock: a process
that is not a mergan_tf command), or when it names another run directory (a copied run).
"""

from __future__ import annotations

import json
import os
from typing import Optional

from absl import logging

LOCK_FILE = ".lock"  # in the run directory
# Words in the command line of a process that may hold a run lock (old plain-pid locks).
_MERGAN_COMMANDS = ("mergan", "run_sequential", "reproduce_table1", "ewc_sweep")


class RunLockedError(RuntimeError):
    """Another live process holds the run directory."""


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (owned by anyone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OverflowError, ValueError):  # not a possible pid
        return False
    return True


def process_start_time(pid: int) -> Optional[int]:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks after boot), or None where
    /proc is not available or the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: split after it
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def _command_line(pid: int) -> Optional[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def _same_dir(recorded: Optional[str], run_dir: str) -> bool:
    """Whether a lock's recorded run directory is `run_dir` (True for old locks without)."""
    if recorded is None or os.path.realpath(recorded) == run_dir:
        return True
    try:
        return os.path.samefile(recorded, run_dir)
    except OSError:
        return False


def check_free(run_dir: str) -> None:
    """Raises RunLockedError when a live process holds `run_dir` (used before overwriting)."""
    lock = RunLock(run_dir)
    if os.path.exists(lock.path):
        lock.acquire()
        lock.release()


class RunLock:
    """Context manager: `with RunLock(run_dir): ...` holds `<run_dir>/.lock`."""

    def __init__(self, run_dir: str):
        self.run_dir = os.path.realpath(run_dir)
        self.path = os.path.join(run_dir, LOCK_FILE)
        self.held = False

    def acquire(self) -> None:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "run_dir": self.run_dir,
                           "start_time": process_start_time(os.getpid())}, f)
            self.held = True
            return
        raise RunLockedError(f"could not take the lock {self.path}: another process keeps "
                             "creating it; make sure no other command uses this run directory")

    def _take_over_if_stale(self) -> None:
        """Removes the lock file when it is stale; RunLockedError when its owner lives."""
        owner = self._read()
        reason = self._stale_reason(owner)
        if reason is None:
            command = _command_line(owner["pid"])
            raise RunLockedError(
                f"{self.run_dir} is in use by process {owner['pid']}"
                f"{f' ({command.strip()[:200]})' if command else ''} (lock file {self.path}); "
                f"wait for it to finish or stop it (kill {owner['pid']}), then retry")
        logging.warning("taking over the stale lock %s: %s", self.path, reason)
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass

    def _stale_reason(self, owner: Optional[dict]) -> Optional[str]:
        """Why the lock is stale, or None when its owner is a live process of this run."""
        if owner is None:
            return "it is empty or unreadable"
        pid = owner["pid"]
        if pid == os.getpid():
            return None if self.held else "it was left by this process"
        if not process_alive(pid):
            return f"its process {pid} is gone"
        if not _same_dir(owner.get("run_dir"), self.run_dir):
            return f"it was written for another run directory, {owner['run_dir']} (a copy)"
        started = process_start_time(pid)
        if "start_time" in owner:
            if started is not None and owner["start_time"] is not None and started != owner["start_time"]:
                return f"pid {pid} now belongs to another process (started later)"
            return None
        command = _command_line(pid)  # an old plain-pid lock: is the pid a mergan_tf process?
        if command is not None and not any(word in command for word in _MERGAN_COMMANDS):
            return f"pid {pid} is not a mergan_tf process ({command.strip()[:100]})"
        return None

    def _read(self) -> Optional[dict]:
        """{"pid": int, ...} from the lock file (JSON or an old plain pid), or None."""
        try:
            with open(self.path) as f:
                text = f.read().strip()
        except (OSError, UnicodeDecodeError):
            return None
        try:
            owner = json.loads(text)
        except ValueError:
            return None
        if isinstance(owner, int) and not isinstance(owner, bool):
            owner = {"pid": owner}  # the plain-pid locks of earlier versions
        if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int) or owner["pid"] <= 0:
            return None
        return owner

    def release(self) -> None:
        if self.held:
            owner = self._read()
            if owner is not None and owner["pid"] == os.getpid():
                os.remove(self.path)
        self.held = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
