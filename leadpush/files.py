"""How leadpush touches the user's files: which paths it may write, and how (replaced atomically,
written in place, or refused), and text made safe to print."""

from __future__ import annotations

import contextlib
import gc
import os
import re
import stat
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

from .outcomes import ConfigError

# Paths under these folders are the kernel's views of streams and devices (/dev/stdin, /dev/fd/63,
# /proc/self/fd/0): an input there is read once like stdin, and nothing is ever written beside it.
_STREAM_FOLDERS = ("/dev/", "/proc/")


def is_stream(path: str) -> bool:
    """Whether an input path must be read exactly once: not a regular file (a pipe, a FIFO, a
    device, a terminal) or a path under /dev or /proc (which may be one)."""
    if path == "-":
        return True
    if os.path.abspath(path).startswith(_STREAM_FOLDERS):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False  # the reader says what is wrong with it
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def identity(path: str | Path) -> tuple[object, ...]:
    """What a path names, whatever its spelling: (device, inode) when it exists (symlinks and hard
    links included), else its resolved path."""
    try:
        st = os.stat(path)
    except OSError:
        return ("path", os.path.realpath(path))
    return ("inode", st.st_dev, st.st_ino)


def check_distinct(paths: Iterable[tuple[str, str | Path | None]],
                   allowed: Iterable[frozenset[str]] = ()) -> None:
    """The input and every output must be different files, or the run stops before anything is
    written or sent. `paths` are (what the user calls it, path); None and "-" are skipped. Two
    outputs may share a device such as /dev/null (it keeps nothing); `allowed` lists pairs of
    names that may be one file."""
    ok = set(allowed)
    seen: dict[tuple[object, ...], tuple[str, str]] = {}
    for label, path in paths:
        if path is None or str(path) == "-":
            continue
        key = identity(path)
        if key in seen:
            other_label, other_path = seen[key]
            if frozenset((label, other_label)) in ok:
                continue
            if not label.startswith("the input") and not other_label.startswith("the input") and _is_stream(path):
                continue
            raise ConfigError(f"{label} ({path}) and {other_label} ({other_path}) are the same file; "
                              f"give each its own path (nothing was sent)")
        seen[key] = (label, str(path))


def _is_stream(path: str | Path) -> bool:
    """A device, a pipe or a path under /dev or /proc (/dev/null, /dev/stdout): written in place,
    appended, never replaced."""
    if os.path.abspath(path).startswith(_STREAM_FOLDERS):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def output_target(path: Path, what: str) -> tuple[Path, bool]:
    """Where an output file is written, and whether atomically (a temporary beside it, renamed into
    place). A symlink is followed: its target is replaced, the link stays. A device or a FIFO is
    written in place, never replaced, and so is any path under /dev or /proc. A folder is refused."""
    if os.path.abspath(path).startswith(_STREAM_FOLDERS):
        # /dev/stdout and /proc/self/fd/1 stand for whatever the shell connected: written in place
        # (appended), never renamed over, even when that is a regular file (`> out.txt`).
        if os.path.isdir(path):
            raise ConfigError(f"{path}: is a folder; {what} must be a file")
        return path, False
    real = Path(os.path.realpath(path))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real, True
    except OSError as e:
        raise ConfigError(f"{path}: {what} cannot be written ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{path}: is a folder; {what} must be a file")
    if stat.S_ISREG(st.st_mode):
        return real, True
    return path, False


def temporary_beside(target: Path) -> Path:
    """The temporary `target` is written to before it is renamed into place: `.<name>.<pid>.tmp`
    beside it (the fix-it workbook adds `.plain` for a step of its own). Leftovers of earlier runs
    that could not clean up after themselves (kill -9, a power cut) are removed first: regular
    files named for this same target whose process is gone."""
    leftover = re.compile(rf"\.{re.escape(target.name)}\.([1-9][0-9]*)\.tmp(?:\.plain)?")
    try:
        with os.scandir(target.parent) as entries:
            names = [(e.name, int(m.group(1))) for e in entries if (m := leftover.fullmatch(e.name))]
    except OSError:
        names = []
    for name, pid in names:
        if pid == os.getpid() or _running(pid):  # ours is the caller's; a live one may be writing now
            continue
        path = target.parent / name
        with contextlib.suppress(OSError):  # cleaning never stops a run (a race, no permission)
            if stat.S_ISREG(os.lstat(path).st_mode):  # a symlink, a device or a folder stays
                os.unlink(path)
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def _running(pid: int) -> bool:
    """Whether a process `pid` exists; when in doubt (another user's, a pid out of range), yes."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True
    return True


def open_in_place(path: str | Path, flags: int) -> int:
    """A descriptor for writing a device, a pipe or /dev/stdout in place. Our own stdout or stderr
    (by any spelling) is shared, not reopened: a reopened `> out.txt` would start at its beginning
    and the table printed after would overwrite what was written."""
    try:
        st = os.stat(path)
        for fd in (1, 2):
            own = os.fstat(fd)
            if (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino):
                return os.dup(fd)
    except OSError:
        pass
    return os.open(path, flags, 0o600)


def regular_or_absent(path: Path, what: str) -> os.stat_result | None:
    """lstat of a file leadpush keeps for itself (journal, lock): none yet, or a regular file of
    this user. A symlink, a device or another user's file planted there is refused, never followed."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"{path}: {what} cannot be read ({e.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise ConfigError(f"{path}: {what} is a symbolic link; leadpush does not follow it (remove it, "
                          f"or choose another path)")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path}: {what} is not a regular file; choose another path")
    if st.st_uid != os.geteuid():
        raise ConfigError(f"{path}: {what} belongs to another user (uid {st.st_uid}); leadpush uses only its "
                          f"own files")
    return st


def open_private(path: Path, what: str, *, append: bool) -> int:
    """A file descriptor for a journal or lock: never through a symlink, created 0600."""
    regular_or_absent(path, what)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_APPEND if append else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as e:
        raise ConfigError(f"{path}: {what} cannot be written ({e.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():  # swapped in between: refuse
        os.close(fd)
        raise ConfigError(f"{path}: {what} is not a regular file of this user; choose another path")
    return fd


# C0 and C1 control characters, DEL, and lone surrogates (from a JSON "\ud800" escape).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def let_go(error: BaseException | None = None, *begun: object) -> None:
    """Close, now and quietly, what a failed write left half open (a sheet's row writer in `begun`,
    openpyxl's zip archive held by the frames of `error`'s traceback). Closing them writes once more
    to the full disk, and left to their finalizers Python would print an 'Exception ignored'
    traceback for each; the error itself is the caller's one line."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _unraisable: None
    try:
        for thing in begun:
            close = getattr(thing, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
        while error is not None:
            if error.__traceback__ is not None:
                traceback.clear_frames(error.__traceback__)
            error = error.__context__
        gc.collect()
    finally:
        sys.unraisablehook = hook


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    if c in _NAMED:
        return _NAMED[c]
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def printable(text: str) -> str:
    """Text for a terminal or a log line: control characters and lone surrogates escaped, so a
    cell can neither repaint the terminal nor forge a line."""
    return _UNPRINTABLE.sub(_escape, text) if _UNPRINTABLE.search(text) else text


def sibling_path(input_name: str, tag: str, ext: str, *, stream: bool = False) -> Path:
    """<input name>.<tag>.<ext> beside the input: the input's full name is kept, so inputs that share
    a stem (leads.csv, leads.tsv) never share an output. stdin.<tag>.<ext> in the current folder for
    standard input, a pipe or a device (nothing is ever written beside those)."""
    if stream or input_name == "<stdin>":
        return Path(f"stdin.{tag}.{ext}")
    p = Path(input_name)
    return p.with_name(f"{p.name}.{tag}.{ext}")
