"""Atomic file writes: a finished output is either complete on disk or absent, never half-written.

Every writer goes through :func:`atomic_path`: the data is written to ``.<name>.<8 random characters>.tmp``
beside the target, which is renamed onto the target once complete. Around that:

- the final file gets the mode a plain ``open(path, "w")`` would give it: ``0o666`` minus the umask for a
  new file, the existing file's permissions when it replaces one;
- a write that fails (disk full, no permission, read-only file system, ...) raises one ``OutputError``
  naming the target and the cause, and leaves no temporary file;
- a killed writer (SIGKILL, power loss of the process) leaves its temporary file behind. The writer holds
  an exclusive ``flock`` on it while writing, so :func:`remove_stale_temporaries`, called when the next run
  starts writing in that folder, removes only files whose writer is gone (see there).

:func:`scratch_path` gives a scratch file of the same naming and lock, removed when the work is done.
:func:`check_output_dir` and :func:`check_output_file` check an output location before long work starts.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from maed.errors import MaedError, OutputError

try:
    import fcntl
except ImportError:  # not POSIX: no lock; stale files are then told apart by their age alone
    fcntl = None

__all__ = [
    "atomic_path",
    "atomic_write_text",
    "atomic_write_bytes",
    "atomic_torch_save",
    "atomic_joblib_dump",
    "check_output_dir",
    "check_output_file",
    "output_error",
    "remove_stale_temporaries",
    "process_start_time",
    "scratch_path",
]

#: the temporary files of :func:`atomic_path` (also those of ``tempfile.mkstemp``, used before): a
#: leading dot, the target's name, 8 characters of ``[a-z0-9_]``, ``.tmp``
TEMPORARY_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")

#: errors that say the output location cannot take the data, whichever file the OS names
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO}

_IMPORTED_AT = time.time()


def _errno_name(e: OSError) -> str:
    return errno.errorcode.get(e.errno, "") if e.errno is not None else ""


def output_error(subject: str, e: OSError) -> OutputError:
    """One line for an ``OSError`` met writing: ``<subject>: <cause> (<errno name>)``, e.g.
    ``cannot write results/x/last.pt: No space left on device (ENOSPC)``."""
    cause = e.strerror or str(e) or type(e).__name__
    name = _errno_name(e)
    return OutputError(f"{subject}: {cause}" + (f" ({name})" if name else ""))


def _is_about_output(e: OSError, *paths: Path) -> bool:
    # a failure of the output itself, not of something the caller reads inside the ``with`` block
    if isinstance(e, MaedError):
        return False
    if e.errno in _WRITE_ERRNOS or e.filename is None:
        return True
    return any(os.fspath(e.filename) in (str(p), str(p.parent)) for p in paths)


def _create_temporary(path: Path) -> tuple[int, Path]:
    """Create ``.<name>.<random>.tmp`` beside ``path`` as ``open`` would (mode 0o666 minus the umask), locked."""
    for _ in range(100):
        token = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789_") for _ in range(8))
        tmp = path.parent / f".{path.name}.{token}.tmp"
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel when this process dies, however it dies
        return fd, tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The caller writes the temporary file by its path (reopening it is fine). On any exception the
    temporary file is removed and ``path`` is left untouched; an ``OSError`` of the write itself (disk
    full, permission, read-only file system, ...) becomes one ``OutputError`` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temporary(path)
    except OSError as e:
        raise output_error(f"cannot write {path}", e) from None
    try:
        yield tmp
        if path.exists() and os.path.samestat(os.fstat(fd), os.stat(tmp)):
            # a plain open() keeps the permissions of the file it overwrites (a file the caller linked in
            # place of the temporary one keeps its own)
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        os.replace(tmp, path)
    except OSError as e:
        if _is_about_output(e, path, tmp):
            raise output_error(f"cannot write {path}", e) from None
        raise
    finally:
        with contextlib.suppress(OSError):  # never hide the error that got us here
            if os.path.lexists(tmp):
                tmp.unlink()
        os.close(fd)  # after the rename, so that no cleaner sees the file unlocked before it is complete


@contextlib.contextmanager
def scratch_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a scratch file beside ``path`` for the duration of the block; it is removed at the end.

    Named and locked as :func:`atomic_path`'s temporary files, so that a killed process's scratch file is
    removed by :func:`remove_stale_temporaries` and a live one's is not. An ``OSError`` of the file itself
    (disk full, ...) becomes one ``OutputError`` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temporary(path)
    except OSError as e:
        raise output_error(f"cannot write {path}", e) from None
    try:
        yield tmp
    except OSError as e:
        if _is_about_output(e, path, tmp):
            raise output_error(f"cannot write {path}", e) from None
        raise
    finally:
        with contextlib.suppress(OSError):
            if os.path.lexists(tmp):
                tmp.unlink()
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    import torch

    # through a Python file object, so that a failed write raises OSError (ENOSPC, ...): torch's own file
    # writer reports an opaque RuntimeError instead
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        try:
            torch.save(obj, f)
        except RuntimeError as e:
            # after a failed write, torch's archive writer fails to finish the file and its RuntimeError
            # hides the OSError that says why
            cause = e.__context__
            while cause is not None and not isinstance(cause, OSError):
                cause = cause.__context__
            if cause is None:
                raise
            raise cause from None


def atomic_joblib_dump(obj: Any, path: str | os.PathLike) -> None:
    import joblib

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        joblib.dump(obj, f)


# ----------------------------------------------------------------------------------- checks up front
def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _probe_writable(directory: Path, option: str, target: Path) -> None:
    # as root, os.access() says yes to a read-only mount's neighbours and to mode-0 folders alike;
    # creating (and removing) a temporary file is the test that cannot be wrong
    try:
        fd, tmp = _create_temporary(directory / ".maed-write-check")
    except OSError as e:
        raise output_error(f"{option} {target}: cannot write in {directory}", e) from None
    os.close(fd)
    tmp.unlink()


def _check_directory(directory: Path, option: str, subject: Path) -> None:
    if directory.exists() and not directory.is_dir():
        if directory == subject:
            raise OutputError(f"{option} {subject}: exists and is not a directory; give a directory")
        raise OutputError(f"{option} {subject}: {directory} is a file, not a directory")
    base = _nearest_existing(directory)
    if not base.is_dir():
        raise OutputError(f"{option} {subject}: {base} is a file, not a directory")
    _probe_writable(base, option, subject)


def check_output_dir(path: str | os.PathLike, *, option: str = "--out") -> Path:
    """Check, before any work, that ``path`` is or can become a directory this process can write in.

    Creates nothing (a missing ``path`` is checked at its nearest existing parent). Raises one
    ``OutputError`` naming ``option`` and ``path``: an existing file, a parent that is a file, no
    permission, a read-only file system. Returns ``path`` as a ``Path``.
    """
    path = Path(path).expanduser()
    _check_directory(path, option, path)
    return path


def check_output_file(path: str | os.PathLike, *, option: str = "--out", example: str | None = None) -> Path:
    """Check, before any work, that the file ``path`` can be written (see :func:`check_output_dir`).

    A directory at ``path`` is refused (give a file name; ``example``: a file name the message suggests in
    it). Returns ``path`` as a ``Path``.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        hint = f" (for example {path / example})" if example else ""
        raise OutputError(f"{option} {path}: is a directory; give a file name{hint}")
    _check_directory(path.parent, option, path)
    return path


# ------------------------------------------------------------------------------ stale temporary files
def process_start_time() -> float:
    """When this process started (seconds since the epoch; Linux ``/proc``, else when this module was imported)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of stat(5), counted after the command name
        lines = Path("/proc/stat").read_text().splitlines()
        boot = next(int(line.split()[1]) for line in lines if line.startswith("btime"))
        return min(boot + ticks / os.sysconf("SC_CLK_TCK"), _IMPORTED_AT)
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED_AT


def _remove_if_writer_gone(path: Path) -> bool:
    # a live writer holds an exclusive flock on its temporary file: take it without waiting, or leave the file
    if fcntl is None:
        return True
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    try:  # still the same file under that name (not renamed away and replaced meanwhile)
        gone = os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        gone = False
    if gone:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    os.close(fd)
    return gone


def remove_stale_temporaries(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """Remove temporary files that killed atomic writes left in ``folder`` (and below, if ``recursive``).

    Only files named like :func:`atomic_path`'s (``.<name>.<8 characters>.tmp``) are considered, and one
    is removed only if both hold: it was last modified before this process started (so it is not one of
    this run's own writes), and no process holds its lock (the writer is gone: a concurrent run that is
    still writing keeps its file). Returns the removed paths; a missing folder is not an error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    started = process_start_time()
    removed = []
    walk = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    for root, _, names in walk:
        for name in names:
            if not TEMPORARY_NAME.match(name):
                continue
            path = Path(root) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_mtime < started and _remove_if_writer_gone(path):
                removed.append(path)
    return removed


def file_sha256(path: str | os.PathLike, block: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes, read once in ``block``-byte pieces (never the whole file in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()
