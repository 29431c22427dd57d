"""Write files and directories whole or not at all, never over an input, and clean up after a kill.

Every output of rigl-hw (checkpoints, traces, CSV tables, ONNX files, plots, reports) goes through
`atomic_path` (a temp file in the target's directory, renamed onto the target) or `atomic_dir` (a temp
directory renamed into place), so an error or Ctrl-C never leaves a partial file behind. Temp names
carry the writer's process id, `.<name>.<pid>.<random>.tmp`, so `remove_stale_temps` can delete the
leftovers of a killed process (SIGKILL skips every cleanup) on the next start without touching those
of a live one. `refuse_self_overwrite` stops a command from writing over one of its own inputs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from .errors import SelfOverwriteError, retarget

TEMP_SUFFIX = ".tmp"
_NAME_KEEP = 64     # bytes of the target's name kept in a temp name, so the temp name stays < 255 bytes


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_prefix(name: str) -> str:
    short = name.encode("utf-8")[:_NAME_KEEP].decode("utf-8", "ignore")
    return f".{short}.{os.getpid()}."


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = TEMP_SUFFIX) -> Iterator[Path]:
    """Yield a fresh temp path next to `path`; when the block succeeds, rename it onto `path` (with the
    usual 0666 & ~umask permissions, not mkstemp's 0600); when it raises, delete it."""
    target = Path(path)
    fd, name = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".", prefix=_temp_prefix(target.name),
                                suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as e:      # name the file the user asked for, not the temp file
        if e.filename in (name, str(tmp)) or e.filename2 in (name, str(tmp)):
            raise type(e)(e.errno, e.strerror, str(target)) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def make_temp_dir(target: str | os.PathLike) -> Path:
    """A new empty directory next to `target`, named like a temp file of it (see the module docstring)."""
    t = Path(target)
    parent = t.parent if str(t.parent) else Path(".")
    return Path(tempfile.mkdtemp(dir=parent, prefix=_temp_prefix(t.name), suffix=TEMP_SUFFIX))


def publish_dir(tmp: Path, target: str | os.PathLike) -> Path:
    """Move the finished directory `tmp` to `target`. An existing `target` is replaced only after
    `tmp` is complete: it is renamed aside first, then deleted, so one of the two is always whole."""
    target = Path(target)
    os.chmod(tmp, 0o777 & ~_umask())
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise NotADirectoryError(20, "exists and is not a directory", str(target))
        old = make_temp_dir(target)
        os.replace(target, old / "old")
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
    return target


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp directory next to `path`; when the block succeeds it becomes `path`
    (replacing an older one whole); when it raises it is deleted."""
    remove_stale_temps(Path(path).parent if str(Path(path).parent) else Path("."))
    tmp = make_temp_dir(path)
    try:
        yield tmp
        publish_dir(tmp, path)
    except OSError as e:        # name the files at the place the user asked for, not in the temp directory
        err = retarget(e, tmp, path)
        if err is e:
            raise
        raise err from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Delete the temp files and directories in `directory` left by processes that no longer exist
    (`.<name>.<pid>.<random>.tmp`); returns what was removed. Those of live processes are kept."""
    d = Path(directory)
    removed: list[Path] = []
    try:
        entries = list(d.iterdir())
    except OSError:
        return removed
    for p in entries:
        n = p.name
        if not (n.startswith(".") and n.endswith(TEMP_SUFFIX)):
            continue
        parts = n[1:-len(TEMP_SUFFIX)].split(".")
        pid = next((int(x) for x in reversed(parts[:-1]) if x.isdigit()), None)
        if pid is None or pid == os.getpid() or _pid_alive(pid):
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


# ------------------------------------------------------------------------------------ self-overwrite
def _real(p: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.expanduser(os.fspath(p))))


def refuse_self_overwrite(outputs: Mapping[str, str | os.PathLike | None],
                          inputs: Iterable[str | os.PathLike | None], directories: bool = False) -> None:
    """Raise SelfOverwriteError when an output path (option name -> path) resolves (realpath, links
    followed) to an input of the same command or to a path inside an input directory; with
    `directories` (outputs that are directories, replaced whole) also when it holds an input."""
    ins = [(_real(i), os.fspath(i)) for i in inputs if i]
    for opt, out in outputs.items():
        if not out:
            continue
        o = _real(out)
        for real_in, given in ins:
            if o == real_in:
                why = f"it resolves to that input ({o})"
            elif real_in in o.parents:
                why = f"it lies inside that input directory ({real_in})"
            elif directories and o in real_in.parents:
                why = f"that input lies inside the output directory ({o})"
            else:
                continue
            raise SelfOverwriteError(f"{opt} {out} would overwrite the input {given}: {why}; "
                                     "choose an output path outside the command's inputs")
