"""Output files that never lose a result: checked before any work, written to a temporary file and renamed.

``check_output_file`` runs before a command solves or reads anything, so a bad ``--output`` costs nothing and
an existing result is refused unless the user passed ``--overwrite``. ``write_text_atomic`` writes next to the
target and renames over it (``os.replace``), so a crash, a full disk or Ctrl-C leaves either the old file or the
new one, never a truncated one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class OutputPathError(Exception):
    """An output path that cannot or must not be written; the message names the option, the path and the fix."""


def check_output_file(path: Path, overwrite: bool, option: str = "--output") -> None:
    """Refuse a directory, a folder that cannot be created or written, or an existing file without ``overwrite``."""
    if path.is_dir():
        raise OutputPathError(f"{option} {path}: is a directory; allowed: a file path")
    if path.exists() and not overwrite:
        raise OutputPathError(f"{option} {path}: file exists; pass --overwrite to replace it")
    check_output_folder(path.parent, option, path)


def check_output_folder(folder: Path, option: str, target: Path | None = None) -> None:
    """``folder`` exists as a writable directory or can be created (probed with a temporary file, then removed)."""
    target = folder if target is None else target
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"{option} {target}: {existing} is not a directory; allowed: a path in a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".tsodso-probe-")
    except OSError as exc:
        raise OutputPathError(f"{option} {target}: cannot write in {existing} ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode a plain open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON (``NaN`` allowed, as in docs/results-schema.md) written with ``write_text_atomic``."""
    write_text_atomic(path, json.dumps(data, indent=1, allow_nan=True))


def failed_path(path: Path) -> Path:
    """Where a solve without a solution puts its result: ``result.json`` -> ``result.failed.json``."""
    return path.with_name(f"{path.stem}.failed{path.suffix or '.json'}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
