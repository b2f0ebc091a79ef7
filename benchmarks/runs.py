"""Shared by the benchmark scripts: one case per child process (a solver crash or hang becomes a row, not the
end of the benchmark) and the machine/version facts stored next to the rows."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import platform
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any


def machine(packages: tuple[str, ...]) -> dict[str, Any]:
    """Date, Python, platform, cores and the versions of ``packages`` that are installed."""
    env: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    for pkg in packages:
        try:
            env[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return env


def _child(conn: Any, target: Callable[..., dict[str, Any]], kwargs: dict[str, Any]) -> None:
    conn.send(target(**kwargs))
    conn.close()


def run_isolated(target: Callable[..., dict[str, Any]], kwargs: dict[str, Any], watchdog_s: float,
                 identity: dict[str, Any]) -> dict[str, Any]:
    """``target(**kwargs)`` in a child; a crash (signal) or a run past ``watchdog_s`` gives an error row that
    carries ``identity`` (the columns naming the case)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    # not a daemon: the SCIP strategy forks its own child (coordinator/solvers/mip.py), which a daemonic process may
    # not do; the watchdog below kills a child that does not answer, so none is left behind
    proc = ctx.Process(target=_child, args=(child, target, kwargs), daemon=False)
    start = time.perf_counter()
    proc.start()
    child.close()
    row: dict[str, Any] | None = None
    if parent.poll(watchdog_s):
        try:
            row = parent.recv()
        except EOFError:  # the child died before sending
            row = None
    proc.join(timeout=10)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if row is None:
        why = f"exit code {proc.exitcode}" if proc.exitcode is not None else "killed"
        if time.perf_counter() - start >= watchdog_s:
            why = f"no answer within the {watchdog_s:.0f} s watchdog; killed"
        row = {**identity, "status": "error", "message": f"child process failed ({why})",
               "wall_s": time.perf_counter() - start}
    return row
