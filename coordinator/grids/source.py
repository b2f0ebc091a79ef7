"""Where a grid comes from: a ``pandapower.networks`` case, a pandapower JSON / MATPOWER file, or a simbench code.

A :class:`NetSource` is a plain ``(kind, value)`` tuple so that ``coordinator.case`` can carry it without importing
this package. Loading a grid costs 0.1-5 s (simbench builds its nets from CSV), so each source is read once per
machine (``coordinator.diskcache``) and once per process, and handed out as deep copies (~10 ms).
"""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path
from typing import Any, NamedTuple

from coordinator.diskcache import disk_cached, file_stamp

KINDS = ("case", "file", "simbench")
FILE_SUFFIXES = (".json", ".m", ".mat")


class GridError(ValueError):
    """A grid that cannot be used as given; the message names the source and the element."""


class NetSource(NamedTuple):
    """``kind`` is ``case`` (a pandapower.networks name), ``file`` (an absolute path) or ``simbench`` (a code)."""

    kind: str
    value: str

    @property
    def label(self) -> str:
        """Short name for messages and result files: the case name, the file name or the simbench code."""
        return Path(self.value).name if self.kind == "file" else self.value


def as_source(spec: NetSource | tuple[str, str] | str) -> NetSource:
    """A bare string is a ``pandapower.networks`` case name (the historical form of ``tn.case``)."""
    if isinstance(spec, str):
        return NetSource("case", spec)
    kind, value = spec
    if kind not in KINDS:
        raise GridError(f"grid source kind {kind!r} is not one of {', '.join(KINDS)}")
    return NetSource(str(kind), str(value))


def raw_net(spec: NetSource | tuple[str, str] | str) -> Any:
    """The grid exactly as read (cached, shared: never modify it; use :func:`fresh_net` for a private copy)."""
    return _load(as_source(spec))


def fresh_net(spec: NetSource | tuple[str, str] | str) -> Any:
    return copy.deepcopy(raw_net(spec))


@functools.lru_cache(maxsize=32)
def _load(src: NetSource) -> Any:
    if src.kind == "file":
        path = Path(src.value)
        if path.suffix.lower() not in FILE_SUFFIXES or not path.is_file():
            return _read_file(path)  # the error message, without a cache entry
        return _read(src, _versions(), file_stamp(path))
    return _read(src, _versions(), None)


@functools.cache
def _versions() -> tuple[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        simbench = version("simbench")
    except PackageNotFoundError:
        simbench = ""
    return version("pandapower"), simbench


@disk_cached
def _read(src: NetSource, versions: tuple[str, str], stamp: tuple[int, int] | None) -> Any:
    """The grid read from its source; ``versions`` and ``stamp`` only key the disk cache."""
    if src.kind == "case":
        import pandapower.networks as pn

        factory = getattr(pn, src.value, None)
        if not callable(factory) or src.value.startswith("_"):
            raise GridError(f"pandapower.networks has no case {src.value!r}")
        return factory()
    if src.kind == "simbench":
        return _simbench(src.value)
    return _read_file(Path(src.value))


def _simbench(code: str) -> Any:
    import simbench as sb

    try:
        return sb.get_simbench_net(code)
    except Exception as exc:  # simbench raises bare ValueError/KeyError/IndexError for unknown codes
        raise GridError(f"simbench code {code!r} is not usable ({type(exc).__name__}: {exc}); "
                        "examples: '1-MV-rural--0-sw', '1-LV-rural1--0-sw'") from None


def _read_file(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise GridError(f"{path}: unknown grid file type {suffix!r}; allowed: .json (pandapower), .m / .mat (MATPOWER)")
    if not path.is_file():
        raise GridError(f"{path}: file not found")
    import pandapower as pp

    try:
        if suffix == ".json":
            net = pp.from_json(str(path))
        else:
            from pandapower.converter.matpower import from_mpc

            net = from_mpc(str(path), f_hz=50)
    except Exception as exc:  # the readers raise many types on a malformed file
        raise GridError(f"{path}: cannot read the grid ({type(exc).__name__}: {exc})") from None
    if not isinstance(net, pp.pandapowerNet) or not len(net.bus):
        raise GridError(f"{path}: the file holds no pandapower net with buses")
    return net


# --------------------------------------------------------------------------------------------------------------------
# small helpers shared by the TN and ADN reductions


def finite(value: Any, default: float) -> float:
    """``value`` as a float, or ``default`` if it is missing/NaN/inf (pandapower uses NaN for "not set")."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) else default


def flag(value: Any, default: bool = False) -> bool:
    """A boolean column entry; NaN/None mean ``default``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    return bool(value)


def in_service(table: Any) -> Any:
    """Rows of a pandapower element table that are in service (all rows if the column is missing)."""
    if "in_service" not in table.columns:
        return table
    return table[table.in_service.fillna(False).astype(bool)]


def element_name(net: Any, element: str, idx: int) -> str:
    """``line 4 ('MV1.101 Line 5')``: the table, the index and the name if it has one, for messages."""
    name = net[element].name.get(idx) if "name" in net[element].columns else None
    return f"{element} {idx}" + (f" ({name!r})" if isinstance(name, str) and name else "")


class BusMerge:
    """Union-find over buses joined by closed bus-bus switches; a group's representative is its smallest index."""

    def __init__(self, net: Any, buses: set[int]) -> None:
        self.parent = {b: b for b in buses}
        sw = net.switch
        if len(sw):
            closed = sw[(sw.et == "b") & sw.closed.fillna(True).astype(bool)]
            for a, b in zip(closed.bus.astype(int), closed.element.astype(int), strict=True):
                if a in self.parent and b in self.parent:
                    ra, rb = self.find(a), self.find(b)
                    self.parent[max(ra, rb)] = min(ra, rb)

    def find(self, b: int) -> int:
        while self.parent[b] != b:
            self.parent[b] = self.parent[self.parent[b]]
            b = self.parent[b]
        return b


def open_switch_elements(net: Any, et: str) -> set[int]:
    """Indices of lines (``et='l'``) or trafos (``et='t'``) cut by an open switch at one of their ends."""
    sw = net.switch
    if not len(sw):
        return set()
    cut = sw[(sw.et == et) & ~sw.closed.fillna(True).astype(bool)]
    return {int(e) for e in cut.element}
