"""One process per run directory: a lock file holding the owner's pid.

A second process on the same run directory is refused with the owner's pid; a lock left
by a process that no longer exists (a crash, SIGKILL) is detected as stale and taken over.
"""

from __future__ import annotations

import os


class RunLockedError(RuntimeError):
    """Another live process holds the run directory."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def check_free(run_dir: str) -> None:
    """Raises RunLockedError when a live process holds `run_dir` (used before overwriting)."""
    lock = RunLock(run_dir)
    if os.path.exists(lock.path):
        lock.acquire()
        lock.release()


class RunLock:
    """Context manager: `with RunLock(run_dir): ...` holds `<run_dir>/.lock`."""

    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, ".lock")
        self.held = False

    def acquire(self) -> None:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner != os.getpid() and _alive(owner):
                    raise RunLockedError(
                        f"{os.path.dirname(self.path)} is in use by process {owner} (lock file "
                        f"{self.path}); wait for it to finish or stop it, then retry")
                os.remove(self.path)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            self.held = True
            return
        raise RunLockedError(f"could not take the lock {self.path}")

    def _owner(self):
        try:
            with open(self.path) as f:
                return int(f.read().strip() or -1)
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held and self._owner() == os.getpid():
            os.remove(self.path)
        self.held = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
