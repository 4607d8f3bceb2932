"""Safe file output: atomic writes, output paths that never replace an input, stale temp clean-up.

* :func:`atomic_path` writes to a hidden temporary file beside the target (``.NAME.tmp-PID-HOST``)
  and renames it onto the target when complete. A crash, an exception, Ctrl-C or SIGTERM (which the
  CLI turns into an exception, see :mod:`tomoconsensus.signals`) part-way leaves either the old file
  or no file, never a half-written one, and removes the temporary file and any folder it created.
* ``kill -9`` cannot be handled by any process: its temporary file or folder stays behind. The next
  atomic write into the same folder removes every ``.*.tmp-PID-HOST`` file or folder whose process
  (on this host) no longer exists, and every output claim (:mod:`tomoconsensus.claims`) no process holds.
* A full disk (ENOSPC, EDQUOT) or a file-size limit (EFBIG) while writing raises
  :class:`~tomoconsensus.errors.DiskFull` naming the file system and the output, after the partial
  output was removed (:func:`no_space`).
* :func:`atomic_dir` does the same for a whole folder (a DICOM series): the new folder replaces the
  old one only when complete.
* :func:`check_output_file` / :func:`check_output_dir` / :func:`check_output_folder` are called before
  any work is done: an output that is one of the inputs, holds one or lies inside an input folder is
  always refused (:func:`check_apart`), an existing one unless ``overwrite``, a folder holding files
  the toolkit did not write is never replaced, and a folder that cannot be written is named.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from tomoconsensus.errors import DiskFull, InputError
from tomoconsensus.folders import make_parents, remove_created

_HOST = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"
TEMP_NAME = re.compile(r"^\..+\.tmp-(\d+)(?:-(.+))?$")
#: An output claim (:mod:`tomoconsensus.claims`): ``.NAME.claim`` beside the output.
CLAIM_NAME = re.compile(r"^\..+\.claim$")
#: errno values of a full disk, an exhausted quota and a file-size limit (RLIMIT_FSIZE with SIGXFSZ ignored).
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def temp_name(target: Path) -> Path:
    """The temporary path of ``target`` for this process: ``.NAME.tmp-PID-HOST`` in the same folder."""
    return target.with_name(f".{target.name}.tmp-{os.getpid()}-{_HOST}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale_temporaries(folder: Path) -> list[Path]:
    """Remove temporary files and folders of dead processes of this host (left by ``kill -9``) and output
    claims no process holds; returns them.

    Only names of the temporary pattern ``.NAME.tmp-PID-HOST`` (and ``.NAME.claim``) are touched. Those of
    other hosts (a shared file system) are left alone: their processes cannot be checked.
    """
    from tomoconsensus.claims import remove_if_stale

    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for path in entries:
        if CLAIM_NAME.match(path.name):
            if remove_if_stale(path):
                removed.append(path)
            continue
        match = TEMP_NAME.match(path.name)
        if not match or (match.group(2) or _HOST) != _HOST or _alive(int(match.group(1))):
            continue
        if int(match.group(1)) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                if match.group(2) != _HOST:  # a folder only with this host named, as temp_name writes it
                    continue
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


def _mount_point(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` is an OSError of a full disk, a quota or a file-size limit (:data:`NO_SPACE_ERRNOS`)."""
    return isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS


def no_space(target: str | Path, exc: OSError) -> DiskFull:
    """The one-line :class:`DiskFull` for ``exc`` raised while writing ``target``."""
    what = ("the file-size limit (ulimit -f) was reached" if exc.errno == errno.EFBIG else
            "the disk quota is exhausted" if exc.errno == errno.EDQUOT else "no space left")
    return DiskFull(f"{what} on {_mount_point(Path(target).parent)} while writing {target} "
                    f"([Errno {exc.errno}] {os.strerror(exc.errno)}); no partial output was left: "
                    f"{'raise the limit' if exc.errno == errno.EFBIG else 'free space'} (or choose an --out on "
                    "another disk) and run the command again")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success.

    If the body raises (any exception, KeyboardInterrupt and the CLI's SIGTERM included), the
    temporary file and the folders created for the target are removed and the old target, if
    any, is untouched.
    """
    target = Path(target)
    created = make_parents(target.parent)
    clean_stale_temporaries(target.parent)
    tmp = temp_name(target)
    ok = False
    try:
        yield tmp
        os.replace(tmp, target)
        ok = True
    except OSError as exc:
        if is_no_space(exc):
            raise no_space(target, exc) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()
        if not ok:
            remove_created(created)


def write_text_atomic(target: str | Path, text: str) -> Path:
    """Write ``text`` to ``target`` atomically and return the path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a new temporary folder beside ``target``; on success it replaces ``target``.

    An existing ``target`` (the caller decides whether that is allowed) is removed only after the
    new folder is complete. If the body raises, the temporary folder is removed and ``target`` is
    left as it was.
    """
    target = Path(target)
    created = make_parents(target.parent)
    clean_stale_temporaries(target.parent)
    tmp = temp_name(target)
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    ok = False
    try:
        tmp.mkdir()
        yield tmp
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        ok = True
        if old.exists():
            shutil.rmtree(old)
    except OSError as exc:
        if is_no_space(exc):
            raise no_space(target, exc) from None
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
        if not ok:
            remove_created(created)


# ------------------------------------------------------------------------------ output checks

def same_file(a: Path, b: Path) -> bool:
    """True if ``a`` and ``b`` are the same file: same resolved path, or same inode (hard links)."""
    if Path(os.path.abspath(a)).resolve() == Path(os.path.abspath(b)).resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True


def check_writable_folder(folder: Path, option: str = "--out") -> None:
    """Raise InputError unless ``folder`` exists as a writable folder or can be created."""
    folder = Path(os.path.abspath(folder))
    existing = next(p for p in [folder, *folder.parents] if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise InputError(option, str(folder), "a path whose parents are folders", f"{existing} is a file")
    try:  # os.access is not enough (root, read-only file systems): try to write
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise InputError(option, str(folder), "a folder this user can write to",
                         f"{existing}: {exc.strerror or exc}") from None


def check_output_file(out: str | Path, inputs: Iterable[str | Path | None] = (), overwrite: bool = False,
                      option: str = "--out", read_folders: Iterable[str | Path | None] = ()) -> Path:
    """Check an output file path before any work is done; returns it as a Path.

    Refused (InputError, one line): a path that is one of ``inputs`` (the same resolved path or
    inode: symbolic and hard links count), a path inside one of ``read_folders`` (input folders whose
    files are all read, so the output would become an input of the next run), an existing folder,
    an existing file unless ``overwrite``, and a folder that cannot be written.
    """
    out = Path(out)
    for item in (Path(p) for p in inputs if p is not None):
        if same_file(out, item):
            raise InputError(option, str(out), "a new file, not one of the inputs", f"it is the input {item}")
    for folder in (Path(p) for p in read_folders if p is not None):
        if folder.is_dir() and _inside(out, folder):
            raise InputError(option, str(out), f"a path outside the input folder {folder} (every file there is "
                             "read as input)", "inside it")
    if out.is_dir():
        raise InputError(option, str(out), "a file path", "an existing folder")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise InputError(option, str(out), "a path that does not exist yet (or --overwrite to replace it)",
                         "the file exists")
    check_writable_folder(out.parent, option)
    return out


def check_output_dir(out: str | Path, inputs: Iterable[str | Path | None] = (), owned: Iterable[str] = (),
                     overwrite: bool = False, option: str = "--out") -> Path:
    """Check an output folder: not a file, not an input, writable; existing ``owned`` files need ``overwrite``.

    ``owned`` are the names of the files the command writes there; with ``overwrite`` they may be
    replaced (the caller removes those it will not rewrite), other files in the folder are kept.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(option, str(out), "a folder", "an existing file")
    for item in inputs:
        if item is not None and (same_file(out, Path(item)) or (Path(item).is_file() and _inside(Path(item), out)
                                                                  and Path(item).name in set(owned))):
            raise InputError(option, str(out), "a folder that holds none of the inputs", f"it holds {item}")
    present = sorted(name for name in owned if (out / name).exists())
    if present and not overwrite:
        raise InputError(option, str(out), "a new or empty folder (or --overwrite to replace its "
                         f"{', '.join(present)})", "it holds earlier output")
    check_writable_folder(out, option)
    return out


def check_apart(out: str | Path, inputs: Iterable[str | Path | tuple[str, str | Path] | None],
                option: str = "--out") -> None:
    """Refuse (InputError) an output that is an input, holds one (an input inside the output folder) or lies
    inside an input folder: replacing it (``--overwrite``) would delete the input.

    ``inputs`` are paths, or ``(name, path)`` to name an input in the message (e.g. ``("--teacher", run)``).
    """
    out = Path(out)
    for entry in (p for p in inputs if p is not None):
        name, item = entry if isinstance(entry, tuple) else ("input", entry)
        if item is None:
            continue
        item = Path(item)
        if same_file(out, item):
            raise InputError(option, str(out), "a path apart from the inputs", f"it is the {name} {item}")
        if item.exists() and _inside(item, out):
            raise InputError(option, str(out), "a path apart from the inputs (replacing it would delete them)",
                             f"it holds the {name} {item}")
        if item.is_dir() and _inside(out, item):
            raise InputError(option, str(out), "a path apart from the inputs (not inside an input folder)",
                             f"it lies inside the {name} folder {item}")


def check_output_folder(out: str | Path, inputs: Iterable[str | Path | None], overwrite: bool,
                        owns: Callable[[Path], bool], what: str, option: str = "--out") -> Path:
    """Check an output folder that is replaced as a whole (:func:`atomic_dir`), before any work is done.

    Refused (InputError, one line): an existing file (it is never turned into a folder), a path that is,
    holds or lies inside an input (:func:`check_apart`), a non-empty folder unless ``overwrite``, and,
    even with ``overwrite``, a folder holding anything ``owns`` does not recognise as the toolkit's own
    output (``what`` names it): other files are never deleted.
    """
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(option, str(out), f"a folder for {what}", "an existing file (left untouched)")
    check_apart(out, inputs, option)
    entries = sorted(p for p in out.iterdir() if not (TEMP_NAME.match(p.name) or CLAIM_NAME.match(p.name))) \
        if out.is_dir() else []
    if entries and not overwrite:
        raise InputError(option, str(out), "a new or empty folder (or --overwrite to replace earlier output)",
                         f"it holds {', '.join(p.name for p in entries[:3])}")
    foreign = [p.name for p in entries if not owns(p)]
    if foreign:
        raise InputError(option, str(out), f"a folder holding only {what} for --overwrite to replace (other files "
                         "are never deleted)", f"it also holds {', '.join(foreign[:3])}")
    check_writable_folder(out, option)
    return out
