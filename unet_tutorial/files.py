"""Writing files atomically: the one place where the package writes a file a user keeps.

A file is first written to a temporary name in its own folder, flushed to disk,
and only then moved onto its real name with ``os.replace`` (atomic on POSIX and
Windows). A run that is killed half-way therefore never leaves a half-written
checkpoint, download or table behind, and never destroys the previous good one;
the temporary file is removed on every error.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from typing import Callable

__all__ = ["write_atomic", "write_text_atomic", "write_json_atomic", "save_model_atomic"]


def write_atomic(path, write: Callable[[pathlib.Path], object]) -> pathlib.Path:
    """Call ``write(temporary_path)``, then move the finished file onto ``path``.

    The temporary file lies in the same folder (so ``os.replace`` never crosses
    file systems) and has the same suffix as ``path`` (Keras wants ``.keras``,
    tifffile reads the suffix). The folder is created if needed.

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(handle)
    temporary = pathlib.Path(name)
    try:
        os.chmod(temporary, 0o644)  # mkstemp makes owner-only files; a user's outputs are readable like any other
        write(temporary)
        with open(temporary, "rb") as written:  # the bytes are on disk before the name points at them
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path, text: str) -> pathlib.Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_json_atomic(path, value, *, indent: int = 1) -> pathlib.Path:
    """Write ``value`` as JSON to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(value, indent=indent))


def save_model_atomic(model, path) -> pathlib.Path:
    """``model.save(path)`` (a ``.keras`` file), atomically."""
    return write_atomic(path, model.save)
