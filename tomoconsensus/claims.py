"""Claims on outputs: one process at a time writes a given output (a prepared file, a denoised file or
series, a report, a demo folder, a run folder).

Without a claim, two commands writing the same ``--out`` both pass their checks (the output does not
exist yet) and the second silently replaces the first's result, ``--overwrite`` or not. So a command
claims its output before it checks or writes it:

* the claim is an ``fcntl.flock`` on a lock file (``.NAME.claim`` beside an output file or folder,
  ``.tomoconsensus.lock`` inside a run folder) holding the PID; a second claim of the same output is
  refused at once with :class:`~tomoconsensus.errors.RunError` ("in use", one line, exit 2);
* the kernel releases the lock when the process ends, even by ``kill -9``; the lock file is removed
  on release, and one left by a killed process is removed by the next claim or atomic write in its
  folder (:func:`remove_if_stale`);
* removing a lock file races with a process that opened it just before: every claimer therefore
  checks after locking that the path still names the file it locked, and starts again if not;
* claims are re-entrant within a process (``distill`` holds its run folder's claim and calls ``train``,
  which claims it again).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from tomoconsensus.errors import RunError
from tomoconsensus.folders import make_parents, remove_created

_HELD: set[str] = set()


def _same_inode(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _lock(path: Path, what: str, hint: str) -> int:
    """An open, exclusively locked descriptor of ``path`` (created if needed); RunError if another holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunError(f"{what} is in use by another tomoconsensus process (PID {other}); {hint}") from None
        if _same_inode(fd, path):
            return fd
        os.close(fd)  # the holder removed the file between our open and lock: claim the new one


@contextlib.contextmanager
def claim(path: str | Path, what: str, hint: str = "wait for it to end or choose another --out") -> Iterator[None]:
    """Hold the lock file ``path`` (its folder must exist) for the block; RunError naming ``what`` if held."""
    path = Path(os.path.abspath(path))
    if str(path) in _HELD:
        yield
        return
    fd = _lock(path, what, hint)
    _HELD.add(str(path))
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        _HELD.discard(str(path))
        with contextlib.suppress(OSError):
            path.unlink()  # while still locked: a process waiting on it sees another inode and retries
        os.close(fd)


def remove_if_stale(path: Path) -> bool:
    """Remove the lock file ``path`` if no process holds it (left by ``kill -9``); returns whether removed."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    try:
        if not _same_inode(fd, path):
            return False
        path.unlink()
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def claim_path(out: str | Path) -> Path:
    """The lock file of an output file or folder: ``.NAME.claim`` in its parent folder."""
    out = Path(os.path.abspath(out))
    return out.with_name(f".{out.name}.claim")


@contextlib.contextmanager
def claim_output(out: str | Path) -> Iterator[None]:
    """Claim the output ``out`` (file or folder) for the block: a second command writing it is refused "in use".

    The parent folders are created for the lock file and removed again if they are left empty. Where
    they cannot be (a file in the way, no permission) nothing is claimed: the command's own output
    checks name the problem.
    """
    lock = claim_path(out)
    try:
        created = make_parents(lock.parent)
    except OSError:
        yield
        return
    try:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(claim(lock, str(out)))
            except OSError:  # a read-only folder: the command's checks name it
                pass
            yield
    finally:
        remove_created(created)


#: CLI commands whose ``--out`` is claimed by :func:`claimed_output` (train and distill claim their run folder).
CLAIMED_COMMANDS = ("prepare", "denoise", "evaluate", "iq", "demo")


def claimed_output(args) -> contextlib.AbstractContextManager:
    """The claim of a CLI command's ``--out`` (a no-op for commands that claim their own output)."""
    if getattr(args, "command", None) in CLAIMED_COMMANDS and getattr(args, "out", None) is not None:
        return claim_output(args.out)
    return contextlib.nullcontext()
