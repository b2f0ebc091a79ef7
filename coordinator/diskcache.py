"""A disk cache for inputs that are slow to parse, so that only a machine's first run pays for them.

pandapower reads a JSON case in ~0.8 s (its format conversion builds empty nets), simbench builds a grid from CSV in
~5 s and a profile column costs a full CSV parse (~0.25 s); unpickled they take ~15 ms. ``joblib.Memory`` keys each
entry on the function's arguments and drops the entries of a function whose code changed, so callers pass what
identifies the content: library versions, a file's size and modification time (:func:`file_stamp`).

joblib stores what it is handed with its own pickler, whose loader is pure Python: a compiled leader template loads
in ~170 ms that way and in ~15 ms through ``pickle.loads``. So a cached function hands joblib its result already
pickled (bytes, which joblib stores and loads at file speed). joblib watches the code of what it caches, which is
then the pickling shim, so the shim's name carries a hash of the cached function's source instead.

Location: ``$TSODSO_CACHE_DIR``, else the platform's user cache folder (``~/.cache/tsodso`` on Linux).
``TSODSO_CACHE_DIR=off`` turns the cache off; a folder that cannot be written does too, silently (reading inputs
must never fail because of the cache).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ENV = "TSODSO_CACHE_DIR"
OFF = ("off", "none", "0", "")

F = TypeVar("F", bound=Callable)


def cache_dir() -> str | None:
    """The folder in use, or None when caching is off."""
    value = os.environ.get(ENV)
    if value is not None:
        return None if value.strip().lower() in OFF else value
    import platformdirs

    return platformdirs.user_cache_dir("tsodso", appauthor=False)


@functools.cache
def _memory(location: str | None):
    import joblib

    if location is not None:
        try:
            os.makedirs(location, exist_ok=True)
            if not os.access(location, os.W_OK):
                location = None
        except OSError:
            location = None
    return joblib.Memory(location, verbose=0)


def disk_cached(func: F | None = None, *, ignore: tuple[str, ...] = ()):
    """``func`` with its results kept on disk, keyed on its arguments except those named in ``ignore``; the cache
    folder is looked up at each call (tests change it)."""
    if func is None:
        return functools.partial(disk_cached, ignore=ignore)

    pickled = _pickling(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return pickle.loads(_memorized(cache_dir(), pickled, ignore)(*args, **kwargs))

    return wrapper


def _pickling(func: Callable) -> Callable:
    """``func`` returning its result as pickle bytes, with ``func``'s signature (joblib binds and ignores arguments
    by name) and a name that changes with ``func``'s source (joblib's own code check sees only this shim)."""

    def pickled(*args, **kwargs):
        return pickle.dumps(func(*args, **kwargs), protocol=pickle.HIGHEST_PROTOCOL)

    source = hashlib.sha1(inspect.getsource(func).encode()).hexdigest()[:12]
    pickled.__signature__ = inspect.signature(func)
    pickled.__module__ = func.__module__
    pickled.__name__ = pickled.__qualname__ = f"{func.__name__}_{source}"
    return pickled


@functools.cache
def _memorized(location: str | None, func: Callable, ignore: tuple[str, ...]):
    return _memory(location).cache(func, ignore=list(ignore))


@functools.cache
def code_stamp() -> str:
    """Hash of this package's source: joblib notices a change of the cached function only, not of what it calls."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha1()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def file_stamp(path: str | os.PathLike) -> tuple[int, int]:
    """(size, mtime in ns): a changed file gets a new cache entry."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns
