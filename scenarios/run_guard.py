"""Ending a co-simulation cleanly: SIGINT/SIGTERM and per-step wall-clock limits.

mosaik runs every in-process simulator in the main thread's asyncio loop, so the only reliable way to stop a run
from outside a simulator is an exception raised in the main thread. :class:`RunGuard` installs signal handlers that
raise :class:`RunStopped` (a ``KeyboardInterrupt``, which asyncio lets out of the loop at once instead of parking it
on a task), and a watchdog thread that, when a simulator stays in one ``step`` longer than its limit, raises the same
exception by sending SIGINT to the main thread. The recorder marks its writes as critical: a stop that arrives
while a step is being written waits until that step is flushed, so the file always ends on a complete step.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time as _time
from collections.abc import Iterator, Mapping
from typing import Any

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
EXIT_TIMEOUT = 1  # a step past its wall-clock limit: a failed run


class RunStopped(KeyboardInterrupt):
    """The run was ended from outside the simulators (a signal or a step past its wall-clock limit)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message, self.exit_code = message, exit_code


def _drop_stop_reports(record: logging.LogRecord) -> bool:
    """Pyomo logs an error when a stop cuts a model construction; the run reports the stop once, itself."""
    return "RunStopped" not in record.getMessage()


class RunGuard:
    """Signal handlers + step watchdog for the duration of one ``world.run`` (use as a context manager).

    ``limits`` maps a mosaik simulator id prefix (``"EVSim"``, ``"Coordinator"``) to its wall-clock limit per step
    in seconds.
    """

    def __init__(self, limits: Mapping[str, float] | None = None, poll_s: float = 0.2) -> None:
        self.limits = dict(limits or {})
        self.poll_s = poll_s
        self.stop: RunStopped | None = None  # the first reason to stop; later ones are ignored
        self._critical = 0
        self._raised = False
        self.handled = False  # set by the runner once the stop has reached it
        self._old: dict[int, Any] = {}
        self._world: Any = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    # --- life cycle ------------------------------------------------------------------------------------------------
    def watch(self, world: Any) -> None:
        """Start the step watchdog on a mosaik ``World`` (after set-up, before ``world.run``)."""
        self._world = world
        if self.limits and self._old and self._thread is None:  # the watchdog stops the run through SIGINT
            self._thread = threading.Thread(target=self._watchdog, name="tsodso-step-watchdog", daemon=True)
            self._thread.start()

    def __enter__(self) -> RunGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in EXIT_CODES:
                self._old[sig] = signal.signal(sig, self._on_signal)
        for handler in logging.getLogger("pyomo").handlers:
            handler.addFilter(_drop_stop_reports)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
        for handler in logging.getLogger("pyomo").handlers:
            handler.removeFilter(_drop_stop_reports)

    # --- stopping --------------------------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stop is None:
            name = signal.Signals(signum).name
            self.stop = RunStopped(f"interrupted by {name}", EXIT_CODES.get(signum, 1))
        if self._critical == 0:
            self.checkpoint()

    def _raise(self) -> None:
        """Raise the stop once from a signal; a second signal while the world shuts down is ignored (shut-down is
        short). The end of every recorded step raises it again until the runner has caught it (``handled``): a
        signal handler may run where Python swallows exceptions (a ``__del__``, a GC callback)."""
        if self.stop is not None and not self._raised:
            self._raised = True
            raise self.stop

    def checkpoint(self) -> None:
        if self.stop is not None and not self.handled:
            raise self.stop

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """A block (one step's writes and flush) that a stop must not cut; the stop is raised after it."""
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1
        if self._critical == 0:
            self.checkpoint()

    def _watchdog(self) -> None:
        started: dict[str, tuple[Any, float]] = {}  # sid -> (step time, wall clock when first seen in it)
        while not self._done.wait(self.poll_s):
            # the runners mosaik compiled for world.run (read-only here; the public accessor is deprecated and
            # compiles, which must not happen from this thread)
            sims = dict(getattr(self._world._async_world, "_sims_cache", None) or {})
            now = _time.monotonic()
            for sid, sim in sims.items():
                limit = self.limits.get(str(sid).rsplit("-", 1)[0])
                if limit is None or not getattr(sim, "is_in_step", False):
                    started.pop(sid, None)
                    continue
                step = getattr(getattr(sim, "current_step", None), "time", None)
                if started.get(sid, (None,))[0] != step:
                    started[sid] = (step, now)
                elif now - started[sid][1] > limit and self.stop is None:
                    self.stop = RunStopped(f"simulator {sid} exceeded its wall-clock limit of {limit:g} s per step "
                                           f"(step at mosaik time {step})", EXIT_TIMEOUT)
                    # a real signal: it also wakes a main thread blocked in select() on a silent plugin
                    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                    _kill_process(sim)  # a stuck subprocess would also block mosaik's shut-down
                    return


def _kill_process(sim: Any) -> None:
    """Kill the subprocess behind a mosaik ``cmd`` simulator, if it is one."""
    process = getattr(getattr(sim, "_proxy", None), "_process", None)
    if process:
        with contextlib.suppress(OSError):
            process[0].kill()


__all__ = ["EXIT_CODES", "RunGuard", "RunStopped"]
