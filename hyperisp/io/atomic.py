"""Atomic file output: the final name only ever holds a complete file.

Encoders write to a hidden temporary file in the same folder; on success it is
flushed to disk and renamed over the final name (a rename within one folder is
atomic on POSIX and Windows). On any failure, Ctrl-C included, the temporary
file is removed and nothing appears under the final name.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from os import PathLike
from pathlib import Path

from hyperisp.errors import HyperispError

__all__ = ["atomic_output", "check_output_path"]


def check_output_path(path: str | PathLike, *, overwrite: bool = False) -> Path:
    """Check that ``path`` can be written, before any (slow) work is done.

    Raises HyperispError when the output exists (and ``overwrite`` is False), is a
    folder, or its folder is missing or not writable. Returns ``path`` as a Path.
    """
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise HyperispError(path, "is a folder, expected an output file name")
    if path.exists() and not overwrite:
        raise HyperispError(path, "already exists (use --overwrite)")
    if not folder.exists():
        raise HyperispError(path, "output folder does not exist")
    if not folder.is_dir():
        raise HyperispError(path, f"output folder {str(folder)!r} is a file, not a folder")
    # os.access answers yes for root even on read-only folders; creating the
    # temporary file below is the real test, this only gives an early, clear error.
    if not os.access(folder, os.W_OK | os.X_OK):
        raise HyperispError(path, "output folder is not writable")
    return path


def _create_temp(path: Path) -> Path:
    """Create an empty hidden ``.<name>.<random>.part`` file next to ``path``."""
    for _ in range(100):
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            # O_EXCL: never clobber someone else's file. Mode 0o666 (minus the
            # umask) so the result gets the usual permissions, unlike mkstemp's 0o600.
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as err:
            raise HyperispError(path, f"cannot write: {err.strerror or err}") from None
        os.close(fd)
        return temp
    raise HyperispError(path, "cannot create a temporary file next to it")


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_folder(folder: Path) -> None:
    """Persist the rename itself; best effort (not possible on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _publish(temp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished ``temp`` to ``path``."""
    if not overwrite:
        # A hard link fails if ``path`` appeared meanwhile (no check-then-rename
        # race). Filesystems without hard links fall back to a re-check + rename.
        try:
            os.link(temp, path)
        except FileExistsError:
            raise HyperispError(path, "already exists (use --overwrite)") from None
        except OSError:
            if path.exists():
                raise HyperispError(path, "already exists (use --overwrite)") from None
            os.replace(temp, path)
        else:
            os.unlink(temp)
        return
    os.replace(temp, path)


@contextlib.contextmanager
def atomic_output(path: str | PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Context manager yielding a temporary path to write ``path``'s content to.

    The temporary file already exists (empty) in the output folder; write it with
    any encoder. When the block ends normally the file is fsync'ed and renamed to
    ``path``; when it raises (KeyboardInterrupt too) the temporary file is deleted
    and the exception propagates.

    Raises HyperispError up front if ``path`` exists (unless ``overwrite``) or its
    folder is missing or not writable.

    Example::

        with atomic_output("out.png") as tmp:
            image.save(tmp, format="PNG")
    """
    path = check_output_path(path, overwrite=overwrite)
    temp = _create_temp(path)
    try:
        yield temp
        try:
            _fsync_file(temp)
            _publish(temp, path, overwrite)
        except OSError as err:
            raise HyperispError(path, f"cannot write: {err.strerror or err}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_folder(path.parent)
