"""Scenario files: YAML -> validated, frozen config -> :class:`coordinator.case.Case`.

Validation is explicit (no pydantic) so that every error names the file, the field path, the bad value and what is
allowed, in one :class:`ScenarioError`. The format is documented in ``docs/scenario-format.md``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import yaml

from coordinator.case import Case, Prices
from coordinator.grids.placement import AUTO, AutoRule, BessRule
from coordinator.grids.source import NetSource
from coordinator.prices import PRICE_UNITS
from coordinator.scaling import BessSizing

SCENARIO_DIR = Path(__file__).resolve().parent
STEPS: dict[str, int] = {"1h": 60, "15min": 15}  # step string -> minutes
PRICE_MODES = ("lmp", "tariff")
# Sections owned by other parts of the product (runner, plugins, solver, ...): kept as plain mappings, checked by
# their consumers, so that adding one does not need a change here.
PASS_THROUGH_SECTIONS = ("solver", "simulators", "plugins", "output", "coordinator")
_NAME_RE = re.compile(r"[A-Za-z0-9_\-]+")
_MISSING = object()


class ScenarioError(ValueError):
    """An invalid scenario; the message names the file, the field path, the bad value and what is allowed."""

    def __init__(self, source: str, path: str, value: Any, problem: str, allowed: str | None = None) -> None:
        self.source, self.path, self.value, self.problem, self.allowed = source, path, value, problem, allowed
        where = f"{source}: {path}" if path else source
        got = "" if value is _MISSING else f" = {value!r}"
        tail = f"; allowed: {allowed}" if allowed else ""
        super().__init__(f"{where}{got}: {problem}{tail}")


# --------------------------------------------------------------------------------------------------------------------
# Config dataclasses


@dataclass(frozen=True)
class TNConfig:
    case: str | None = "case30"  # a pandapower.networks case (None when ``file`` is given)
    load_profile: str = "G0-A"  # simbench load profile scaling every TN bus load (peak = nominal, see load_level)
    file: str | None = None  # absolute path of a pandapower JSON or MATPOWER file
    load_scale: float = 1.0  # multiplies every TN base load
    rating_scale: float = 1.0  # multiplies every line and transformer rating
    branch_ratings: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))  # name -> MW

    @property
    def source(self) -> NetSource:
        return NetSource("file", self.file) if self.file else NetSource("case", self.case or "case30")


@dataclass(frozen=True)
class ADNConfig:
    name: str
    tn_bus: int  # pandapower bus index of the TN load bus hosting the PCC
    placement: str  # ADN name in the placement table, or "auto"
    load_profile: str = "H0-B"
    pv_profile: str = "PV3"
    vmin: float | None = None  # None: DistributionNetwork defaults
    vmax: float | None = None
    pcc_limit: float | None = None
    load_scale: float = 1.0  # multiplies the bus loads (P and Q)
    pv_scale: float = 1.0  # multiplies the placement's PV peaks
    bess: BessSizing = BessSizing()  # scale factors on the placement's BESS power and energy
    network: NetSource = NetSource("case", "case33bw")
    auto: AutoRule | None = None  # the rules of placement "auto"


@dataclass(frozen=True)
class ScenarioConfig:
    name: str
    adns: tuple[ADNConfig, ...]
    tn: TNConfig = TNConfig()
    day_of_year: int = 196
    step: str = "1h"
    periods: int = 24
    start_hour: float = 0.0
    price_mode: str = "lmp"
    prices: Prices = Prices()  # tariff fields empty here; build_case fills them per period
    tariff_import: tuple[float, ...] = ()  # $/MWh per hour of day (24 values) or flat (1 value)
    tariff_export: tuple[float, ...] = ()
    inter_adn_p2p: bool = True
    placement_file: str | None = None  # None: the shipped coordinator/data/placement.csv
    load_level: str = "day"  # load profiles normalised to the day's peak ("day") or the profile year's ("year")
    price_unit: str = "$/MWh"  # leader prices in $/MWh, or "relative" to the TN's reference marginal cost
    sections: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    source: str = "<dict>"

    @property
    def step_minutes(self) -> int:
        return STEPS[self.step]

    @property
    def step_hours(self) -> float:
        return self.step_minutes / 60.0


# --------------------------------------------------------------------------------------------------------------------
# Field readers


class _Reader:
    """Checks one mapping of the YAML tree; ``path`` is the field path of the mapping itself."""

    def __init__(self, source: str, path: str, data: Any, allowed: tuple[str, ...]) -> None:
        self.source, self.path = source, path
        if not isinstance(data, Mapping):
            raise ScenarioError(source, path or "<top level>", data, "must be a mapping (key: value)")
        unknown = [k for k in data if k not in allowed]
        if unknown:
            key = unknown[0]
            raise ScenarioError(source, self.sub(str(key)), data[key], "unknown field", ", ".join(allowed))
        self.data = data

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, value: Any, problem: str, allowed: str | None = None) -> ScenarioError:
        return ScenarioError(self.source, self.sub(key), value, problem, allowed)

    def get(self, key: str, default: Any = _MISSING) -> Any:
        if key not in self.data:
            if default is _MISSING:
                raise ScenarioError(self.source, self.sub(key), _MISSING, "required field is missing")
            return default
        return self.data[key]

    def str_(self, key: str, default: Any = _MISSING, choices: tuple[str, ...] | None = None) -> str:
        value = self.get(key, default)
        if not isinstance(value, str):
            raise self.error(key, value, f"must be a string, not {type(value).__name__}")
        if choices is not None and value not in choices:
            raise self.error(key, value, "not an allowed value", _choices_text(value, choices))
        return value

    def int_(self, key: str, default: Any = _MISSING, lo: int | None = None, hi: int | None = None) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, value, f"must be an integer, not {type(value).__name__}")
        _check_range(self, key, value, lo, hi)
        return value

    def float_(self, key: str, default: Any = _MISSING, lo: float | None = None, hi: float | None = None) -> float:
        value = self.get(key, default)
        if value is None and default is None:
            return None  # type: ignore[return-value]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(key, value, "must be a finite number")
        _check_range(self, key, value, lo, hi)
        return float(value)

    def bool_(self, key: str, default: Any = _MISSING) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, value, "must be true or false")
        return value


def _choices_text(value: str, choices: tuple[str, ...]) -> str:
    """All choices when few; else the closest ones, so a typo in a long list (profiles) stays readable."""
    if len(choices) <= 12:
        return ", ".join(repr(c) for c in choices)
    lower = {c.lower(): c for c in choices}
    close = [lower[c] for c in difflib.get_close_matches(value.lower(), list(lower), n=5, cutoff=0.0)]
    return f"one of {len(choices)} names; closest: " + ", ".join(repr(c) for c in close)


def _check_range(r: _Reader, key: str, value: float, lo: float | None, hi: float | None) -> None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"<= {hi}" if lo is None else f"{lo} .. {hi}"
        raise r.error(key, value, "out of range", rng)


def _number_list(r: _Reader, key: str, lengths: tuple[int, ...]) -> tuple[float, ...]:
    value = r.get(key)
    if not isinstance(value, list):
        raise r.error(key, value, "must be a list of numbers")
    if len(value) not in lengths:
        raise r.error(key, value, f"has {len(value)} values", " or ".join(f"{n} value{'s' * (n > 1)}" for n in lengths))
    for k, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ScenarioError(r.source, f"{r.sub(key)}[{k}]", v, "must be a non-negative number")
    return tuple(float(v) for v in value)


# --------------------------------------------------------------------------------------------------------------------
# Parsing


_PRICE_FIELDS = tuple(f.name for f in fields(Prices) if f.name not in ("tariff_import", "tariff_export"))
_TOP_FIELDS = (
    "name",
    "tn",
    "day_of_year",
    "step",
    "periods",
    "start_hour",
    "price_mode",
    "prices",
    "inter_adn_p2p",
    "placement_file",
    "load_level",
    "adns",
    *PASS_THROUGH_SECTIONS,
)
_ADN_FIELDS = ("name", "tn_bus", "placement", "load_profile", "pv_profile", "vmin", "vmax", "pcc_limit", "network",
               "pv_share", "prosumers", "bess", "load_scale", "pv_scale")
_TN_FIELDS = ("case", "file", "load_profile", "load_scale", "rating_scale", "branch_ratings")
_AUTO_FIELDS = ("pv_share", "prosumers")
_BESS_FIELDS = ("count", "p_mw", "p_share", "e_mwh", "hours", "eta", "soc_min", "soc_max", "soc0")  # auto rules
_BESS_SCALES = ("p_scale", "e_scale")  # scale factors, any placement
_NETWORK_KINDS = ("case", "file", "simbench")


def _profile_names() -> dict[str, list[str]]:
    from coordinator.profiles import available_profiles

    return available_profiles()


def _check_start(source: str, path: str, start_hour: float, step_minutes: int) -> None:
    steps = start_hour * 60 / step_minutes
    if not 0 <= start_hour < 24 or not math.isclose(steps, round(steps), abs_tol=1e-9):
        raise ScenarioError(
            source,
            path,
            start_hour,
            "must be in [0, 24) and a multiple of the step",
            f"multiples of {step_minutes / 60:g} h",
        )


def _positive(r: _Reader, key: str) -> float:
    """An optional factor > 0, default 1."""
    value = r.float_(key, 1.0)
    if value <= 0:
        raise r.error(key, value, "must be positive", "> 0")
    return value


def _branch_ratings(r: _Reader, names: list[str]) -> Mapping[str, float]:
    raw = r.get("branch_ratings", {})
    if not isinstance(raw, Mapping):
        raise r.error("branch_ratings", raw, "must be a mapping of branch name to MW", "e.g. {line7: 40}")
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise ScenarioError(
            r.source, r.sub(f"branch_ratings.{unknown[0]}"), raw[unknown[0]], "unknown branch", ", ".join(names)
        )
    br = _Reader(r.source, r.sub("branch_ratings"), raw, tuple(names))
    return MappingProxyType({str(k): br.float_(str(k), lo=0.0) for k in raw})


def _bess_sizing(r: _Reader) -> BessSizing:
    """``bess.p_scale`` / ``bess.e_scale``: scale factors on the ADN's batteries (any placement)."""
    b = _Reader(r.source, r.sub("bess"), r.get("bess", {}), (*_BESS_SCALES, *_BESS_FIELDS))
    return BessSizing(b.float_("p_scale", 1.0, lo=0.0), b.float_("e_scale", 1.0, lo=0.0))


def parse_scenario(data: Any, source: str = "<dict>", base_dir: str | Path | None = None) -> ScenarioConfig:
    """Validate a scenario mapping (already parsed from YAML); ``base_dir`` resolves a relative placement_file."""
    from coordinator.networks import load_placements, tn_branch_names, tn_load_buses
    from coordinator.profiles import NORMALISE

    top = _Reader(source, "", data, _TOP_FIELDS)
    name = top.str_("name")
    if not _NAME_RE.fullmatch(name):
        raise top.error("name", name, "must be letters, digits, '_' or '-'")
    profiles = _profile_names()

    t = _Reader(source, "tn", top.get("tn", {}), _TN_FIELDS)
    if "case" in t.data and "file" in t.data:
        raise t.error("file", t.data["file"], "give exactly one of tn.case and tn.file")
    if "file" in t.data:
        tn_key, tn_value = "file", t.str_("file")
        tn_source = NetSource("file", str(_resolve(base_dir, tn_value)))
        allowed = "a pandapower JSON (.json) or MATPOWER (.m, .mat) file, relative to the scenario file"
    else:
        tn_key, tn_value = "case", t.str_("case", "case30")
        tn_source = NetSource("case", tn_value)
        allowed = "a pandapower.networks case, e.g. 'case30'"
    tn_case = tn_source.label
    try:
        load_buses = tn_load_buses(tn_source)
    except (ValueError, NotImplementedError) as exc:
        raise t.error(tn_key, tn_value, f"not usable as TN ({exc})", allowed) from None
    if not load_buses:
        raise t.error(tn_key, tn_value, "the TN has no bus with a load to host an ADN")
    tn_profile = t.str_("load_profile", "G0-A", tuple(profiles["load"]))
    tn = TNConfig(
        None if tn_key == "file" else tn_source.value, tn_profile, tn_source.value if tn_key == "file" else None,
        load_scale=_positive(t, "load_scale"),
        rating_scale=_positive(t, "rating_scale"),
        branch_ratings=_branch_ratings(t, tn_branch_names(tn_source)),
    )
    load_level = top.str_("load_level", "day", NORMALISE)

    step = top.str_("step", "1h", tuple(STEPS))
    step_minutes = STEPS[step]
    periods = top.int_("periods", 24, lo=1)
    start_hour = top.float_("start_hour", 0.0)
    _check_start(source, "start_hour", start_hour, step_minutes)
    day = top.int_("day_of_year", 196, lo=1, hi=366)
    price_mode = top.str_("price_mode", "lmp", PRICE_MODES)

    p = _Reader(source, "prices", top.get("prices", {}), (*_PRICE_FIELDS, "tariff", "unit"))
    price_unit = p.str_("unit", "$/MWh", PRICE_UNITS)
    price_kwargs = {k: p.float_(k, getattr(Prices(), k), lo=0.0) for k in _PRICE_FIELDS if k in p.data}
    if price_kwargs.get("price_cap", 1.0) <= 0:
        raise p.error("price_cap", price_kwargs["price_cap"], "must be positive", "> 0")
    prices = Prices(**price_kwargs)
    tariff_import: tuple[float, ...] = ()
    tariff_export: tuple[float, ...] = ()
    if "tariff" in p.data:
        tr = _Reader(source, "prices.tariff", p.data["tariff"], ("import", "export"))
        tariff_import = _number_list(tr, "import", (1, 24))
        tariff_export = _number_list(tr, "export", (1, 24))
    elif price_mode == "tariff":
        raise p.error(
            "tariff",
            _MISSING,
            "required when price_mode is 'tariff'",
            "{import: [24 hourly $/MWh], export: [24 hourly $/MWh]} or 1 flat value each",
        )

    placement_file = top.get("placement_file", None)
    if placement_file is not None:
        if not isinstance(placement_file, str):
            raise top.error("placement_file", placement_file, "must be a path string")
        pf = Path(placement_file)
        if not pf.is_absolute() and base_dir is not None:
            pf = Path(base_dir) / pf
        if not pf.is_file():
            raise top.error("placement_file", placement_file, "file not found", "a CSV as in data/README.md")
        placement_file = str(pf)
    try:
        placements = load_placements(placement_file)
    except (OSError, ValueError) as exc:
        raise ScenarioError(
            source, "placement_file", placement_file or "coordinator/data/placement.csv", f"unreadable ({exc})"
        ) from None

    raw_adns = top.get("adns")
    if not isinstance(raw_adns, list) or not raw_adns:
        raise top.error("adns", raw_adns, "must be a non-empty list of ADN mappings")
    adns: list[ADNConfig] = []
    for k, raw in enumerate(raw_adns):
        r = _Reader(source, f"adns[{k}]", raw, _ADN_FIELDS)
        adn_name = r.str_("name")
        if not _NAME_RE.fullmatch(adn_name):
            raise r.error("name", adn_name, "must be letters, digits, '_' or '-'")
        if any(a.name == adn_name for a in adns):
            raise r.error("name", adn_name, "duplicate ADN name", "a name not used by another ADN")
        tn_bus = r.int_("tn_bus")
        if tn_bus not in load_buses:
            raise r.error("tn_bus", tn_bus, f"not a load bus of {tn_case}", ", ".join(map(str, load_buses)))
        other = next((a for a in adns if a.tn_bus == tn_bus), None)
        if other is not None:
            free = [b for b in load_buses if all(a.tn_bus != b for a in adns)]
            raise r.error("tn_bus", tn_bus, f"already hosts ADN {other.name!r}", ", ".join(map(str, free)))
        network = _network(r, base_dir)
        placement = r.str_("placement", choices=(*placements, AUTO))
        auto = _auto_rule(r, adn_name, network, placement, placements)
        vmin = r.float_("vmin", None, lo=0.5, hi=1.0)
        vmax = r.float_("vmax", None, lo=1.0, hi=1.5)
        adns.append(
            ADNConfig(
                name=adn_name,
                tn_bus=tn_bus,
                placement=placement,
                load_profile=r.str_("load_profile", "H0-B", tuple(profiles["load"])),
                pv_profile=r.str_("pv_profile", "PV3", tuple(profiles["pv"])),
                vmin=vmin,
                vmax=vmax,
                pcc_limit=r.float_("pcc_limit", None, lo=0.0),
                load_scale=_positive(r, "load_scale"),
                pv_scale=r.float_("pv_scale", 1.0, lo=0.0),
                bess=_bess_sizing(r),
                network=network,
                auto=auto,
            )
        )

    sections = {}
    for key in PASS_THROUGH_SECTIONS:
        if key in top.data:
            value = top.data[key]
            if not isinstance(value, (Mapping, list)):
                raise top.error(key, value, "must be a mapping or a list")
            sections[key] = value

    return ScenarioConfig(
        name=name,
        adns=tuple(adns),
        tn=tn,
        day_of_year=day,
        step=step,
        periods=periods,
        start_hour=start_hour,
        price_mode=price_mode,
        prices=prices,
        tariff_import=tariff_import,
        tariff_export=tariff_export,
        inter_adn_p2p=top.bool_("inter_adn_p2p", True),
        placement_file=placement_file,
        load_level=load_level,
        price_unit=price_unit,
        sections=MappingProxyType(sections),
        source=source,
    )


def _resolve(base_dir: str | Path | None, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() or base_dir is None else Path(base_dir) / path


def _network(r: _Reader, base_dir: str | Path | None) -> NetSource:
    """``adns[k].network``: ``{case: NAME}`` (default case33bw), ``{file: PATH}`` or ``{simbench: CODE}``."""
    from coordinator.grids.adn import adn_static

    raw = r.get("network", {"case": "case33bw"})
    allowed = "{case: case33bw}, {file: PATH.json}, {simbench: CODE} (e.g. 1-MV-rural--0-sw)"
    if not isinstance(raw, Mapping) or len(raw) != 1 or next(iter(raw)) not in _NETWORK_KINDS:
        raise r.error("network", raw, "must be a mapping with exactly one of case, file, simbench", allowed)
    kind, value = next(iter(raw.items()))
    if not isinstance(value, str) or not value:
        raise ScenarioError(r.source, f"{r.sub('network')}.{kind}", value, "must be a non-empty string", allowed)
    if kind == "file":
        if Path(value).suffix.lower() != ".json":
            raise ScenarioError(r.source, f"{r.sub('network')}.file", value, "an ADN file must be pandapower JSON",
                                "a .json file written by pandapower.to_json")
        value = str(_resolve(base_dir, value))
    src = NetSource(kind, value)
    try:
        adn_static(src)
    except ValueError as exc:
        raise ScenarioError(r.source, f"{r.sub('network')}.{kind}", raw[kind], f"not usable as ADN ({exc})",
                            allowed) from None
    return src


def _auto_rule(r: _Reader, name: str, network: NetSource, placement: str, placements: Mapping) -> AutoRule | None:
    """The ``auto`` keys (``pv_share``, ``prosumers``, ``bess``), checked by building the placement once."""
    from coordinator.grids.adn import adn_static
    from coordinator.grids.feeder import placement_problems
    from coordinator.grids.placement import auto_placement

    given = [k for k in _AUTO_FIELDS if k in r.data]
    rules = [k for k in _BESS_FIELDS if isinstance(r.data.get("bess"), Mapping) and k in r.data["bess"]]
    if placement != AUTO:
        if given:
            raise r.error(given[0], r.data[given[0]], f"only used with placement: {AUTO}")
        if rules:
            raise r.error(f"bess.{rules[0]}", r.data["bess"][rules[0]], f"only used with placement: {AUTO}",
                          f"bess.p_scale, bess.e_scale (scale factors), or placement: {AUTO}")
        bad = placement_problems(placements[placement], network)
        if bad:
            n = len(adn_static(network).buses)
            raise r.error("placement", placement, f"uses buses {bad} that are not non-root buses of "
                          f"{network.label}", f"buses 1..{n - 1}, or placement: {AUTO}")
        return None
    bess = BessRule()
    if "bess" in r.data:
        b = _Reader(r.source, r.sub("bess"), r.data["bess"], (*_BESS_FIELDS, *_BESS_SCALES))
        for one, other in (("p_mw", "p_share"), ("e_mwh", "hours")):
            if one in b.data and other in b.data:
                raise b.error(other, b.data[other], f"give one of {one} and {other}")
        kw = {k: b.float_(k, None, lo=0.0) for k in ("p_mw", "p_share", "e_mwh", "hours")}
        kw |= {k: b.float_(k, getattr(bess, k), lo=0.0, hi=1.0) for k in ("eta", "soc_min", "soc_max", "soc0")}
        if kw["eta"] <= 0:
            raise b.error("eta", kw["eta"], "must be positive", "0 < eta <= 1")
        if not kw["soc_min"] <= kw["soc0"] <= kw["soc_max"]:
            raise b.error("soc0", kw["soc0"], "need soc_min <= soc0 <= soc_max")
        bess = BessRule(count=b.int_("count", 3, lo=0), **kw)
    rule = AutoRule(pv_share=r.float_("pv_share", None, lo=0.0), prosumers=r.int_("prosumers", 8, lo=1), bess=bess)
    try:
        auto_placement(name, adn_static(network), rule)
    except ValueError as exc:
        raise r.error("placement", placement, str(exc)) from None
    return rule


def scenario_names() -> list[str]:
    """Scenarios shipped with the package (``scenarios/*.yaml``)."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def load_scenario(path_or_name: str | Path) -> ScenarioConfig:
    """Load a scenario from a YAML path, or by bare name (``ieee30_5adn``) from the shipped ``scenarios/`` folder."""
    text = str(path_or_name)
    is_path = isinstance(path_or_name, Path) or text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text
    path = Path(text) if is_path else SCENARIO_DIR / f"{text}.yaml"
    if not path.is_file():
        allowed = "a YAML file path or one of: " + ", ".join(scenario_names())
        raise ScenarioError(text, "", _MISSING, "scenario not found", allowed)
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except _DuplicateKey as exc:
        raise ScenarioError(str(path), exc.key, _MISSING, f"duplicate key at line {exc.line} (first at line "
                            f"{exc.first_line})", "each key once per mapping") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(str(path), "", _MISSING, f"not valid YAML: {exc}") from None
    except UnicodeDecodeError:
        raise ScenarioError(str(path), "", _MISSING, "not a text file", "a UTF-8 YAML file") from None
    return parse_scenario(data, source=str(path), base_dir=path.parent)


class _DuplicateKey(Exception):
    def __init__(self, key: str, line: int, first_line: int) -> None:
        super().__init__(key)
        self.key, self.line, self.first_line = key, line, first_line


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise _DuplicateKey(str(key), line, seen[key])
            if isinstance(key, (str, int, float, bool)):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


# --------------------------------------------------------------------------------------------------------------------
# Case building


def _per_period(hourly: tuple[float, ...], periods: int, start_hour: float, step_hours: float) -> tuple[float, ...]:
    """Map hour-of-day (24) or flat (1) values onto the periods of the horizon, wrapping past midnight."""
    if len(hourly) == 1:
        return hourly * periods
    hours = (start_hour + np.arange(periods) * step_hours) % 24.0
    return tuple(hourly[int(math.floor(h + 1e-9))] for h in hours)


def build_case(
    config: ScenarioConfig,
    periods: int | None = None,
    start_hour: float | None = None,
    step_minutes: int | None = None,
) -> Case:
    """Assemble the :class:`Case` of a scenario; the arguments override the horizon (e.g. one receding-horizon step)."""
    from coordinator.grids.adn import adn_static
    from coordinator.grids.series import simbench_series
    from coordinator.networks import auto_placement, distribution_network, load_placements, transmission_network
    from coordinator.prices import reference_marginal_cost, relative_prices
    from coordinator.profiles import day_profiles, periods_in_year
    from coordinator.scaling import scale_adn, scale_tn

    src = config.source
    step_minutes = config.step_minutes if step_minutes is None else step_minutes
    if step_minutes not in STEPS.values():
        raise ScenarioError(
            src, "step_minutes (argument)", step_minutes, "unsupported step", ", ".join(map(str, STEPS.values()))
        )
    periods = config.periods if periods is None else periods
    if isinstance(periods, bool) or not isinstance(periods, int) or periods < 1:
        raise ScenarioError(src, "periods (argument)", periods, "must be an integer >= 1")
    start_hour = config.start_hour if start_hour is None else float(start_hour)
    _check_start(src, "start_hour (argument)", start_hour, step_minutes)
    room = periods_in_year(config.day_of_year, step_minutes, start_hour)
    if periods > room:  # the profiles would wrap to 1 Jan: refuse rather than plan winter into a summer day
        raise ScenarioError(src, "periods", periods, f"a horizon of {step_minutes}-min periods from day "
                            f"{config.day_of_year} hour {start_hour:g} runs past the end of the profile year "
                            f"(2016, 366 days)", f"at most {room} periods")
    horizon = {
        "day_of_year": config.day_of_year,
        "step_minutes": step_minutes,
        "periods": periods,
        "start_hour": start_hour,
        "normalise": config.load_level,
    }

    tn_prof = day_profiles(load_profile=config.tn.load_profile, **horizon)
    tn = transmission_network(tn_prof.load, case=config.tn.source)
    tn = scale_tn(tn, config.tn.load_scale, config.tn.rating_scale, config.tn.branch_ratings)
    placements = load_placements(config.placement_file)
    adns = []
    for a in config.adns:
        prof = day_profiles(load_profile=a.load_profile, pv_profile=a.pv_profile, **horizon)
        if a.placement == AUTO:
            placement = auto_placement(a.name, adn_static(a.network), a.auto or AutoRule())
        else:
            placement = placements[a.placement]
        # simbench grids carry absolute series (MW): the load level does not apply to them
        series = (simbench_series(a.network.value, **{k: v for k, v in horizon.items() if k != "normalise"})
                  if a.network.kind == "simbench" else None)
        adn = distribution_network(
            a.name, a.tn_bus, placement, prof, vmin=a.vmin, vmax=a.vmax, pcc_limit=a.pcc_limit,
            source=a.network, series=series,
        )
        adns.append(scale_adn(adn, a.load_scale, a.pv_scale, a.bess))

    step_hours = step_minutes / 60.0
    prices = config.prices
    if config.tariff_import:
        prices = replace(
            prices,
            tariff_import=_per_period(config.tariff_import, periods, start_hour, step_hours),
            tariff_export=_per_period(config.tariff_export, periods, start_hour, step_hours),
        )
    if config.price_unit == "relative":
        try:
            prices = relative_prices(prices, reference_marginal_cost(tn))
        except ValueError as exc:
            raise ScenarioError(src, "prices.unit", "relative", f"no reference marginal cost ({exc})") from None
    case = Case(
        tn=tn,
        adns=adns,
        periods=periods,
        step_hours=step_hours,
        prices=prices,
        price_mode=config.price_mode,
        inter_adn_p2p=config.inter_adn_p2p,
        start_hour=start_hour,
    )
    try:
        case.validate()
    except ValueError as exc:  # non-physical data reached the case: the message names the ADN, device and field
        raise ScenarioError(src, "", _MISSING, str(exc)) from None
    return case
