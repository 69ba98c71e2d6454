"""Files written whole or not at all, and a full disk reported with its path.

:func:`atomic_write` (one file), :func:`staged_dir` (a new folder), :func:`staged_files` (files into an existing
folder, as a Trainer save does) write under a temporary name next to the target and rename when complete; on any
failure the partial files are removed and the target keeps what it had. A full disk (or quota), also when a library
wrapped it in its own exception, becomes one ``OSError`` that names the path (:func:`disk_full_error`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile

__all__ = ["atomic_write", "staged_dir", "staged_files", "is_disk_full", "disk_full_error"]

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def is_disk_full(err: BaseException, path=None) -> bool:
    """Whether ``err`` (or what caused it) is a full disk or quota, also when a library wrapped it (safetensors,
    pyarrow and torch report it in their own exception types and words): by its errno or message, or, given the
    ``path`` that was being written, by the space left on its disk (under 1 MiB)."""
    if path is not None:
        probe = os.path.abspath(str(path))
        while not os.path.exists(probe) and os.path.dirname(probe) != probe:
            probe = os.path.dirname(probe)
        with contextlib.suppress(OSError):
            if shutil.disk_usage(probe).free < 2**20:
                return True
    seen = 0
    while err is not None and seen < 5:
        if isinstance(err, OSError) and err.errno in _DISK_FULL:
            return True
        if any(s in str(err) for s in ("No space left on device", "Disk quota exceeded", "StorageFull")):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def disk_full_error(err: BaseException, path, kept: str = "") -> OSError:
    """The ``OSError`` a full disk is reported with: where it happened, that nothing half-written was left there,
    and what to do."""
    return OSError(errno.ENOSPC, f"no space left on the device while writing {os.path.abspath(str(path))}; the "
                                 f"partial files were removed{kept}. Free some space (or choose an output folder on "
                                 "another disk) and run again")


@contextlib.contextmanager
def atomic_write(path, mode: str = "w"):
    """Write ``path`` whole or not at all: the block writes a temporary file in the same folder, renamed to ``path``
    when the block ends; on any failure the temporary file is removed and ``path`` is left as it was. A full disk is
    reported with the path (:func:`disk_full_error`)."""
    folder = os.path.dirname(os.path.abspath(str(path)))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(str(path))}.", suffix=".partial", dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException as err:
        full = is_disk_full(err, tmp)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if full:
            raise disk_full_error(err, path) from err
        raise


@contextlib.contextmanager
def staged_dir(target, *, replace: bool = False):
    """Build a folder whole or not at all: the block fills a temporary folder next to ``target`` (yielded), which then
    becomes ``target``; on any failure it is removed and ``target`` is left as it was. With ``replace`` an existing
    ``target`` is swapped out only once the new one is complete (and then removed)."""
    target = os.path.abspath(str(target))
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".partial", dir=parent)
    try:
        yield tmp
        old = None
        if os.path.lexists(target):
            if not replace:
                raise FileExistsError(f"{target} appeared while it was being written; nothing was replaced")
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".old", dir=parent)
            os.replace(target, os.path.join(old, "previous"))
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as err:
        full = is_disk_full(err, tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise disk_full_error(err, target) from err
        raise


@contextlib.contextmanager
def staged_files(folder):
    """Write files into ``folder`` whole or not at all: the block writes into a temporary folder inside ``folder``
    (yielded), whose entries then replace those of the same name in ``folder``; on any failure the temporary folder is
    removed and ``folder`` keeps what it had. A full disk is reported with the path."""
    folder = os.path.abspath(str(folder))
    os.makedirs(folder, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".w2s-save-", suffix=".partial", dir=folder)
    try:
        yield tmp
        for name in sorted(os.listdir(tmp)):
            target = os.path.join(folder, name)
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            os.replace(os.path.join(tmp, name), target)
    except BaseException as err:
        if is_disk_full(err, tmp):
            raise disk_full_error(err, folder) from err
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


