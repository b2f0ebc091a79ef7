"""Pieces every ``tsodso`` command shares: the user-error type, the console, argument parsers, model choices.

Kept apart from ``scenarios/cli.py`` (which registers the commands) so that ``cli``, ``run_cli`` and ``report``
import from here and never from each other: no import cycle.
"""

from __future__ import annotations

import argparse
import math

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


def add_formulation_arguments(p: argparse.ArgumentParser) -> None:
    """Model choices shared by ``solve`` and ``run`` (read back with ``formulation_from``)."""
    from coordinator.blocks.complementarity import STRATEGIES as COMPLEMENTARITY

    p.add_argument("--complementarity", default="bigm", choices=sorted(COMPLEMENTARITY),
                   help="how the follower's complementarity is enforced where KKT is kept (default: %(default)s)")
    p.add_argument("--follower", default="auto", choices=["auto", "kkt"],
                   help="'auto': replace the follower's KKT block by its exact affine map / critical-region "
                        "disjunction where proven, KKT elsewhere; 'kkt': KKT in every period (the plain MISOCP) "
                        "(default: %(default)s)")
    p.add_argument("--voltage-cuts", action="store_true",
                   help="add LinDistFlow upper-voltage cuts: makes the SOC relaxation exact under reverse flow at "
                        "the cost of a conservative voltage limit (see docs/formulation.md)")


def formulation_from(args: argparse.Namespace):
    from coordinator.dso_led import Formulation

    return Formulation(complementarity=args.complementarity, follower=args.follower, voltage_cuts=args.voltage_cuts)


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
