"""The one error path of the CLI: which exceptions are the user's problem, and their one-line message.

Every expected failure becomes `rigl-hw: error: <what, which file or value, and the fix>` on stderr
and exit code 2 (`EXIT_BAD_INPUT`); anything else is a bug and keeps its traceback. Expected are:
  - the project's own errors: any ValueError/RuntimeError subclass defined in rigl_hw, simulator,
    export or studies, or any exception with a true `user_error` attribute (`RiglHwError` below);
  - OSError of any errno (full disk, read-only file system, file too large, name too long, ...);
  - corrupt or truncated archives (zipfile.BadZipFile, zlib.error, EOFError);
  - UnicodeDecodeError (a text input that is not UTF-8), OverflowError, MemoryError.
Numpy-only, no heavy imports: the CLI imports this before anything else.
"""

from __future__ import annotations

import errno
import os
import zipfile
import zlib

EXIT_BAD_INPUT = 2
PROJECT_PACKAGES = ("rigl_hw", "simulator", "export", "studies")


class RiglHwError(ValueError):
    """A user-facing error of rigl-hw: printed as one line, exit code 2."""

    user_error = True


class TrainingDiverged(RiglHwError):
    """The loss or the weights went non-finite beyond the allowed number of skipped steps."""


class ResourceLimitError(RiglHwError):
    """A size (array, hardware, worker count) beyond the stated limit."""


class SelfOverwriteError(RiglHwError):
    """An output path that resolves to one of the command's inputs."""


# errno -> what to do about it
_OS_FIXES = {
    errno.ENOSPC: "free disk space or write somewhere else",
    errno.EROFS: "write to a writable directory",
    errno.EFBIG: "raise the file-size limit (ulimit -f) or write to another file system",
    errno.ENAMETOOLONG: "use a shorter name (at most 255 bytes per path component)",
    errno.EACCES: "check the permissions or choose another path",
    errno.EPERM: "check the permissions or choose another path",
    errno.ENOENT: "check the path",
    errno.EEXIST: "remove it or choose another path",
    errno.EISDIR: "pass a file path, not a directory",
    errno.ENOTDIR: "a part of the path is not a directory: check the path",
    errno.EDQUOT: "free space or write somewhere else",
    errno.EIO: "check the device",
    errno.EMFILE: "raise the open-file limit (ulimit -n)",
}


def retarget(e: OSError, tmp: str | os.PathLike, target: str | os.PathLike) -> OSError:
    """`e` with file names inside the temp path `tmp` shown at their final place under `target`."""
    t, dst = os.fspath(tmp), os.fspath(target)

    def fix(name):
        if isinstance(name, str) and (name == t or name.startswith(t + os.sep)):
            return dst + name[len(t):]
        return name
    f1, f2 = fix(e.filename), fix(e.filename2)
    if (f1, f2) == (e.filename, e.filename2):
        return e
    return type(e)(e.errno, e.strerror, f1, None, f2) if f2 is not None else type(e)(e.errno, e.strerror, f1)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (or its type name), trimmed to `limit`."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _os_message(e: OSError) -> str:
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    what = e.strerror or first_line(e)
    fix = _OS_FIXES.get(e.errno if e.errno is not None else -1)
    head = f"{where}: {what}" if where else what
    return f"{head}; {fix}" if fix else head


def is_project_error(e: BaseException) -> bool:
    """An error class of this project (one of PROJECT_PACKAGES) that signals bad input."""
    if getattr(e, "user_error", False):
        return True
    mod = (type(e).__module__ or "").split(".")[0]
    return mod in PROJECT_PACKAGES and isinstance(e, (ValueError, RuntimeError, LookupError))


def user_message(e: BaseException) -> str | None:
    """The one-line message for an expected failure, or None when `e` is a bug (keep its traceback)."""
    if is_project_error(e):
        return first_line(e)
    if isinstance(e, OSError):
        return _os_message(e)
    if isinstance(e, (zipfile.BadZipFile, zlib.error, EOFError)):
        return (f"a compressed input is corrupt or truncated ({type(e).__name__}: {first_line(e, 160)}); "
                "re-create the file from its source")
    if isinstance(e, UnicodeDecodeError):
        return (f"an input text file is not valid UTF-8 ({e.reason} at byte {e.start}); save it as UTF-8")
    if isinstance(e, OverflowError):
        return f"a number is too large to handle ({first_line(e, 160)}); use a smaller value"
    if isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and "can't allocate memory" in str(e)):
        return "out of memory; use a smaller model, trace or batch, or raise the memory limit"
    return None
