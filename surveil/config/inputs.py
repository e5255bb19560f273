"""Bounded input paths: only regular files are opened, and an output is never one of the inputs.

A FIFO, a character device or a directory given where a file is expected would block ``open()``
(a FIFO with no writer blocks forever) or read without end. Every path the user names goes
through here: ``os.stat`` refuses anything that is not a regular file before it is opened, and
the file is then opened with ``O_NONBLOCK`` and checked again with ``fstat`` on the open
descriptor, which closes the race of a file swapped for a FIFO between the two calls.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class InputPathError(ValueError):
    """A path that must not be opened or written (the message names the path and why; ``reason`` is the why)."""

    def __init__(self, what: str, path: str | Path, reason: str):
        super().__init__(f"{what} {path}: {reason}")
        self.path, self.reason = str(path), reason


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_regular_file(path: str | Path, what: str = "file") -> os.stat_result:
    """The path's stat if it is a regular file (symlinks followed), else InputPathError; nothing is opened."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InputPathError(what, path, f"cannot read {what}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputPathError(what, path, f"cannot read {what}: it is {_kind(info.st_mode)}, not a regular file")
    return info


def open_regular_file(path: str | Path, what: str = "file") -> BinaryIO:
    """Open a regular file for reading, never blocking on a FIFO or device (see the module docstring)."""
    check_regular_file(path, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InputPathError(what, path, f"cannot read {what}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputPathError(what, path, f"cannot read {what}: it is {_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_output(path: str | Path, inputs: Iterable[str | Path] = (), what: str = "output") -> None:
    """Refuse an output that is one of the inputs (same resolved path or same inode: symlinks,
    hard links) or that exists and is not a regular file (a FIFO would block the write)."""
    out = Path(path)
    try:
        info = os.stat(out)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise InputPathError(what, out, f"cannot write {what}: {exc.strerror or exc}") from None
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise InputPathError(what, out, f"cannot write {what}: it is {_kind(info.st_mode)}, not a regular file")
    resolved = out.resolve()
    for source in inputs:
        same = Path(source).resolve() == resolved
        if not same and info is not None:
            try:
                same = os.path.samefile(source, out)
            except OSError:
                same = False
        if same:
            raise InputPathError(what, out, f"is also an input ({source}); writing it would destroy the input")
