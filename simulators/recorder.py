"""HDF5 run recorder: an event-based mosaik simulator on plain h5py.

Why not mosaik-hdf5: it needs a value from every connection at t=0, fixes dtypes from the first value, writes nothing
if the run ends early and asserts on steps without input (docs/cosimulation.md). This recorder instead creates datasets
lazily, keeps every dataset aligned to one time axis, and flushes after every step so that a crashed run still leaves
a readable file with everything recorded before the crash. The layout is documented in ``docs/results-schema.md``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib
import json
import platform
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import h5py
import mosaik_api_v3
import numpy as np
from loguru import logger

SCHEMA = "tsodso-run/1"
TIME = "time"
ROWS_COMPLETE = "rows_complete"  # root attribute: rows of finished steps at the last flush
_STR = h5py.string_dtype()
_VERSIONED = ("tsodso", "numpy", "h5py", "mosaik", "mosaik_api_v3", "pandapower", "pyomo")
_CHUNK_BYTES = 64 * 1024

META = {
    "api_version": "3.0",
    "type": "event-based",
    "models": {
        "Recorder": {
            "public": True,
            "any_inputs": True,
            "params": ["path", "attrs", "start", "step_seconds", "append", "time_offset"],
            "attrs": [],
        },
    },
    "extra_methods": ["record_meta"],
}


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a run's numbers, for provenance; missing packages are skipped."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = version(name.replace("_", "-"))
        except PackageNotFoundError:  # not installed as a distribution: try the module attribute
            try:
                out[name] = str(importlib.import_module(name).__version__)
            except Exception as exc:  # provenance is best effort, never fatal
                logger.debug(f"recorder: no version for {name}: {exc}")
    return out


def entity_path(full_id: str) -> tuple[str, str]:
    """Map a mosaik full id ``sid.eid`` to ``(type, name)``: eid ``Type_name`` (or ``Type-name``) -> ``(Type, name)``.

    Simulators of this project name their entities ``<Type>_<name>`` so that files read as ``/DSO/adn1/pcc_mw``
    regardless of the simulator id. An eid without a separator gives ``(eid, sid)``.
    """
    sid, _, eid = full_id.partition(".")
    if not eid:
        sid, eid = "", sid
    for sep in ("_", "-"):
        etype, found, name = eid.partition(sep)
        if found and etype and name:
            return _clean(etype), _clean(name)
    return _clean(eid), _clean(sid or "0")


def _clean(name: str) -> str:
    """HDF5 names cannot contain '/'."""
    return str(name).replace("/", "_") or "_"


def _attr_value(value: Any) -> Any:
    """HDF5 attributes take scalars and strings; anything structured is stored as JSON text."""
    if isinstance(value, (str, bool, int, float, np.integer, np.floating)):
        return value
    return json.dumps(value, default=str, sort_keys=True)


class RunFile:
    """One HDF5 run file: a single time axis ``/time`` and lazily created, NaN-filled datasets aligned to it."""

    def __init__(
        self,
        path: str,
        attrs: Mapping[str, Any] | None = None,
        time_resolution: float = 1.0,
        start: str | None = None,
        step_seconds: float | None = None,
        append: bool = False,
        time_offset: int = 0,
    ) -> None:
        """``append``: continue an existing file (``tsodso run --resume``) after its last complete row; recorded
        times are shifted by ``time_offset`` (mosaik restarts at 0)."""
        self.path = str(path)
        self.time_offset = int(time_offset)
        # no HDF5 file lock: a reader (a test, a user watching the run) may open the file while it grows
        self._h5 = h5py.File(self.path, "a" if append else "w", locking=False)
        self._datasets: list[h5py.Dataset] = []
        self._owners: dict[tuple[str, str], str] = {}  # (type, name) -> full id, to detect collisions
        self._groups: dict[str, h5py.Group] = {}  # full id -> entity group
        self._warned: set[str] = set()
        self._n = 0
        self._complete = 0  # rows on disk at the last flush: every one a finished step
        self._last_time: int | None = None
        if append:
            self._reopen()
            self.set_attrs(attrs or {})
            return
        self._write_root_attrs(attrs or {})
        self._time = self._h5.create_dataset(TIME, shape=(0,), maxshape=(None,), dtype="int64", chunks=(1024,))
        self._time.attrs["time_resolution_s"] = float(time_resolution)
        if step_seconds is not None:
            self._time.attrs["step_seconds"] = float(step_seconds)
        if start is not None:
            self._time.attrs["start"] = str(start)
        self.flush()

    def _reopen(self) -> None:
        """Pick up an existing file: every dataset cut to the last complete row, the entity groups re-registered."""
        self._time = self._h5[TIME]
        n = int(self._h5.attrs.get(ROWS_COMPLETE, self._time.shape[0]))

        def visit(name: str, node: Any) -> None:
            if isinstance(node, h5py.Dataset) and name != TIME:
                node.resize(n, axis=0)
                self._datasets.append(node)
            elif isinstance(node, h5py.Group) and "full_id" in node.attrs:
                full_id = str(node.attrs["full_id"])
                self._groups[full_id] = node
                self._owners[tuple(name.split("/", 1))] = full_id  # type: ignore[index]

        self._h5.visititems(visit)
        self._time.resize((n,))
        self._n = self._complete = n
        self._last_time = int(self._time[n - 1]) if n else None

    def _write_root_attrs(self, attrs: Mapping[str, Any]) -> None:
        root = self._h5.attrs
        root["schema"] = SCHEMA
        root["created_utc"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        for name, ver in package_versions().items():
            root[f"version_{name}"] = ver
        self.set_attrs(attrs)

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Add or overwrite root attributes (scenario config, seeds, notes); structured values become JSON."""
        for key, value in attrs.items():
            self._h5.attrs[str(key)] = _attr_value(value)
        self._h5.flush()

    @property
    def rows(self) -> int:
        return self._n

    def row(self, time: int) -> int:
        """Row of ``time``; a new time appends a row, a repeated time (same-time re-step) reuses the last row."""
        time = int(time) + self.time_offset
        if self._last_time is not None and time == self._last_time:
            return self._n - 1
        if self._last_time is not None and time < self._last_time:
            raise ValueError(f"time {time} is before the last recorded time {self._last_time}")
        self._n += 1
        self._time.resize((self._n,))
        self._time[self._n - 1] = int(time)
        self._last_time = int(time)
        return self._n - 1

    def write(self, time: int, full_id: str, attr: str, value: Any) -> None:
        """Record ``value`` of ``attr`` of entity ``full_id`` at ``time``."""
        row = self.row(time)
        self._write(self._entity_group(full_id), _clean(attr), row, value)

    def _entity_group(self, full_id: str) -> h5py.Group:
        group = self._groups.get(full_id)
        if group is not None:
            return group
        etype, name = entity_path(full_id)
        if self._owners.get((etype, name), full_id) != full_id:
            sid = _clean(full_id.partition(".")[0])
            logger.warning(f"recorder: {full_id} collides with {self._owners[(etype, name)]}; stored as {name}@{sid}")
            name = f"{name}@{sid}"
        self._owners[(etype, name)] = full_id
        group = self._h5.require_group(f"{etype}/{name}")
        group.attrs["full_id"] = full_id
        self._groups[full_id] = group
        return group

    def _write(self, parent: h5py.Group, name: str, row: int, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            sub = self._require(parent, name, h5py.Group, lambda: parent.create_group(name))
            if sub is not None:
                for key, item in value.items():
                    self._write(sub, _clean(str(key)), row, item)
            return
        if isinstance(value, (str, bytes)):
            text = value.decode() if isinstance(value, bytes) else value
            ds = self._require(parent, name, h5py.Dataset, lambda: self._create(parent, name, (), _STR))
            if ds is not None and self._check_kind(ds, string=True):
                self._grow(ds)[row] = text
            return
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            self._write(parent, name, row, json.dumps(value, default=str))
            return
        ds = self._require(parent, name, h5py.Dataset, lambda: self._create(parent, name, arr.shape, np.float64))
        if ds is not None and self._check_kind(ds, string=False):
            self._grow(ds)[row] = self._fit(ds, arr)

    def _grow(self, ds: h5py.Dataset) -> h5py.Dataset:
        if ds.shape[0] < self._n:
            ds.resize(self._n, axis=0)
        return ds

    def _require(self, parent: h5py.Group, name: str, kind: type, make: Any) -> Any:
        """Existing node of the right kind, a new one, or None (with one warning) when the kind conflicts."""
        node = parent.get(name)
        if node is None:
            return make()
        if isinstance(node, kind):
            return node
        self._warn_once(node.name, f"recorder: {node.name} changed between a dict and a value; later values dropped")
        return None

    def _check_kind(self, ds: h5py.Dataset, string: bool) -> bool:
        if (h5py.check_string_dtype(ds.dtype) is not None) == string:
            return True
        self._warn_once(ds.name, f"recorder: {ds.name} changed between text and numbers; later values dropped")
        return False

    def _fit(self, ds: h5py.Dataset, arr: np.ndarray) -> np.ndarray:
        """Arrays keep the shape of their first sight; a different one is NaN-padded / cut, with one warning."""
        shape = ds.shape[1:]
        if arr.shape == shape:
            return arr
        self._warn_once(ds.name, f"recorder: {ds.name} has shape {arr.shape}, first seen {shape}; padded/cut")
        out = np.full(shape, np.nan)
        if arr.ndim == len(shape):
            cut = tuple(slice(0, min(a, b)) for a, b in zip(arr.shape, shape, strict=True))
            out[cut] = arr[cut]
        return out

    def _create(self, parent: h5py.Group, name: str, shape: tuple[int, ...], dtype: Any) -> h5py.Dataset:
        width = int(np.prod(shape)) if shape else 1
        chunk_rows = max(1, min(256, _CHUNK_BYTES // (8 * max(width, 1))))
        fill = np.nan if dtype is np.float64 else None
        ds = parent.create_dataset(
            name,
            shape=(self._n, *shape),
            maxshape=(None, *shape),
            dtype=dtype,
            chunks=(chunk_rows, *shape),
            fillvalue=fill,
        )
        self._datasets.append(ds)
        return ds

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)

    def flush(self) -> None:
        """Pad every dataset to the time axis and push it to disk, so a crash loses no finished step; the root
        attribute ``rows_complete`` says how many rows are finished steps (a reader or a resume trusts only
        those)."""
        for ds in self._datasets:
            if ds.shape[0] != self._n:
                ds.resize(self._n, axis=0)
        self._h5.attrs[ROWS_COMPLETE] = self._n
        self._sync()
        self._complete = self._n

    def _sync(self) -> None:
        self._h5.flush()

    def abort(self) -> None:
        """After a failed write: cut every dataset back to the last flushed row and close, as far as the file
        still lets us (best effort: the disk may be full)."""
        if not self._h5.id.valid:
            return
        try:
            for ds in [self._time, *self._datasets]:
                if ds.shape[0] > self._complete:
                    ds.resize(self._complete, axis=0)
            self._h5.attrs[ROWS_COMPLETE] = self._complete
            self._n = self._complete
        except Exception as exc:  # noqa: BLE001 - the file is already failing; keep the first error
            logger.debug(f"recorder: rollback of {self.path} failed: {exc}")
        try:
            self._h5.close()
        except Exception as exc:  # noqa: BLE001
            logger.debug(f"recorder: closing {self.path} failed: {exc}")

    def close(self) -> None:
        if self._h5.id.valid:
            self.flush()
            self._h5.close()


class ResultsWriteError(RuntimeError):
    """The results file could not be written (full disk, I/O error); it keeps every step flushed before."""


class Recorder(mosaik_api_v3.Simulator):
    """mosaik front end of :class:`RunFile`: one ``Recorder`` entity that accepts any input attribute.

    The file is opened when mosaik finishes the set-up (``setup_done``), not at ``create``: a scenario that fails
    while its plugins are started or connected leaves no file behind. In-process, ``init(guard=...)`` takes a
    :class:`scenarios.run_guard.RunGuard`, so that a signal never cuts a step's writes in half.
    """

    def __init__(self) -> None:
        super().__init__(META)
        self._time_resolution = 1.0
        self._file: RunFile | None = None
        self._file_args: dict[str, Any] | None = None
        self._eid = "Recorder"
        self._guard: Any = None

    def init(self, sid: str, time_resolution: float = 1.0, guard: Any = None, **sim_params: Any) -> dict:
        self._time_resolution = float(time_resolution)
        self._guard = guard
        return self.meta

    def create(
        self,
        num: int,
        model: str,
        path: str,
        attrs: Mapping[str, Any] | None = None,
        start: str | None = None,
        step_seconds: float | None = None,
        append: bool = False,
        time_offset: int = 0,
    ) -> list[dict]:
        if num != 1 or self._file_args is not None:
            raise ValueError("a Recorder simulator holds exactly one Recorder entity (one file)")
        self._file_args = {"path": path, "attrs": attrs, "time_resolution": self._time_resolution, "start": start,
                           "step_seconds": step_seconds, "append": append, "time_offset": time_offset}
        return [{"eid": self._eid, "type": model}]

    def setup_done(self) -> None:
        self._require_file()

    def step(self, time: int, inputs: dict, max_advance: int) -> None:
        """Write every input at ``time`` and flush; event-based, so no next step is requested."""
        with self._guard.critical() if self._guard is not None else contextlib.nullcontext():
            run = self._require_file()
            try:
                for attrs in inputs.values():
                    for attr, sources in attrs.items():
                        for full_id, value in sources.items():
                            run.write(time, full_id, attr, value)
                run.flush()
            except OSError as exc:
                run.abort()
                reason = exc.strerror or str(exc)
                raise ResultsWriteError(f"cannot write results to {run.path}: {reason} (the file keeps the "
                                        f"{run.rows} steps recorded before)") from exc

    def record_meta(self, attrs: Mapping[str, Any]) -> None:
        """Extra method: add root attributes after creation (e.g. the resolved scenario)."""
        self._require_file().set_attrs(attrs)

    def get_data(self, outputs: dict) -> dict:
        return {}

    def finalize(self) -> None:
        if self._file is not None:
            self._file.close()

    def _require_file(self) -> RunFile:
        if self._file is None:
            if self._file_args is None:
                raise RuntimeError("create a Recorder entity before stepping")
            self._file = RunFile(**self._file_args)
        return self._file


def read_run(path: str) -> dict[str, np.ndarray]:
    """All datasets of a run file as ``{"/time": ..., "/DSO/adn1/pcc_mw": ...}``; text datasets as str objects.
    Only the rows of finished steps (root attribute ``rows_complete``) are returned."""
    out: dict[str, np.ndarray] = {}
    rows: int | None = None

    def visit(name: str, node: Any) -> None:
        if isinstance(node, h5py.Dataset):
            view = node.asstr() if h5py.check_string_dtype(node.dtype) else node
            data = view[()] if rows is None or not node.shape else view[:rows]
            out["/" + name] = np.asarray(data)

    with h5py.File(path, "r", locking=False) as h5:
        if ROWS_COMPLETE in h5.attrs:
            rows = int(h5.attrs[ROWS_COMPLETE])
        h5.visititems(visit)
    return out


def read_attrs(path: str, node: str = "/") -> dict[str, Any]:
    """Attributes of one node (root by default) as plain Python values."""
    with h5py.File(path, "r", locking=False) as h5:
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in h5[node].attrs.items()}


def main() -> int:
    """Entry point for running the recorder as a separate process (mosaik ``cmd``)."""
    return mosaik_api_v3.start_simulation(Recorder(), "tsodso HDF5 recorder")


if __name__ == "__main__":
    main()
