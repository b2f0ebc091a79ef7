"""Pieces every ``tsodso`` command shares: the user-error type, the console, argument parsers, model choices.

Kept apart from ``scenarios/cli.py`` (which registers the commands) so that ``cli``, ``run_cli`` and ``report``
import from here and never from each other: no import cycle.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console

DEFAULT_SCENARIO = "ieee30_5adn"
SCHEMES = ["dso-led", "tso-led"]
# The simbench profile year (2016) has 366 days; a horizon cannot be longer than one year of the finest step.
PROFILE_YEAR_DAYS = 366
MAX_PERIODS = PROFILE_YEAR_DAYS * 24 * 4  # 15-minute periods in the profile year
console = Console(stderr=True)


class UsageError(Exception):
    """A user mistake we can name: printed as one ``error:`` line without a traceback, exit code 2."""


def _number(kind: type, text: str) -> float:
    """``text`` as a finite ``kind``; 'nan' and 'inf' are refused (no limit or gap means anything as them)."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a {'number' if kind is float else 'whole number'}, "
                                         f"got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _positive(kind: type, maximum: float | None = None, why: str = ""):
    """Argument type: a finite ``kind`` > 0 (and <= ``maximum``, explained by ``why``)."""

    def parse(text: str):
        value = _number(kind, text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum:g}{why}, got {text}")
        return value

    return parse


def _non_negative_float(text: str) -> float:
    """Argument type: a finite number >= 0."""
    value = _number(float, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


# The formulation options' values when not given. The parser's defaults are None so that ``check_combination``
# can tell an option the user gave (and that a scheme would ignore) from one left at its default.
FORMULATION_DEFAULTS = {"complementarity": "bigm", "follower": "auto", "voltage_cuts": False}


def add_formulation_arguments(p: argparse.ArgumentParser) -> None:
    """Model choices shared by ``solve`` and ``run`` (read back with ``formulation_from``)."""
    from coordinator.blocks.complementarity import STRATEGIES as COMPLEMENTARITY

    d = FORMULATION_DEFAULTS
    p.add_argument("--complementarity", choices=sorted(COMPLEMENTARITY),
                   help="how the follower's complementarity is enforced where KKT is kept (default: "
                        f"{d['complementarity']}; sos1 needs --solver scip or gurobi)")
    p.add_argument("--follower", choices=["auto", "kkt"],
                   help="'auto': replace the follower's KKT block by its exact affine map / critical-region "
                        "disjunction where proven, KKT elsewhere; 'kkt': KKT in every period (the plain MISOCP) "
                        f"(default: {d['follower']}; DSO-led only)")
    p.add_argument("--voltage-cuts", action="store_true", default=None,
                   help="add LinDistFlow upper-voltage cuts: makes the SOC relaxation exact under reverse flow at "
                        "the cost of a conservative voltage limit (see docs/formulation.md; DSO-led only)")


def formulation_from(args: argparse.Namespace):
    from coordinator.dso_led import Formulation

    return Formulation(**{key: default if getattr(args, key, None) is None else getattr(args, key)
                          for key, default in FORMULATION_DEFAULTS.items()})


def combination_problem(solver: str, schemes: Sequence[str], formulation: Mapping[str, Any],
                        solver_label: str | None = None) -> str | None:
    """Why ``solver`` with the formulation options given (``None``: not given) cannot run ``schemes``, or None.
    ``solver_label`` names the solver in the message (default ``--solver NAME``).

    The table (README, "Option combinations"): the ``fast`` strategy has no SOS1 constraints
    (Clarabel branch and bound; it would drop them), so it needs ``--complementarity bigm``; the TSO-led baseline
    builds no follower KKT block (its TN is a primal DC-OPF) and its ADNs without voltage cuts, so the formulation
    options mean nothing to it and are refused when no scheme of the command is DSO-led.
    """
    given = {key: value for key, value in formulation.items() if value is not None}
    complementarity = given.get("complementarity", FORMULATION_DEFAULTS["complementarity"])
    if "dso-led" in schemes and solver == "fast" and complementarity == "sos1":
        from coordinator.solvers.bnb import SOS1_REFUSED

        return f"{solver_label or '--solver fast'} with --complementarity sos1: {SOS1_REFUSED}"
    if "dso-led" not in schemes and given:
        flags = ", ".join(_flag(key, value) for key, value in given.items())
        return (f"{flags} cannot be used with the TSO-led scheme, which ignores them: it has no follower KKT block "
                "(its TN is a primal DC-OPF, so no --follower or --complementarity) and builds its ADNs without "
                "voltage cuts; drop them (they apply to the DSO-led scheme only)")
    return None


def _flag(key: str, value: Any) -> str:
    name = "--" + key.replace("_", "-")
    return name if value is True else f"{name} {value}"


def check_combination(args: argparse.Namespace, solver: str | None = None, schemes: Sequence[str] | None = None,
                      where: str = "") -> None:
    """Refuse (``UsageError``, exit code 2) a solver / scheme / formulation combination that cannot run as asked.

    Every command that solves calls it before building a model. ``solver`` and ``schemes`` override the ones in
    ``args`` where the command resolves them elsewhere (``run``: the scenario's ``coordinator.solver``; ``study``:
    ``--schemes``); ``where`` prefixes the message (a sweep names its grid point).
    """
    label = None if args.solver else f"solver {solver} (the scenario's coordinator.solver or the default)"
    problem = combination_problem(solver or args.solver, schemes or [args.scheme or "dso-led"],
                                  {key: getattr(args, key, None) for key in FORMULATION_DEFAULTS}, label)
    if problem:
        raise UsageError(f"{where}: {problem}" if where else problem)


def add_overwrite_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file (default: refuse, so a finished result is never lost)")


def add_solver_arguments(p: argparse.ArgumentParser) -> None:
    """Solver, formulation, time limit and gap: the options of every command that solves (defaults defined once)."""
    from coordinator.solvers import STRATEGIES
    from coordinator.solvers.base import DEFAULT_MIP_GAP, DEFAULT_SOLVER, DEFAULT_TIME_LIMIT

    p.add_argument("--solver", default=DEFAULT_SOLVER, choices=sorted(STRATEGIES),
                   help="solve strategy (default: %(default)s; 'gurobi' needs a full licence)")
    add_formulation_arguments(p)
    p.add_argument("--time-limit", type=_positive(float), default=DEFAULT_TIME_LIMIT, metavar="S",
                   help="seconds per solve (default: %(default)s); the best incumbent is kept when it is hit")
    p.add_argument("--mip-gap", type=_non_negative_float, default=DEFAULT_MIP_GAP, metavar="G",
                   help="relative optimality gap to stop at (default: %(default)s)")
