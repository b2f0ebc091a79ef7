"""The DSO-led model pipeline of the fast strategy: built once per structure, updated in place, solved as one
conic problem.

1. **Leaders, compiled once.** The ADN blocks and the PCC boundary and box are built in Pyomo and compiled, one part
   per distinct ADN structure and one for the PCC boundary (``coordinator.leaders``), into matrices
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

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from coordinator.acpf import AcChecker
from coordinator.blocks.dcopf import FollowerQP, dcopf_qp
from coordinator.case import Case
from coordinator.followers import FollowerForm, choose_forms
from coordinator.leaders import LeaderTemplate, leader_template, take
from coordinator.model import formulation_info
from coordinator.parametric import RegionCache
from coordinator.results import AdnArrays, solved_part, status_part
from coordinator.solvers.base import SolveOptions, SolverUnavailable
from coordinator.solvers.bnb import SOS1_REFUSED, branch_and_bound
from coordinator.solvers.conic import ConicProblem, rotated_cones

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
            get = {k: take(x, g) for k, g in amap.items()}
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
        n_ac = case.periods if ac_periods is None else len(ac_periods)
        with ThreadPoolExecutor(max_workers=1) as pool:  # the AC check's net loads while Clarabel runs
            ac_net = pool.submit(self.ac.prepare, case.adns, n_ac)
            report, x = branch_and_bound(problem, self.options, hint=self.built.integer_hint, guess=guess)
            ac_net.result()
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
