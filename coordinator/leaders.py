"""The leaders' side of the DSO-led model compiled to matrices: one part per ADN, one for the PCC boundary.

Each ADN's devices and network (``blocks/der.py``, ``blocks/distflow.py``) are built in Pyomo and compiled on their
own, once per distinct ADN structure: 50 ADNs of four kinds cost four compilations, not one model of 50 (Pyomo
builds and compiles at ~40 us per variable: 27 s for case118 with 50 ADNs in one model). The PCC boundary
(``blocks/pcc.py``: import/export split, inter-ADN trades, the PCC box) is compiled once over placeholder
withdrawals ``w[a, t]``, whose columns are then mapped onto each ADN part's ``pcc_p``. Stacked, the parts are the
same rows as one Pyomo model of every ADN and the boundary, as ``coordinator.dso_led`` builds it
(``tests/test_leaders.py`` compares them row by row).

Compiling: the data variables (``blocks/data.py``) are unfixed, so Pyomo's ``LinearStandardFormCompiler`` reports
how they enter every row: ``A_dec x (= | <=) rhs - A_data theta``. A template keeps arrays only (it pickles into the
disk cache of ``coordinator.diskcache``) and reads new data with one gather per part.
"""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo
import scipy.sparse as sp
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

from coordinator.blocks.adns import add_pcc_box, adn_operating_cost, pcc_box, pcc_operating_cost, write_pcc_box
from coordinator.blocks.data import data_variables
from coordinator.blocks.der import add_der, set_adn_data
from coordinator.blocks.distflow import add_distflow
from coordinator.blocks.pcc import add_pcc
from coordinator.case import Case, DistributionNetwork, Prices
from coordinator.cones import registered_cones
from coordinator.diskcache import code_stamp, disk_cached
from coordinator.pyomo_gc import gc_paused
from coordinator.solvers.conic import rotated_cones

Grid = tuple[np.ndarray, np.ndarray]  # (rows, T) columns (-1 where the variable is fixed) and the fixed values


@dataclass
class Columns:
    """Column of each variable of a compiled model (``-1`` where the variable is fixed)."""

    index: dict[int, int]

    def of(self, var_data) -> int:
        return self.index.get(id(var_data), -1)

    def grid(self, component, rows, periods) -> Grid:
        """(len(rows), T) columns and fixed values of ``component[row..., t]``."""
        cols = np.full((len(rows), len(periods)), -1, dtype=int)
        vals = np.zeros(cols.shape)
        for i, r in enumerate(rows):
            key = r if isinstance(r, tuple) else (r,)
            for k, t in enumerate(periods):
                v = component[(*key, t)]
                cols[i, k] = self.of(v)
                if cols[i, k] < 0:
                    vals[i, k] = float(v.value)
        return cols, vals


def take(x: np.ndarray, grid: Grid) -> np.ndarray:
    """The values of a grid's variables in the solution ``x``."""
    cols, vals = grid
    return np.where(cols >= 0, x[np.maximum(cols, 0)], vals) if cols.size else vals


@dataclass
class Part:
    """One compiled Pyomo model: rows over its own columns, its data columns, and where its variables are."""

    a_eq: sp.csr_matrix
    eq_rhs: np.ndarray
    eq_dat: sp.csr_matrix
    a_in: sp.csr_matrix
    in_rhs: np.ndarray
    in_dat: sp.csr_matrix
    q: np.ndarray
    q_dat: np.ndarray
    q_const: float
    lb: np.ndarray
    ub: np.ndarray
    integer: np.ndarray
    cones: tuple[sp.csr_matrix, np.ndarray, list[int]]
    keys: list[tuple[str, tuple, object]]  # (component, index without the period, period) of each column
    maps: dict | list = field(default_factory=dict)  # name -> Grid (the PCC part: one such dict per ADN)
    data_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    w_cols: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=int))  # PCC part: (A, T)

    @property
    def n(self) -> int:
        return len(self.q)


def _compile(m: pyo.ConcreteModel) -> tuple[Part, Columns, list]:
    """``m``'s linear rows and objective with its data variables unfixed, its registered cones as rows; returns the
    part, the column of each decision variable and the data variables in the order of the data columns."""
    data = data_variables(m)
    cones = registered_cones(m)
    for cone in cones:
        cone.constraint.deactivate()
    for v in data:
        v.unfix()
    try:
        info = LinearStandardFormCompiler().write(m, mixed_form=True)
    finally:
        for v in data:
            v.fix()
        for cone in cones:
            cone.constraint.activate()
    data_ids = {id(v) for v in data}
    cols = info.columns
    is_data = np.array([id(v) in data_ids for v in cols], dtype=bool)
    dec, dat = np.flatnonzero(~is_data), np.flatnonzero(is_data)
    columns = [cols[i] for i in dec]
    col = Columns({id(v): k for k, v in enumerate(columns)})
    A = sp.csr_matrix(info.A, shape=(len(info.rows), len(cols)))
    kinds = np.array([r.bound_type for r in info.rows], dtype=int)
    sign = np.where(kinds == -1, -1.0, 1.0)  # ">=" rows become "<=" rows
    A = sp.diags(sign) @ A
    rhs = sign * np.asarray(info.rhs, dtype=float) if len(kinds) else np.zeros(0)
    eq, le = np.flatnonzero(kinds == 0), np.flatnonzero(kinds != 0)
    a_dec, a_dat = A[:, dec].tocsr(), A[:, dat].tocsr()
    c = sp.csr_matrix(info.c).toarray().ravel() if info.c.shape[0] else np.zeros(len(cols))
    part = Part(
        a_eq=a_dec[eq], eq_rhs=rhs[eq], eq_dat=a_dat[eq], a_in=a_dec[le], in_rhs=rhs[le], in_dat=a_dat[le],
        q=c[dec], q_dat=c[dat], q_const=float(np.sum(info.c_offset)) if len(info.c_offset) else 0.0,
        lb=np.array([-np.inf if v.lb is None else float(v.lb) for v in columns]),
        ub=np.array([np.inf if v.ub is None else float(v.ub) for v in columns]),
        integer=np.array([v.is_binary() for v in columns], dtype=bool),
        cones=_cone_rows(col, len(columns), cones), keys=_column_keys(m, columns))
    return part, col, [cols[i] for i in dat]


def _cone_term(col: Columns, var) -> tuple[dict[int, float], float]:
    c = col.of(var)
    if c < 0:
        if not var.fixed:
            raise ValueError(f"{var.name} appears only in a cone")
        return {}, float(var.value)
    return {c: 1.0}, 0.0


def _cone_rows(col: Columns, n: int, cones) -> tuple[sp.csr_matrix, np.ndarray, list[int]]:
    return rotated_cones(n, [([_cone_term(col, y) for y in c.ys], _cone_term(col, c.a), _cone_term(col, c.b))
                             for c in cones])


def _column_keys(m: pyo.ConcreteModel, columns: list) -> list[tuple[str, tuple, object]]:
    """(component, index without the period, period) of each column (every leader variable is indexed by period
    last), with one name per component: Pyomo's name of each variable costs ~15 us, 9 s for 50 ADNs."""
    key_of = {}
    for component in m.component_objects(pyo.Var, descend_into=True):
        name = component.name
        for idx, var in component.items():
            idx = idx if isinstance(idx, tuple) else (idx,)
            key_of[id(var)] = (name, idx[:-1], idx[-1])
    return [key_of[id(v)] for v in columns]


def _tag_index(data_vars: list, arrays: list[np.ndarray], write) -> np.ndarray:
    """Position in the flattened ``arrays`` of each data variable's value, found by ``write``-ing every datum's
    position through the blocks' own setters and reading the data variables back (the layout is never restated)."""
    starts = np.concatenate([[0], np.cumsum([a.size for a in arrays])]).astype(int)
    tags = [np.arange(s, s + a.size, dtype=float).reshape(a.shape) for s, a in zip(starts, arrays, strict=False)]
    for v in data_vars:
        v.value = -1.0
    write(tags)
    index = np.array([round(v.value) for v in data_vars], dtype=int)
    missing = [v.name for v, k in zip(data_vars, index, strict=True) if k < 0]
    if missing:
        raise ValueError(f"data variables without a place in the data arrays: {missing[:5]}")
    return index


# --------------------------------------------------------------------------------------------------------------------
# The parts


def adn_data(adn: DistributionNetwork) -> list[np.ndarray]:
    """An ADN's data arrays in a fixed order: loads, PV availability, initial SoC (what ``set_adn_data`` writes)."""
    return [np.asarray(adn.load_p, dtype=float), np.asarray(adn.load_q, dtype=float),
            np.asarray(adn.pv_avail, dtype=float), np.array([b.e0 for b in adn.bess], dtype=float)]


def _with_data(adn: DistributionNetwork, load_p, load_q, pv, e0) -> DistributionNetwork:
    return dataclasses.replace(adn, load_p=load_p, load_q=load_q, pv_avail=pv,
                               bess=[dataclasses.replace(b, e0=float(e)) for b, e in zip(adn.bess, e0, strict=True)])


@gc_paused
def _adn_part(adn: DistributionNetwork, periods: int, step_hours: float, prices: Prices, voltage_cuts: bool,
              load_peak: np.ndarray) -> Part:
    """One ADN's devices and SOC-relaxed network with its own operating costs."""
    m = pyo.ConcreteModel(name="adn_leader")
    T = list(range(periods))
    m.T = pyo.Set(initialize=T, ordered=True)
    m.der, m.net = pyo.Block(), pyo.Block()
    p_withdrawal, q_withdrawal = add_der(m.der, adn, range(periods), step_hours, load_peak)
    add_distflow(m.net, adn, range(periods), p_withdrawal, q_withdrawal, voltage_cuts)
    m.objective = pyo.Objective(expr=step_hours * sum(adn_operating_cost(prices, m.der, m.net, t) for t in m.T))
    part, col, data = _compile(m)
    der, net = m.der, m.net
    part.maps = {
        "pcc_p": col.grid(net.pcc_p, [()], T), "pcc_q": col.grid(net.pcc_q, [()], T),
        "pv": col.grid(der.pv, list(der.PV), T), "ch": col.grid(der.ch, list(der.B), T),
        "dis": col.grid(der.dis, list(der.B), T), "soc": col.grid(der.soc, list(der.B), T),
        "trades": col.grid(der.q, list(der.KK), T), "g_imp": col.grid(der.g_imp, list(der.K), T),
        "g_exp": col.grid(der.g_exp, list(der.K), T), "P": col.grid(net.P, list(net.L), T),
        "Q": col.grid(net.Q, list(net.L), T), "l": col.grid(net.l, list(net.L), T),
        "v": col.grid(net.v, list(net.N), T)}
    part.data_index = _tag_index(data, adn_data(adn), lambda tags: set_adn_data(m.der, _with_data(adn, *tags)))
    return part


@gc_paused
def _pcc_part(case: Case, loss_allowance: float) -> Part:
    """The PCC boundary of every ADN over placeholder withdrawals ``w[a, t]`` (``Part.w_cols``), with its costs."""
    m = pyo.ConcreteModel(name="pcc_leader")
    T = list(range(case.periods))
    m.T = pyo.Set(initialize=T, ordered=True)
    m.w = pyo.Var(range(len(case.adns)), m.T)  # ADN a's PCC withdrawal: its part's pcc_p once stacked
    m.pcc = pyo.Block()
    add_pcc(m.pcc, case.adns, range(case.periods), lambda a, t: m.w[a, t], case.inter_adn_p2p)
    add_pcc_box(m, case, loss_allowance, withdrawal=lambda a, t: m.w[a, t])
    m.objective = pyo.Objective(expr=case.step_hours * sum(
        pcc_operating_cost(case.prices, m.pcc, a, t) for a in m.pcc.A for t in m.T))
    part, col, data = _compile(m)
    pcc = m.pcc
    part.maps = [{"inter_in": col.grid(pcc.X, [(b, a) for b in pcc.A if (b, a) in pcc.AB], T),
                  "inter_out": col.grid(pcc.X, [(a, b) for b in pcc.A if (a, b) in pcc.AB], T),
                  "p_imp": col.grid(pcc.p_imp, [(a,)], T), "p_exp": col.grid(pcc.p_exp, [(a,)], T)}
                 for a in pcc.A]
    part.w_cols = col.grid(m.w, [(a,) for a in pcc.A], T)[0]
    part.data_index = _tag_index(data, list(pcc_box(case, loss_allowance)), lambda tags: write_pcc_box(m, *tags))
    return part


def adn_structure(adn: DistributionNetwork) -> DistributionNetwork:
    """What an ADN part depends on besides its data arrays (not its name, host bus or origin: copies of a feeder
    share one compilation)."""
    return dataclasses.replace(adn, name="", tn_bus=0, source=("", ""), bus_names=(), load_p=adn.load_p.shape,
                               load_q=adn.load_q.shape, pv_avail=adn.pv_avail.shape,
                               bess=[dataclasses.replace(b, e0=0.0) for b in adn.bess])


@disk_cached(ignore=("adn",))
def _cached_adn_part(structure: DistributionNetwork, periods: int, step_hours: float, prices: Prices,
                     voltage_cuts: bool, load_peak: np.ndarray, code: str, adn: DistributionNetwork) -> Part:
    """``structure`` and ``code`` (the package's source) key the cache; ``adn`` is only read for its structure."""
    return _adn_part(adn, periods, step_hours, prices, voltage_cuts, load_peak)


# --------------------------------------------------------------------------------------------------------------------
# The template: the parts stacked


class LeaderTemplate:
    """The leaders' rows of a case's structure; ``theta(case)`` gathers a case's data for the right-hand sides.

    Columns: every ADN part's in ADN order, then the PCC part's (its placeholder withdrawals are the ADN parts'
    ``pcc_p``). Rows: each ADN part's, then the PCC part's; equalities and inequalities apart.
    """

    def __init__(self, case: Case, voltage_cuts: bool, loss_allowance: float,
                 load_peaks: list[np.ndarray] | None = None) -> None:
        """``load_peaks`` per ADN size the purchase big-M (default: ``case``'s own peaks)."""
        self.load_peaks = load_peaks or [adn.load_p.max(axis=0) for adn in case.adns]
        prices = dataclasses.replace(case.prices, tariff_import=(), tariff_export=())
        parts: list[Part] = []
        built: dict[bytes, Part] = {}  # ADNs of the same structure share one compilation (also with the cache off)
        for adn, peak in zip(case.adns, self.load_peaks, strict=True):
            args = (adn_structure(adn), case.periods, case.step_hours, prices, voltage_cuts,
                    np.asarray(peak, dtype=float))
            key = pickle.dumps(args)
            if key not in built:
                built[key] = _cached_adn_part(*args, code_stamp(), adn=adn)
            parts.append(built[key])
        pcc = _pcc_part(case, loss_allowance)
        self._stack(parts, pcc)
        self.periods = case.periods
        self._rolled: dict[int, np.ndarray] = {}

    def _stack(self, parts: list[Part], pcc: Part) -> None:
        offsets = np.concatenate([[0], np.cumsum([p.n for p in parts])]).astype(int)
        n_adn = int(offsets[-1])
        is_w = np.zeros(pcc.n, dtype=bool)
        is_w[pcc.w_cols.ravel()] = True
        own = np.flatnonzero(~is_w)
        glob = np.empty(pcc.n, dtype=int)  # the stacked column of each PCC-part column
        glob[own] = n_adn + np.arange(len(own))
        for a, part in enumerate(parts):
            glob[pcc.w_cols[a]] = offsets[a] + part.maps["pcc_p"][0][0]
        self.n = n = n_adn + len(own)
        to_glob = sp.csr_matrix((np.ones(pcc.n), (np.arange(pcc.n), glob)), shape=(pcc.n, n))

        def stacked(name: str) -> sp.csr_matrix:
            adn_rows = sp.block_diag([getattr(p, name) for p in parts], format="csr")
            adn_rows = sp.hstack([adn_rows, sp.csr_matrix((adn_rows.shape[0], n - n_adn))], format="csr")
            return sp.vstack([adn_rows, getattr(pcc, name) @ to_glob], format="csr")

        def data(name: str) -> sp.csr_matrix:
            return sp.block_diag([getattr(p, name) for p in [*parts, pcc]], format="csr")

        self.a_eq, self.a_in = stacked("a_eq"), stacked("a_in")
        self.eq_dat, self.in_dat = data("eq_dat"), data("in_dat")
        self.eq_rhs = np.concatenate([p.eq_rhs for p in [*parts, pcc]])
        self.in_rhs = np.concatenate([p.in_rhs for p in [*parts, pcc]])
        self.q = np.concatenate([*(p.q for p in parts), np.zeros(len(own))]) + to_glob.T @ pcc.q
        self.q_dat = np.concatenate([p.q_dat for p in [*parts, pcc]])
        self.q_const = float(sum(p.q_const for p in [*parts, pcc]))
        for name in ("lb", "ub", "integer"):
            setattr(self, name, np.concatenate([*(getattr(p, name) for p in parts), getattr(pcc, name)[own]]))
        cone_g = sp.block_diag([p.cones[0] for p in parts], format="csr")
        self.cones = (sp.hstack([cone_g, sp.csr_matrix((cone_g.shape[0], n - n_adn))], format="csr"),
                      np.concatenate([p.cones[1] for p in parts]), [d for p in parts for d in p.cones[2]])
        self.n_cones = len(self.cones[2])
        self.maps = {"adns": [{**{k: _moved(g, lambda c, o=offsets[a]: c + o) for k, g in part.maps.items()},
                               **{k: _moved(g, lambda c: glob[c]) for k, g in pcc.maps[a].items()}}
                              for a, part in enumerate(parts)]}
        self.column_keys = [(f"adn[{a}].{name}", idx, t) for a, p in enumerate(parts) for name, idx, t in p.keys]
        self.column_keys += [pcc.keys[c] for c in own]
        self.data_index = [p.data_index for p in parts] + [pcc.data_index]

    def theta(self, case: Case, loss_allowance: float) -> np.ndarray:
        """``case``'s data in the order of the data columns."""
        arrays = [adn_data(adn) for adn in case.adns] + [list(pcc_box(case, loss_allowance))]
        return np.concatenate([np.concatenate([a.ravel() for a in arrs])[index]
                               for arrs, index in zip(arrays, self.data_index, strict=True)])

    def rolled(self, shift: int) -> np.ndarray:
        """(n,) for each column the column of the same variable ``shift`` periods later (cyclically): the
        previous plan moved to the current horizon. Every leader variable is indexed by period last."""
        if shift not in self._rolled:
            periods = self.periods
            where = {key: c for c, key in enumerate(self.column_keys)}
            src = np.arange(self.n)
            for (comp, key, t), c in where.items():
                src[c] = where.get((comp, key, (t + shift) % periods), c)
            self._rolled[shift] = src
        return self._rolled[shift]

    def same_columns(self, other: LeaderTemplate) -> bool:
        """Same variables in the same columns (a rebuild for a larger big-M keeps them): plans carry over."""
        return other is self or other.column_keys == self.column_keys

    def fits(self, case: Case) -> bool:
        """The model's data-independent coefficients (purchase big-M) are valid for ``case``'s loads."""
        return all(np.all(adn.load_p.max(axis=0) <= peak + 1e-12)
                   for adn, peak in zip(case.adns, self.load_peaks, strict=True))


def _moved(grid: Grid, move) -> Grid:
    cols, vals = grid
    return np.where(cols >= 0, move(np.maximum(cols, 0)), -1), vals


def leader_structure(case: Case) -> tuple:
    """What a compiled template depends on besides its data arrays (the key of its disk cache)."""
    prices = dataclasses.replace(case.prices, tariff_import=(), tariff_export=())
    return tuple(adn_structure(adn) for adn in case.adns), case.periods, case.step_hours, prices, case.inter_adn_p2p


def leader_template(case: Case, voltage_cuts: bool, loss_allowance: float,
                    load_peaks: list[np.ndarray] | None = None) -> LeaderTemplate:
    """The compiled leaders of ``case``'s structure, from the disk cache when this structure was compiled before."""
    peaks = load_peaks or [adn.load_p.max(axis=0) for adn in case.adns]
    return _compiled(leader_structure(case), voltage_cuts, loss_allowance,
                     [np.asarray(p, dtype=float) for p in peaks], code_stamp(), case=case)


@disk_cached(ignore=("case",))
def _compiled(structure: tuple, voltage_cuts: bool, loss_allowance: float, peaks: list[np.ndarray], code: str,
              case: Case) -> LeaderTemplate:
    """``structure`` and ``code`` (the package's source) key the cache; ``case`` is only read for its structure."""
    return LeaderTemplate(case, voltage_cuts, loss_allowance, peaks)
