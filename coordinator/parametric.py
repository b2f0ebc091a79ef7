"""Exact elimination of the follower's KKT block where its active set provably cannot change.

The DC-OPF is a convex QP whose right-hand side moves with the leaders' PCC withdrawals W. Within one critical
region (fixed active set) its primal and dual solutions are affine in W. We take the active set at the centre of
the box of reachable W, solve the equality-constrained KKT system for it once, and check that every inactive
constraint stays feasible and every active multiplier stays non-negative over the WHOLE box. Because those are
affine functions of W, their minimum over a box is found coordinate by coordinate: the check is a proof, not a
sample. Where it holds, the follower is replaced by ``x(W) = x0 + S W`` and ``lam(W) = lam0 + L W``: no binaries,
and the leaders' payment ``lam(W)'W`` is a convex quadratic (L is the Hessian of the convex value function).
Where it fails, the period keeps its KKT block.
"""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.optimize import linprog

from coordinator.blocks.dcopf import AffineFollower, FollowerQP  # noqa: F401  (AffineFollower re-exported)
from coordinator.blocks.pcc import pcc_range
from coordinator.diskcache import code_stamp, disk_cached
from coordinator.follower import FollowerInfeasible, solve_follower


def affine_follower(qp: FollowerQP, demand: dict[int, float], lo: dict[int, float], hi: dict[int, float],
                    tol: float = 1e-7) -> AffineFollower | None:
    """The certified affine follower on the box [lo, hi] of withdrawals per host bus, or None."""
    region = centre_region(qp, demand, lo, hi, tol)
    return region if region is not None and not region.flips else None


def centre_region(qp: FollowerQP, demand: dict[int, float], lo: dict[int, float], hi: dict[int, float],
                  tol: float = 1e-7, factors: dict | None = None) -> AffineFollower | None:
    """The critical region that contains the centre of the box, with the facets that cut the box."""
    buses = sorted(lo)
    centre = {n: 0.5 * (lo[n] + hi[n]) for n in buses}
    try:
        ref = solve_follower(qp, qp.b_eq(demand, centre))
    except FollowerInfeasible:
        return None
    slack = qp.b_in - qp.a_in @ ref.x
    active = [k for k in range(len(slack)) if ref.mu[k] > tol * max(1.0, np.abs(ref.mu).max()) or slack[k] < 1e-9]
    return region_of(qp, demand, buses, active, _vec(lo, buses), _vec(hi, buses), factors)


def region_of(qp: FollowerQP, demand: dict[int, float], buses: list[int], active: list[int], lo_v: np.ndarray,
              hi_v: np.ndarray, factors: dict | None = None) -> AffineFollower | None:
    """Affine maps of the active set ``active`` and the facets of its region that cross the box."""
    sol = _solve_active_set(qp, demand, buses, active, factors)
    if sol is None:
        return None
    x0, S, lam0, L, mu_a0, mu_a = sol
    n_in = qp.a_in.shape[0]
    is_active = set(active)
    inactive = [k for k in range(n_in) if k not in is_active]
    a_in = qp.a_in.tocsr()
    g0 = np.concatenate([qp.b_in[inactive] - a_in[inactive] @ x0, mu_a0])
    G = np.vstack([-(a_in[inactive] @ S), mu_a]) if len(buses) else np.zeros((len(g0), 0))
    flips = inactive + list(active)
    crossing = _box_min(g0, G, lo_v, hi_v) < -1e-9 * np.maximum(1.0, np.abs(g0))
    mu0 = np.zeros(n_in)
    M = np.zeros((n_in, len(buses)))
    mu0[active], M[active] = mu_a0, mu_a
    return AffineFollower(buses=buses, x0=x0, S=S, lam0=lam0, L=L, mu0=mu0, M=M, active=list(active),
                          cut0=g0[crossing], cuts=G[crossing], flips=[flips[i] for i in np.flatnonzero(crossing)])


def explore_regions(qp: FollowerQP, demand: dict[int, float], lo: dict[int, float], hi: dict[int, float],
                    max_regions: int = 12, samples: int = 40, seed: int = 0,
                    factors: dict | None = None) -> list[AffineFollower] | None:
    """All critical regions that meet the box, by crossing each facet that cuts it (multi-parametric QP).

    Returns None when the exploration is not clean (a degenerate active set, too many regions, or a random
    sample of the box whose independent DC-OPF solution no region reproduces); the caller then keeps KKT.
    ``factors`` caches each active set's factorised KKT system (it does not depend on the demand or the box), so a
    later call re-certifies known regions against new data with one triangular solve each; the random samples are
    drawn only when the call had to factorise an active set it had not seen (``samples`` of them).
    """
    if any(lo[n] > hi[n] for n in lo):  # empty box: no PCC withdrawal balances an ADN; the solve reports it
        return None
    seen = None if factors is None else len(factors)
    first = centre_region(qp, demand, lo, hi, factors=factors)
    if first is None:
        return None
    buses = first.buses
    lo_v, hi_v = _vec(lo, buses), _vec(hi, buses)
    found = {frozenset(first.active): first}
    meets: dict[frozenset, bool] = {}  # each region's box test, an LP, once

    def in_box(key: frozenset) -> bool:
        if key not in meets:
            meets[key] = _meets_box(found[key], lo_v, hi_v)
        return meets[key]

    queue = [first]
    while queue:
        region = queue.pop()
        for group in _facet_groups(region):
            active = set(region.active) ^ set(group)
            key = frozenset(active)
            if key in found:
                continue
            nxt = region_of(qp, demand, buses, sorted(active), lo_v, hi_v, factors)
            if nxt is None:
                return None
            found[key] = nxt
            if in_box(key):
                queue.append(nxt)
            if len(found) > 4 * max_regions:
                return None
    regions = [r for key, r in found.items() if in_box(key)]
    if len(regions) > max_regions:
        return None
    if seen is not None and len(factors) == seen:
        return regions  # every region was certified before: the facet closure above re-proves the cover
    return regions if _covers(qp, demand, regions, lo_v, hi_v, samples, seed) else None


def _facet_groups(region: AffineFollower) -> list[list[int]]:
    """Crossing facets grouped by hyperplane: constraints that switch together (e.g. two generators with equal
    costs reach their limits at the same price) must be flipped together, or the neighbour has no interior."""
    groups: dict[tuple, list[int]] = {}
    for g0, g, k in zip(region.cut0, region.cuts, region.flips, strict=True):
        scale = np.linalg.norm(g) or 1.0
        key = tuple(np.round(np.r_[g0, g] / scale, 7))
        groups.setdefault(key, []).append(k)
    return list(groups.values())


def _meets_box(region: AffineFollower, lo_v: np.ndarray, hi_v: np.ndarray) -> bool:
    """True if the region has an interior point inside the box (LP: maximise the smallest cut slack)."""
    if not region.flips:
        return True
    k = len(lo_v)
    # variables (w, eps): max eps s.t. cut0 + cuts w >= eps, lo <= w <= hi
    res = linprog(np.r_[np.zeros(k), -1.0], A_ub=np.c_[-region.cuts, np.ones(len(region.cut0))],
                  b_ub=region.cut0, bounds=[*zip(lo_v, hi_v, strict=True), (None, 1.0)], method="highs")
    return bool(res.status == 0 and -res.fun > 1e-7)


def _covers(qp, demand, regions, lo_v, hi_v, samples, seed) -> bool:
    """Sanity check of the exploration: random points of the box are reproduced by a region containing them."""
    rng = np.random.default_rng(seed)
    buses = regions[0].buses
    for _ in range(samples):
        w = rng.uniform(lo_v, hi_v)
        try:
            ref = solve_follower(qp, qp.b_eq(demand, dict(zip(buses, w, strict=True))))
        except FollowerInfeasible:
            continue
        inside = [r for r in regions if np.all(r.cut0 + r.cuts @ w >= -1e-6)]
        gens = qp.gen_col  # the dispatch is unique (strictly convex costs); compare it at solver accuracy
        if not any(np.allclose((r.x0 + r.S @ w)[gens], ref.x[gens], atol=1e-3, rtol=1e-6) for r in inside):
            return False
    return True


def _vec(values: dict[int, float], buses: list[int]) -> np.ndarray:
    return np.array([values[n] for n in buses], dtype=float)


def _box_min(g0: np.ndarray, G: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Exact minimum over the box of each affine function g0 + G w."""
    if g0.size == 0:
        return g0
    return g0 + np.minimum(G * lo, G * hi).sum(axis=1)


def _solve_active_set(qp: FollowerQP, demand: dict[int, float], buses: list[int], active: list[int],
                      factors: dict | None = None):
    """Solve [Q -Aeq' Aa'; Aeq 0 0; Aa 0 0] [x; lam; mu] = [-c; b_eq(w); b_a] for w = 0 and unit w per bus."""
    n, m_eq, n_a = qp.n_var, qp.a_eq.shape[0], len(active)
    key = (tuple(buses), tuple(active))
    entry = factors.get(key) if factors is not None else None
    if entry is None:
        entry = _factorise(qp, buses, active)
        if factors is not None:
            factors[key] = entry
    if entry is False:
        return None
    lu, kkt, sens = entry
    rhs = np.zeros(n + m_eq + n_a)
    rhs[:n] = -qp.c
    rhs[n:n + m_eq] = qp.b_eq(demand, {})
    rhs[n + m_eq:] = qp.b_in[active]
    base = lu.solve(rhs)
    if not np.all(np.isfinite(base)) or np.abs(kkt @ base - rhs).max() > 1e-6:
        return None
    sol = np.column_stack([base, sens])
    x, lam, mu = sol[:n], sol[n:n + m_eq], sol[n + m_eq:]
    return x[:, 0], x[:, 1:], lam[:, 0], lam[:, 1:], mu[:, 0], mu[:, 1:]


def _factorise(qp: FollowerQP, buses: list[int], active: list[int]):
    """LU of an active set's KKT matrix and its solution for unit withdrawals (data-free); False if singular."""
    n, m_eq, n_a = qp.n_var, qp.a_eq.shape[0], len(active)
    a_a = qp.a_in.tocsr()[active]
    kkt = sp.bmat([[sp.diags(qp.q), -qp.a_eq.T, a_a.T],
                   [qp.a_eq, None, None],
                   [a_a, None, None]], format="csc")
    rhs = np.zeros((n + m_eq + n_a, len(buses)))
    for i, bus in enumerate(buses):
        rhs[n + qp.balance_row[bus], i] = 1.0
    try:
        lu = spla.splu(kkt)
        sens = lu.solve(rhs) if len(buses) else np.zeros((n + m_eq + n_a, 0))
    except RuntimeError:  # singular: degenerate active set, keep the KKT block
        return False
    if not np.all(np.isfinite(sens)) or (sens.size and np.abs(kkt @ sens - rhs).max() > 1e-6):
        return False
    return lu, kkt, sens


class RegionCache:
    """Critical regions kept across solves: factorised active sets, and the last answers by exact input.

    In a receding horizon without forecast noise, period t of a step has the data of period t + 1 of the step
    before, so only the newest period needs exploring; with noise, known regions are re-certified with their
    cached factorisations. Answers are kept for the last ``keep`` distinct inputs (memory stays flat). The sample
    check of a new region (an independent DC-OPF at random points, see ``explore_regions``) uses ``samples`` points
    instead of 40: the cover itself is proven by the facet closure, the samples only guard the linear algebra.
    """

    def __init__(self, qp: FollowerQP, keep: int = 96, samples: int = 8) -> None:
        self.qp, self.keep, self.samples = qp, keep, samples
        self.factors: dict = {}
        self._answers: dict = {}
        self.hits = self.misses = 0
        self._qp_digest = hashlib.sha1(pickle.dumps(qp, protocol=pickle.HIGHEST_PROTOCOL)).hexdigest()

    def explore(self, demand: dict[int, float], lo: dict[int, float], hi: dict[int, float]
                ) -> list[AffineFollower] | None:
        key = (tuple(sorted(demand.items())), tuple(sorted(lo.items())), tuple(sorted(hi.items())))
        if key in self._answers:
            self.hits += 1
            self._answers[key] = self._answers.pop(key)  # most recent last
            return self._answers[key]
        self.misses += 1
        found = _explored(self._qp_digest, key, self.samples, code_stamp(), qp=self.qp, factors=self.factors)
        self._answers[key] = found
        while len(self._answers) > self.keep:
            self._answers.pop(next(iter(self._answers)))
        return found


@disk_cached(ignore=("qp", "factors"))
def _explored(qp_digest: str, key: tuple, samples: int, code: str, qp: FollowerQP, factors: dict
              ) -> list[AffineFollower] | None:
    """``explore_regions`` kept on disk by exact input (a machine's repeated solve of a day skips it: ~0.2 s for
    the default case's 24 periods); ``qp_digest`` and ``code`` stand for ``qp`` and the package's source."""
    demand, lo, hi = (dict(items) for items in key)
    return explore_regions(qp, demand, lo, hi, samples=samples, factors=factors)


def withdrawal_box(case, t: int, loss_allowance: float) -> tuple[dict[int, float], dict[int, float]]:
    """Reachable PCC withdrawal per host bus in period t, from device limits (see ``pcc_range``)."""
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    for adn in case.adns:
        a_lo, a_hi = pcc_range(adn, t, loss_allowance)
        lo[adn.tn_bus] = lo.get(adn.tn_bus, 0.0) + a_lo
        hi[adn.tn_bus] = hi.get(adn.tn_bus, 0.0) + a_hi
    return lo, hi
