"""The DSO-led model pipeline of the fast strategy: built once per structure, updated in place, solved as one
conic problem.

1. **Leaders, compiled once.** The ADN blocks, the PCC boundary and box (``blocks/adns.py``) are built in Pyomo once
   and compiled once, by Pyomo's ``LinearStandardFormCompiler`` with the data variables unfixed, into matrices
   ``A_dec x (= | <=) rhs - A_data theta``. A new step gathers ``theta`` from its case's data arrays and recomputes
   the right-hand sides: two sparse products, no translation.
2. **Followers, per step.** Each period's follower form (affine, region hull or KKT: ``coordinator.followers``) is a
   small block of rows over the host-bus withdrawals ``w`` and its own variables; critical regions are kept across
   steps (``parametric.RegionCache``).
3. **One conic problem** stacks both, and the Clarabel branch and bound solves it (``solvers/bnb.py``).
4. **One result**: the solution vector is sliced by index maps into the arrays of ``coordinator.results``, which
   builds the same result dict as for Pyomo models.

``BuiltModel`` is the contract between these steps: index maps, the cone registry, each period's follower form.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo
import scipy.sparse as sp
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

from coordinator.acpf import AcChecker
from coordinator.blocks.adns import add_adns, add_pcc_box, dso_operating_cost, pcc_box, write_pcc_box
from coordinator.blocks.data import data_variables
from coordinator.blocks.dcopf import FollowerQP, dcopf_qp
from coordinator.blocks.der import set_adn_data
from coordinator.case import Case
from coordinator.cones import registered_cones
from coordinator.diskcache import code_stamp, disk_cached
from coordinator.followers import FollowerForm, choose_forms
from coordinator.model import formulation_info
from coordinator.parametric import RegionCache
from coordinator.results import AdnArrays, solved_part, status_part
from coordinator.solvers.base import SolveOptions, SolverUnavailable
from coordinator.solvers.bnb import SOS1_REFUSED, branch_and_bound
from coordinator.solvers.conic import ConicProblem, rotated_cones


@dataclass
class Columns:
    """Column of each leader variable (``-1`` where the variable is fixed; ``grid`` returns the fixed values)."""

    index: dict[int, int]

    def of(self, var_data) -> int:
        return self.index.get(id(var_data), -1)

    def grid(self, component, rows, periods) -> tuple[np.ndarray, np.ndarray]:
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


def _take(x: np.ndarray, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    cols, vals = grid
    return np.where(cols >= 0, x[np.maximum(cols, 0)], vals) if cols.size else vals


class LeaderTemplate:
    """The leaders' rows compiled once; ``rhs(theta)`` gives the right-hand sides for new data.

    Plain arrays only: the Pyomo model is dropped after compiling, so a template pickles (the disk cache of
    :func:`leader_template`) and reads new data with one gather (``theta``) instead of writing Pyomo variables.
    """

    def __init__(self, case: Case, voltage_cuts: bool, loss_allowance: float,
                 load_peaks: list[np.ndarray] | None = None) -> None:
        """``load_peaks`` per ADN size the purchase big-M (default: ``case``'s own peaks)."""
        self.load_peaks = load_peaks or [adn.load_p.max(axis=0) for adn in case.adns]
        m = pyo.ConcreteModel(name="dso_led_leaders")
        m.T = pyo.Set(initialize=range(case.periods), ordered=True)
        add_adns(m, case, voltage_cuts, self.load_peaks)
        add_pcc_box(m, case, loss_allowance)
        m.objective = pyo.Objective(expr=case.step_hours * sum(
            dso_operating_cost(m, case, a, t) for a in m.pcc.A for t in m.T))
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
        A = sp.csr_matrix(info.A)
        kinds = np.array([r.bound_type for r in info.rows])
        sign = np.where(kinds == -1, -1.0, 1.0)  # ">=" rows become "<=" rows
        A = sp.diags(sign) @ A
        rhs = sign * np.asarray(info.rhs, dtype=float)
        eq, le = np.flatnonzero(kinds == 0), np.flatnonzero(kinds != 0)
        a_dec, a_dat = A[:, dec].tocsr(), A[:, dat].tocsr()
        self.a_eq, self.eq_rhs, self.eq_dat = a_dec[eq], rhs[eq], a_dat[eq]
        self.a_in, self.in_rhs, self.in_dat = a_dec[le], rhs[le], a_dat[le]
        c = sp.csr_matrix(info.c).toarray().ravel() if info.c.shape[0] else np.zeros(len(cols))
        self.q, self.q_dat = c[dec], c[dat]
        self.q_const = float(np.sum(info.c_offset)) if len(info.c_offset) else 0.0
        self.n = len(columns)
        self.lb = np.array([-np.inf if v.lb is None else float(v.lb) for v in columns])
        self.ub = np.array([np.inf if v.ub is None else float(v.ub) for v in columns])
        self.integer = np.array([v.is_binary() for v in columns], dtype=bool)
        self.cones = _cone_rows(col, self.n, cones)
        self.n_cones = len(cones)
        self.maps = _index_maps(col, m, case)
        self.column_keys = _column_keys(m, columns)
        self.data_index = _data_index(m, [cols[i] for i in dat], case, loss_allowance)
        self.periods = case.periods
        self._rolled: dict[int, np.ndarray] = {}

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

    def theta(self, case: Case, loss_allowance: float) -> np.ndarray:
        """``case``'s data in the order of the data columns."""
        return np.concatenate([p.ravel() for p in leader_data(case, loss_allowance)])[self.data_index]

    def same_columns(self, other: LeaderTemplate) -> bool:
        """Same variables in the same columns (a rebuild for a larger big-M keeps them): plans carry over."""
        return other is self or other.column_keys == self.column_keys

    def fits(self, case: Case) -> bool:
        """The model's data-independent coefficients (purchase big-M) are valid for ``case``'s loads."""
        return all(np.all(adn.load_p.max(axis=0) <= peak + 1e-12)
                   for adn, peak in zip(case.adns, self.load_peaks, strict=True))


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


def _index_maps(col: Columns, m: pyo.ConcreteModel, case: Case) -> dict:
    """Columns (and fixed values) of every result variable, per ADN, as (rows, T) grids."""
    T = list(range(case.periods))
    out = []
    for a in range(len(case.adns)):
        der, net = m.adn[a].der, m.adn[a].net
        out.append({
            "pcc_p": col.grid(net.pcc_p, [()], T), "pcc_q": col.grid(net.pcc_q, [()], T),
            "pv": col.grid(der.pv, list(der.PV), T), "ch": col.grid(der.ch, list(der.B), T),
            "dis": col.grid(der.dis, list(der.B), T), "soc": col.grid(der.soc, list(der.B), T),
            "trades": col.grid(der.q, list(der.KK), T), "g_imp": col.grid(der.g_imp, list(der.K), T),
            "g_exp": col.grid(der.g_exp, list(der.K), T), "P": col.grid(net.P, list(net.L), T),
            "Q": col.grid(net.Q, list(net.L), T), "l": col.grid(net.l, list(net.L), T),
            "v": col.grid(net.v, list(net.N), T),
            "inter_in": col.grid(m.pcc.X, [(b, a) for b in m.pcc.A if (b, a) in m.pcc.AB], T),
            "inter_out": col.grid(m.pcc.X, [(a, b) for b in m.pcc.A if (a, b) in m.pcc.AB], T),
            "p_imp": col.grid(m.pcc.p_imp, [(a,)], T), "p_exp": col.grid(m.pcc.p_exp, [(a,)], T),
        })
    return {"adns": out}


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


def leader_data(case: Case, loss_allowance: float) -> list[np.ndarray]:
    """Every data array the leaders read, in a fixed order: per ADN loads, PV availability and initial SoC, then the
    PCC box (what ``set_adn_data`` and ``set_pcc_box`` write into the data variables)."""
    parts: list[np.ndarray] = []
    for adn in case.adns:
        parts += [np.asarray(adn.load_p, dtype=float), np.asarray(adn.load_q, dtype=float),
                  np.asarray(adn.pv_avail, dtype=float), np.array([b.e0 for b in adn.bess], dtype=float)]
    return parts + list(pcc_box(case, loss_allowance))


def _data_index(m: pyo.ConcreteModel, data_vars: list, case: Case, loss_allowance: float) -> np.ndarray:
    """Position in the flattened :func:`leader_data` of each data column's value.

    Found by writing every datum's position as its value through the block's own setters and reading the data
    variables back, so the layout is never restated by hand.
    """
    parts = leader_data(case, loss_allowance)
    starts = np.concatenate([[0], np.cumsum([p.size for p in parts])])
    tags = [np.arange(s, s + p.size, dtype=float).reshape(p.shape) for s, p in zip(starts, parts, strict=False)]
    for v in data_vars:
        v.value = -1.0
    for a, adn in enumerate(case.adns):
        load_p, load_q, pv, e0 = tags[4 * a:4 * a + 4]
        set_adn_data(m.adn[a].der, dataclasses.replace(
            adn, load_p=load_p, load_q=load_q, pv_avail=pv,
            bess=[dataclasses.replace(b, e0=float(e)) for b, e in zip(adn.bess, e0, strict=True)]))
    write_pcc_box(m, tags[-2], tags[-1])
    index = np.array([round(v.value) for v in data_vars], dtype=int)
    missing = [v.name for v, k in zip(data_vars, index, strict=True) if k < 0]
    if missing:
        raise ValueError(f"data variables without a place in leader_data: {missing[:5]}")
    return index


def leader_structure(case: Case) -> tuple:
    """What a compiled template depends on besides its data arrays (the key of its disk cache)."""
    def blank(adn):
        return dataclasses.replace(adn, load_p=adn.load_p.shape, load_q=adn.load_q.shape,
                                   pv_avail=adn.pv_avail.shape,
                                   bess=[dataclasses.replace(b, e0=0.0) for b in adn.bess])

    prices = dataclasses.replace(case.prices, tariff_import=(), tariff_export=())
    return tuple(blank(adn) for adn in case.adns), case.periods, case.step_hours, prices, case.inter_adn_p2p


def leader_template(case: Case, voltage_cuts: bool, loss_allowance: float,
                    load_peaks: list[np.ndarray] | None = None) -> LeaderTemplate:
    """The compiled leaders of ``case``'s structure, from the disk cache when this structure was compiled before
    (the Pyomo build and compile cost ~3 s for 5 ADNs and ~60 s for 50)."""
    peaks = load_peaks or [adn.load_p.max(axis=0) for adn in case.adns]
    return _compiled(leader_structure(case), voltage_cuts, loss_allowance,
                     [np.asarray(p, dtype=float) for p in peaks], code_stamp(), case=case)


@disk_cached(ignore=("case",))
def _compiled(structure: tuple, voltage_cuts: bool, loss_allowance: float, peaks: list[np.ndarray], code: str,
              case: Case) -> LeaderTemplate:
    """``structure`` and ``code`` (the package's source) key the cache; ``case`` is only read for its structure."""
    return LeaderTemplate(case, voltage_cuts, loss_allowance, peaks)


BIG_M_HEADROOM = 1.25  # leader templates size the purchase big-M on 1.25 x the largest load peaks known


@dataclass
class Plan:
    """What a solve leaves for the next one to start from."""

    x: np.ndarray
    start_hour: float
    w: list[np.ndarray]  # per period, the withdrawals at the follower's host buses
    leaders: LeaderTemplate


@dataclass
class BuiltModel:
    """A DSO-led model for one structure: leader template, follower forms of the current data, index maps."""

    leaders: LeaderTemplate
    qp: FollowerQP
    formulation: object  # coordinator.dso_led.Formulation
    regions: RegionCache
    forms: list[FollowerForm] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)  # first column of each period's follower locals
    hosts: list[np.ndarray] = field(default_factory=list)  # (k, n_leader) map from leader columns to w_t

    def assemble(self, case: Case) -> ConicProblem:
        """The conic problem of ``case`` (same structure as the build case)."""
        L = self.leaders
        theta = L.theta(case, self.formulation.loss_allowance)
        self.forms = choose_forms(case, self.qp, self.formulation.follower, self.formulation.loss_allowance,
                                  self.regions)
        dt = case.step_hours
        q_leader = L.q.copy()
        if case.price_mode == "tariff":
            for amap in L.maps["adns"]:
                imp, exp_ = amap["p_imp"][0][0], amap["p_exp"][0][0]
                q_leader[imp] += dt * np.asarray(case.prices.tariff_import, dtype=float)
                q_leader[exp_] -= dt * np.asarray(case.prices.tariff_export, dtype=float)
        n_loc = [f.n_local for f in self.forms]
        self.offsets = list(L.n + np.concatenate([[0], np.cumsum(n_loc)[:-1]]).astype(int)) if n_loc else []
        n = L.n + int(sum(n_loc))
        pcc_cols = [amap["pcc_p"][0][0] for amap in L.maps["adns"]]  # (T,) per ADN
        self.hosts = []
        eq_rows, eq_b = [sp.hstack([L.a_eq, sp.csr_matrix((L.a_eq.shape[0], n - L.n))])], [L.eq_rhs - L.eq_dat @ theta]
        in_rows, in_b = [sp.hstack([L.a_in, sp.csr_matrix((L.a_in.shape[0], n - L.n))])], [L.in_rhs - L.in_dat @ theta]
        q = np.concatenate([q_leader, np.zeros(n - L.n)])
        p_r, p_c, p_v = [], [], []
        lb = [L.lb] + [f.lb for f in self.forms]
        ub = [L.ub] + [f.ub for f in self.forms]
        integer = [L.integer] + [f.integer for f in self.forms]
        cone_g, cone_h, dims = [sp.hstack([L.cones[0], sp.csr_matrix((L.cones[0].shape[0], n - L.n))])], \
            [L.cones[1]], list(L.cones[2])
        const = L.q_const + float(L.q_dat @ theta)
        for t, (form, off) in enumerate(zip(self.forms, self.offsets, strict=True)):
            host = np.zeros((len(form.buses), n))
            for a, adn in enumerate(case.adns):
                host[form.buses.index(adn.tn_bus), pcc_cols[a][t]] += 1.0
            host = sp.csr_matrix(host)
            self.hosts.append(host)
            place = _placer(off, form.n_local, n)
            eq_rows.append(sp.csr_matrix(form.eq_w) @ host + place(form.eq_loc))
            eq_b.append(form.eq_b)
            in_rows.append(sp.csr_matrix(form.in_w) @ host + place(form.in_loc))
            in_b.append(form.in_b)
            if case.price_mode == "lmp":  # the leaders pay the follower's LMPs (tariffs are in q_leader)
                q += dt * (host.T @ form.pay_w)
                q[off:off + form.n_local] += dt * form.pay_loc
                quad = sp.coo_matrix(host.T @ sp.csr_matrix(form.pay_ww) @ host + _embed(form.pay_ll, off, n))
                p_r.append(quad.row), p_c.append(quad.col), p_v.append(2.0 * dt * quad.data)  # 1/2 x'Px
                const += dt * form.pay_const
            if form.cones:
                g, h, d = rotated_cones(n, [([({off + y: 1.0}, 0.0) for y in c.ys], ({off + c.a: 1.0}, 0.0),
                                             ({off + c.b: 1.0}, 0.0)) for c in form.cones])
                cone_g.append(g), cone_h.append(h), dims.extend(d)
        P = sp.csc_matrix((np.concatenate(p_v) if p_v else [], (np.concatenate(p_r) if p_r else [],
                                                                 np.concatenate(p_c) if p_c else [])), shape=(n, n))
        problem = ConicProblem(
            P=P, q=q, a_eq=sp.vstack(eq_rows, format="csr"), b_eq=np.concatenate(eq_b),
            a_in=sp.vstack(in_rows, format="csr"), b_in=np.concatenate(in_b),
            cones=(sp.vstack(cone_g, format="csr"), np.concatenate(cone_h), dims),
            lb=np.concatenate(lb), ub=np.concatenate(ub), integer=np.concatenate(integer), obj_const=const)
        return problem

    def arrays(self, x: np.ndarray) -> list[AdnArrays]:
        out = []
        for amap in self.leaders.maps["adns"]:
            get = {k: _take(x, g) for k, g in amap.items()}
            out.append(AdnArrays(
                pcc_p=get["pcc_p"][0], pcc_q=get["pcc_q"][0], pv=get["pv"], ch=get["ch"], dis=get["dis"],
                soc=get["soc"], trades=get["trades"], g_imp=get["g_imp"], g_exp=get["g_exp"], P=get["P"],
                Q=get["Q"], l=get["l"], v=get["v"], inter_in=get["inter_in"].sum(axis=0),
                inter_out=get["inter_out"].sum(axis=0)))
        return out

    def follower_values(self, x: np.ndarray, case: Case) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """(n_var, T) TN primal and bus -> (T,) LMPs, read through each period's form."""
        xs, lams = [], []
        for form, off, host in zip(self.forms, self.offsets, self.hosts, strict=True):
            z = np.concatenate([[1.0], host @ x, x[off:off + form.n_local]])
            xs.append(form.x_map @ z)
            lams.append(form.lam_map @ z)
        tn_x = np.column_stack(xs)
        lam = np.column_stack(lams)
        return tn_x, {n: lam[row] for n, row in self.qp.balance_row.items()}

    def integer_hint(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Columns and values of the follower binaries that each period's follower picks at ``x``'s withdrawals."""
        picks = [p for p in self._follower_picks([host @ x for host in self.hosts]) if p is not None]
        if not picks:
            return np.zeros(0, dtype=int), np.zeros(0)
        return np.concatenate([c for c, _ in picks]), np.concatenate([v for _, v in picks])

    def warm_start(self, previous: Plan, case: Case) -> tuple[np.ndarray, np.ndarray] | None:
        """Every binary's value in the previous plan moved to ``case``'s horizon: the leaders' binaries of the
        same variable, the follower's pick at the previous withdrawals of the same hour."""
        if not self.leaders.same_columns(previous.leaders):
            return None
        shift = int(round((case.start_hour - previous.start_hour) / case.step_hours)) % case.periods
        picks = self._follower_picks([previous.w[(t + shift) % case.periods] for t in range(len(self.forms))])
        if any(p is None for p in picks):
            return None
        leader_ints = np.flatnonzero(self.leaders.integer)
        cols = [leader_ints] + [c for c, _ in picks]
        vals = [np.round(previous.x[self.leaders.rolled(shift)[leader_ints]])] + [v for _, v in picks]
        return np.concatenate(cols), np.concatenate(vals)

    def _follower_picks(self, withdrawals: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """Per period with binaries, (columns, values) of the follower's own pick at that period's withdrawals
        (``None`` where the follower has no answer there)."""
        out = []
        for form, off, w in zip(self.forms, self.offsets, withdrawals, strict=True):
            if form.integer_hint is None:
                continue
            picked = form.integer_hint(w)
            out.append(None if picked is None else (off + np.flatnonzero(form.integer), picked))
        return out

    def size(self, problem: ConicProblem) -> dict:
        return {"variables": problem.n, "binaries": int(problem.integer.sum()),
                "constraints": int(problem.n_eq + problem.n_nonneg - problem.n_bound_rows + problem.n_soc),
                "cones": problem.n_soc}

    def formulation_info(self) -> dict:
        return formulation_info(self.formulation, [f.kind for f in self.forms])


def _embed(block, offset: int, n: int) -> sp.csr_matrix:
    """A square (width, width) block at rows and columns offset.. of an (n, n) matrix."""
    block = sp.coo_matrix(block)
    return sp.csr_matrix((block.data, (block.row + offset, block.col + offset)), shape=(n, n))


def _placer(offset: int, width: int, n: int):
    """Put a (rows, width) block at columns offset.. of an (rows, n) matrix."""

    def place(block) -> sp.csr_matrix:
        block = sp.csr_matrix(block)
        return sp.hstack([sp.csr_matrix((block.shape[0], offset)), block,
                          sp.csr_matrix((block.shape[0], n - offset - width))], format="csr")

    return place


class FastPipeline:
    """Build once, solve many: the DSO-led model of one structure through the fast strategy."""

    def __init__(self, case: Case, formulation, options: SolveOptions,
                 load_peaks: list[np.ndarray] | None = None) -> None:
        """``load_peaks`` per ADN: the largest loads expected over the pipeline's life (a run's whole span), so
        that the big-M need not be rebuilt when a later horizon peaks higher."""
        if formulation.complementarity != "bigm":
            raise SolverUnavailable(SOS1_REFUSED)
        self.formulation, self.options = formulation, options
        self.ac = AcChecker()
        start = time.perf_counter()
        self.qp = dcopf_qp(case.tn)
        floor = None if load_peaks is None else [BIG_M_HEADROOM * np.asarray(p, dtype=float) for p in load_peaks]
        self.built = BuiltModel(self._leaders(case, floor), self.qp, formulation, RegionCache(self.qp))
        self.build_time_s = time.perf_counter() - start
        self.previous: Plan | None = None

    def _leaders(self, case: Case, floor: list[np.ndarray] | None) -> LeaderTemplate:
        """Leaders whose big-M fits ``case`` with headroom, and at least ``floor``: a receding horizon reaching
        into the next day raises the peaks a little at a time, forecasts err, and each rebuild costs seconds (a
        looser big-M costs nothing measurable)."""
        peaks = [BIG_M_HEADROOM * adn.load_p.max(axis=0) for adn in case.adns]
        if floor is not None:
            peaks = [np.maximum(p, f) for p, f in zip(peaks, floor, strict=True)]
        return leader_template(case, self.formulation.voltage_cuts, self.formulation.loss_allowance, peaks)

    def solve(self, case: Case, ac_periods: list[int] | None = None) -> dict:
        start = time.perf_counter()
        if not self.built.leaders.fits(case):  # a load above the big-M basis: rebuild the leaders for it
            self.built.leaders = self._leaders(case, self.built.leaders.load_peaks)
        problem = self.built.assemble(case)
        model_time = time.perf_counter() - start
        guess = self.built.warm_start(self.previous, case) if self.previous else None
        report, x = branch_and_bound(problem, self.options, hint=self.built.integer_hint, guess=guess)
        if x is not None:
            self.previous = Plan(x, case.start_hour, [host @ x for host in self.built.hosts], self.built.leaders)
        t_post = time.perf_counter()
        out = status_part("dso-led", case, report, model_time, self.built.size(problem),
                          self.built.formulation_info())
        if x is not None:
            tn_x, lmp = self.built.follower_values(x, case)
            solved_part(out, case, self.qp, self.built.arrays(x), tn_x, lmp, ac_periods, self.ac)
        out["post_time_s"] = time.perf_counter() - t_post
        return out
