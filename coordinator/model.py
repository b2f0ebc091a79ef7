"""The contract between a built Pyomo model, the solvers and the result builder (the Pyomo twin of
``pipeline.BuiltModel``).

A builder (``dso_led.build_dso_led``, ``tso_led.build_stage1`` / ``build_stage2``) returns a ``PyomoModel``: the
``ConcreteModel`` a solver works on (``pm.model``; the cones stay in the typed registry of ``coordinator.cones``)
and, beside it, everything the rest of the code needs to know about it: the follower's QP data, the scheme, each
period's follower form and where the TN dispatch and the LMPs are read. Nothing is stored as an ad-hoc Python
attribute on the Pyomo model, so a reader never looks a fact up by attribute name, with a silent default when it
is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyomo.environ as pyo

from coordinator.blocks.dcopf import FollowerQP
from coordinator.followers import FORM_KINDS

if TYPE_CHECKING:  # dso_led imports this module
    from coordinator.dso_led import Formulation

@dataclass
class PyomoModel:
    """A built Pyomo model and what a solver and ``results.collect`` need to know about it.

    ``tn_x[j, t]`` (follower variable j) and ``lmp[n, t]`` (TN bus n) are indexed Pyomo components of ``model``
    (Expressions over the follower's forms, or Params holding a re-dispatch), or None while the TN side of the
    model is not known (TSO-led stage 1 reads its TN from a separate re-dispatch). ``forms`` is each period's
    follower form (``FORM_KINDS``); empty when the model has no follower (TSO-led). ``formulation`` is the
    ``dso_led.Formulation`` the model was built with (None: the formulation options do not apply).
    """

    model: pyo.ConcreteModel
    qp: FollowerQP
    scheme: str
    formulation: Formulation | None = None
    forms: tuple[str, ...] = ()
    tn_x: Any = None
    lmp: Any = None
    relaxed_binaries: int = 0  # binaries relaxed to [0, 1] (TSO-led stage 1)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.forms) - set(FORM_KINDS))
        if unknown:
            raise ValueError(f"follower forms {unknown} are not among {FORM_KINDS}")

    def periods(self, kind: str) -> list[int]:
        """The periods whose follower has form ``kind``."""
        if kind not in FORM_KINDS:
            raise ValueError(f"follower form {kind!r} is not one of {FORM_KINDS}")
        return [t for t, k in enumerate(self.forms) if k == kind]

    @property
    def formulation_info(self) -> dict:
        """The result's ``formulation`` section (empty when the formulation options do not apply)."""
        return {} if self.formulation is None else formulation_info(self.formulation, self.forms)


def formulation_info(formulation: Formulation, kinds: Sequence[str]) -> dict:
    """The result's ``formulation`` section (docs/results-schema.md) from the options and each period's form;
    shared by the Pyomo path and the fast pipeline so both report the same fields."""
    f = formulation
    return {
        "follower": f.follower, "complementarity": f.complementarity, "voltage_cuts": f.voltage_cuts,
        "loss_allowance": f.loss_allowance,
        "affine_periods": [t for t, k in enumerate(kinds) if k == "affine"],
        "region_periods": [t for t, k in enumerate(kinds) if k == "hull"],
        "kkt_periods": [t for t, k in enumerate(kinds) if k == "kkt"],
        "exact": not f.voltage_cuts,
        "note": ("voltage cuts restrict the feasible set (conservative near Vmax)" if f.voltage_cuts
                 else "every reformulation is exact: affine/region periods are proven, KKT periods are the "
                      "plain single-level model"),
    }
