"""The ``simulators:`` and ``plugins:`` sections of a scenario: user simulators added without touching the framework.

Parsing is separate from wiring so that a bad section fails with a :class:`ScenarioError` naming the YAML field before
any simulator starts. The format is documented in ``docs/plugins.md``.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenarios.config import ScenarioConfig, ScenarioError

SIM_KINDS = ("python", "cmd", "connect")
SIM_FIELDS = (*SIM_KINDS, "params", "cwd", "env", "posix", "step_timeout_s")
DEFAULT_STEP_TIMEOUT_S = 300.0  # wall-clock limit of one plugin step (simulators.<name>.step_timeout_s)
PLUGIN_FIELDS = ("simulator", "model", "name", "num", "params", "connect", "record")
CONN_FIELDS = ("to", "from", "attrs", "time_shifted", "initial")
RESERVED_NAMES = ("DSO", "TSO", "Coordinator", "Grid", "Recorder")
SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the folder holding the tsodso packages


@dataclass(frozen=True)
class SimulatorSpec:
    name: str
    entry: dict[str, Any]  # mosaik sim_config entry
    params: dict[str, Any]  # init parameters
    path: str  # YAML path, for messages
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S  # wall-clock limit of one step


@dataclass(frozen=True)
class Connection:
    peer: str  # entity id of a core entity (e.g. DSO_adn1) or a plugin name
    outgoing: bool  # True: plugin -> peer ("to"), False: peer -> plugin ("from")
    attrs: tuple[tuple[str, str], ...]  # (source attr, destination attr)
    time_shifted: bool
    initial: dict[str, Any]
    path: str


@dataclass(frozen=True)
class PluginSpec:
    name: str
    simulator: str
    model: str
    num: int
    params: dict[str, Any]
    connections: tuple[Connection, ...]
    record: tuple[str, ...] | None  # None: every attribute used in an outgoing connection
    path: str


def _err(cfg: ScenarioConfig, path: str, value: Any, problem: str, allowed: str | None = None) -> ScenarioError:
    return ScenarioError(cfg.source, path, value, problem, allowed)


def _mapping(cfg: ScenarioConfig, path: str, value: Any, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _err(cfg, path, value, "must be a mapping")
    unknown = [k for k in value if k not in allowed]
    if unknown:
        raise _err(cfg, f"{path}.{unknown[0]}", value[unknown[0]], "unknown field", ", ".join(allowed))
    return value


def plain(value: Any) -> Any:
    """A read-only YAML tree (MappingProxyType, tuples) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def parse_simulators(cfg: ScenarioConfig) -> dict[str, SimulatorSpec]:
    raw = cfg.sections.get("simulators", {})
    if not isinstance(raw, Mapping):
        raise _err(cfg, "simulators", raw, "must be a mapping of simulator name -> {python|cmd|connect: ...}")
    base = Path(cfg.source).parent if cfg.source and not cfg.source.startswith("<") else Path.cwd()
    out: dict[str, SimulatorSpec] = {}
    for name, entry in raw.items():
        path = f"simulators.{name}"
        if not isinstance(name, str) or name in RESERVED_NAMES:
            raise _err(cfg, path, name, "reserved or invalid simulator name", f"not one of {RESERVED_NAMES}")
        e = _mapping(cfg, path, entry, SIM_FIELDS)
        kinds = [k for k in SIM_KINDS if k in e]
        if len(kinds) != 1:
            raise _err(cfg, path, plain(e), "needs exactly one of python / cmd / connect",
                       "python: 'module:Class', cmd: '%(python)s -m module %(addr)s', connect: 'host:port'")
        kind = kinds[0]
        value = e[kind]
        if not isinstance(value, str) or not value.strip():
            raise _err(cfg, f"{path}.{kind}", value, "must be a non-empty string")
        params = e.get("params", {})
        if not isinstance(params, Mapping):
            raise _err(cfg, f"{path}.params", params, "must be a mapping of init parameters")
        sim_entry: dict[str, Any] = {kind: value}
        if kind == "python":
            _check_import(cfg, f"{path}.python", value, base)
        elif kind == "connect":
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit():
                raise _err(cfg, f"{path}.connect", value, "must be host:port", "e.g. 127.0.0.1:5678")
        else:
            cwd = e.get("cwd", ".")
            if not isinstance(cwd, str):
                raise _err(cfg, f"{path}.cwd", cwd, "must be a path string")
            env = e.get("env", {})
            if not isinstance(env, Mapping):
                raise _err(cfg, f"{path}.env", env, "must be a mapping of environment variables")
            posix = e.get("posix", os.name != "nt")
            if not isinstance(posix, bool):
                raise _err(cfg, f"{path}.posix", posix, "must be true or false")
            sim_entry.update(cwd=cwd, posix=posix, env={**_pythonpath(base), **{str(k): str(v) for k, v in
                                                                                  env.items()}})
        for other in ("cwd", "env", "posix"):
            if other in e and kind != "cmd":
                raise _err(cfg, f"{path}.{other}", e[other], f"only for cmd simulators, not {kind}")
        timeout = e.get("step_timeout_s", DEFAULT_STEP_TIMEOUT_S)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
                or timeout <= 0:
            raise _err(cfg, f"{path}.step_timeout_s", timeout, "must be a number of seconds > 0")
        out[name] = SimulatorSpec(name, sim_entry, plain(params), path, float(timeout))
    return out


def _pythonpath(base: Path) -> dict[str, str]:
    """Subprocess plugins find modules next to the scenario file, in the working folder and in the source tree."""
    parts = [str(base.resolve()), str(Path.cwd()), str(SOURCE_ROOT)]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(parts))}


def _check_import(cfg: ScenarioConfig, path: str, spec: str, base: Path) -> None:
    """Import ``module:Class`` now (scenario folder and source tree on sys.path) to name the field on failure."""
    module, _, cls = spec.partition(":")
    if not module or not cls:
        raise _err(cfg, path, spec, "must be 'module:Class'", "e.g. scenarios.examples.ev_fleet:EVFleetSim")
    for folder in (str(base.resolve()), str(SOURCE_ROOT)):
        if folder not in sys.path:
            sys.path.append(folder)
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to fix, with its message
        raise _err(cfg, path, spec, f"cannot import module {module!r}: {type(exc).__name__}: {exc}") from None
    if not hasattr(mod, cls):
        raise _err(cfg, path, spec, f"module {module!r} has no attribute {cls!r}")


def _attr_pairs(cfg: ScenarioConfig, path: str, value: Any) -> tuple[tuple[str, str], ...]:
    """``{src: dest}``, ``[name, ...]`` (same name both sides) or ``[[src, dest], ...]``."""
    pairs: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, str):
                pairs.append((item, item))
            elif isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(x, str) for x in item):
                pairs.append((item[0], item[1]))
            else:
                raise _err(cfg, path, plain(value), "each entry must be a name or a [source, destination] pair")
    if not pairs:
        raise _err(cfg, path, plain(value), "needs at least one attribute",
                   "{source_attr: dest_attr}, [attr, ...] or [[source_attr, dest_attr], ...]")
    return tuple(pairs)


def parse_plugins(cfg: ScenarioConfig, simulators: Mapping[str, SimulatorSpec]) -> list[PluginSpec]:
    raw = cfg.sections.get("plugins", [])
    if not isinstance(raw, (list, tuple)):
        raise _err(cfg, "plugins", plain(raw), "must be a list of plugin entities")
    out: list[PluginSpec] = []
    for k, item in enumerate(raw):
        path = f"plugins[{k}]"
        p = _mapping(cfg, path, item, PLUGIN_FIELDS)
        sim = p.get("simulator")
        if sim not in simulators:
            raise _err(cfg, f"{path}.simulator", sim, "unknown simulator",
                       ", ".join(simulators) or "none defined: add it under 'simulators:'")
        model = p.get("model")
        if not isinstance(model, str):
            raise _err(cfg, f"{path}.model", model, "required: a model name of the simulator")
        name = p.get("name", f"{sim}{k}")
        if not isinstance(name, str) or not name or any(o.name == name for o in out):
            raise _err(cfg, f"{path}.name", name, "must be a unique non-empty string")
        num = p.get("num", 1)
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise _err(cfg, f"{path}.num", num, "must be an integer >= 1")
        params = p.get("params", {})
        if not isinstance(params, Mapping):
            raise _err(cfg, f"{path}.params", plain(params), "must be a mapping of model parameters")
        conns = p.get("connect", [])
        if not isinstance(conns, (list, tuple)):
            raise _err(cfg, f"{path}.connect", plain(conns), "must be a list of connections")
        connections = []
        for c, raw_conn in enumerate(conns):
            cpath = f"{path}.connect[{c}]"
            cm = _mapping(cfg, cpath, raw_conn, CONN_FIELDS)
            ends = [e for e in ("to", "from") if e in cm]
            if len(ends) != 1 or not isinstance(cm[ends[0]], str):
                raise _err(cfg, cpath, plain(cm), "needs exactly one of to / from (an entity id such as DSO_adn1)")
            shifted = cm.get("time_shifted", False)
            if not isinstance(shifted, bool):
                raise _err(cfg, f"{cpath}.time_shifted", shifted, "must be true or false")
            initial = cm.get("initial", {})
            if not isinstance(initial, Mapping):
                raise _err(cfg, f"{cpath}.initial", plain(initial), "must be a mapping {source_attr: value}")
            connections.append(Connection(cm[ends[0]], ends[0] == "to", _attr_pairs(cfg, f"{cpath}.attrs",
                                                                                      cm.get("attrs")),
                                          shifted, plain(initial), cpath))
        record = p.get("record")
        if record is not None and (not isinstance(record, (list, tuple))
                                   or not all(isinstance(r, str) for r in record)):
            raise _err(cfg, f"{path}.record", plain(record), "must be a list of attribute names")
        out.append(PluginSpec(name, sim, model, num, plain(params), tuple(connections),
                              None if record is None else tuple(record), path))
    return out


def expand(value: Any, context: Mapping[str, Any]) -> Any:
    """Replace ``"$name"`` strings by the run's value (``$step_seconds``, ``$start_hour``, ...), recursively."""
    if isinstance(value, str) and value.startswith("$") and value[1:] in context:
        return context[value[1:]]
    if isinstance(value, Mapping):
        return {k: expand(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, context) for v in value]
    return value
