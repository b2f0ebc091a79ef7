"""Load and PV day profiles from the CSV files shipped with the ``simbench`` package.

``simbench.get_simbench_net`` builds a whole grid (~5 s) just to reach the profiles, so the CSVs are read directly,
one column at a time, and each parsed column is cached for the lifetime of the process and on disk
(``coordinator.diskcache``).

Data facts (SimBench base case ``1-complete_data-mixed-all-0-sw``): year 2016 (366 days), 15-minute rows,
``;``-separated, 35136 rows. The ``time`` labels are German local wall-clock time: 27 Mar has no 02:00-02:45 rows and
30 Oct repeats them. Days are therefore located by their label (so "noon" means local noon) and periods are
counted in rows from local midnight, i.e. in physical time.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import os
import re
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from coordinator.diskcache import disk_cached, file_stamp

__all__ = ["DayProfiles", "available_profiles", "day_profiles", "horizon_rows", "periods_in_year"]


def _simbench_dir() -> str:
    """Package folder found without importing ``simbench`` (the import pulls in pandapower, ~1.3 s)."""
    spec = importlib.util.find_spec("simbench")
    if spec is None or spec.origin is None:
        raise ImportError("the 'simbench' package is required for profiles (pip install simbench)")
    return os.path.dirname(spec.origin)


DATA_DIR = os.path.join(_simbench_dir(), "networks", "1-complete_data-mixed-all-0-sw")
LOAD_FILE = "LoadProfile.csv"
RES_FILE = "RESProfile.csv"
SEP = ";"
RAW_STEP_MINUTES = 15
ALLOWED_STEPS = (15, 60)
NORMALISE = ("day", "year")  # load normaliser: the chosen day's peak or the profile year's peak
_LOAD_SUFFIX = "_pload"
_PV_PATTERN = re.compile(r"PV\d+")


@dataclass(frozen=True)
class DayProfiles:
    """Per-unit profiles for one horizon; multiply by nominal powers to get MW.

    ``load`` is 1.0 at the peak step of the chosen calendar day (``normalise="day"``: every day's peak equals the
    network's nominal load) or of the whole profile year (``normalise="year"``: seasons differ); ``pv`` is relative
    to the PV profile's annual 15-min maximum (so 1.0 = installed peak).
    """

    load: np.ndarray
    pv: np.ndarray
    step_minutes: int


def _path(file: str) -> str:
    return os.path.join(DATA_DIR, file)


@cache
def _header(file: str) -> tuple[str, ...]:
    """Column names of a profile CSV (reads the first line only)."""
    return _read_header(_path(file), file_stamp(_path(file)))


@cache
def _column(file: str, column: str) -> np.ndarray:
    """One numeric column as a read-only float array (a full-file parse: ~0.25 s, so cached on disk too)."""
    values = _read_column(_path(file), file_stamp(_path(file)), column)
    values.setflags(write=False)
    return values


@cache
def _day_start_rows() -> np.ndarray:
    """Row index of the first row (local 00:00) of each calendar day, index 0 = 1 Jan.

    Taken from the labels rather than ``(day - 1) * 96`` because DST shifts rows by one hour in summer.
    """
    starts = _read_day_starts(_path(RES_FILE), file_stamp(_path(RES_FILE)))
    starts.setflags(write=False)
    return starts


# the readers behind the caches; ``stamp`` (size, mtime) only keys the disk cache


@disk_cached
def _read_header(path: str, stamp: tuple[int, int]) -> tuple[str, ...]:
    return tuple(pd.read_csv(path, sep=SEP, nrows=0).columns)


@disk_cached
def _read_column(path: str, stamp: tuple[int, int], column: str) -> np.ndarray:
    return pd.read_csv(path, sep=SEP, usecols=[column], dtype={column: np.float64})[column].to_numpy()


@disk_cached
def _read_day_starts(path: str, stamp: tuple[int, int]) -> np.ndarray:
    dates = pd.read_csv(path, sep=SEP, usecols=["time"])["time"].str.slice(0, 10)
    return np.flatnonzero((dates != dates.shift()).to_numpy())


def available_profiles() -> dict[str, list[str]]:
    """Names accepted by :func:`day_profiles`: ``{"load": ["BL-H", "G0-A", ...], "pv": ["PV1", ...]}``."""
    load = [c[: -len(_LOAD_SUFFIX)] for c in _header(LOAD_FILE) if c.endswith(_LOAD_SUFFIX)]
    pv = [c for c in _header(RES_FILE) if _PV_PATTERN.fullmatch(c)]
    return {"load": load, "pv": pv}


def periods_in_year(day_of_year: int, step_minutes: int, start_hour: float = 0.0) -> int:
    """How many ``step_minutes`` periods from ``start_hour`` of ``day_of_year`` fit before the profile year ends."""
    rows = len(_column(RES_FILE, available_profiles()["pv"][0]))
    first_row = int(_day_start_rows()[day_of_year - 1]) + round(start_hour * 60 / RAW_STEP_MINUTES)
    return max(0, (rows - first_row) // (step_minutes // RAW_STEP_MINUTES))


def _check_name(kind: str, name: str) -> None:
    names = available_profiles()[kind]
    if name not in names:
        closest = ", ".join(difflib.get_close_matches(name, names, n=6, cutoff=0.0))
        raise ValueError(
            f"unknown {kind} profile {name!r}; closest of {len(names)} available: {closest} (see available_profiles())"
        )


def _check_args(day_of_year: int, step_minutes: int, periods: int, start_hour: float) -> None:
    n_days = len(_day_start_rows())
    if not 1 <= day_of_year <= n_days:
        raise ValueError(f"day_of_year={day_of_year} outside 1..{n_days}")
    if step_minutes not in ALLOWED_STEPS:
        raise ValueError(f"step_minutes={step_minutes} not supported; allowed: {ALLOWED_STEPS}")
    if periods < 1:
        raise ValueError(f"periods={periods} must be >= 1")
    start_steps = start_hour * 60 / step_minutes
    if start_hour < 0 or not math.isclose(start_steps, round(start_steps), abs_tol=1e-9):
        raise ValueError(f"start_hour={start_hour} must be >= 0 and a multiple of the {step_minutes}-minute step")


def _window(values: np.ndarray, first_row: int, periods: int, step_minutes: int) -> np.ndarray:
    """``periods`` steps from ``first_row``, wrapping to 1 Jan past the end; 60 min = mean of the 4 quarter hours."""
    factor = step_minutes // RAW_STEP_MINUTES
    rows = np.arange(first_row, first_row + periods * factor) % len(values)
    return values[rows].reshape(periods, factor).mean(axis=1)


@cache
def _year_peak(load_profile: str, step_minutes: int) -> float:
    """Peak of a load profile over the whole year after aggregation to ``step_minutes`` (steps from 1 Jan 00:00)."""
    raw = _column(LOAD_FILE, load_profile + _LOAD_SUFFIX)
    factor = step_minutes // RAW_STEP_MINUTES
    n = len(raw) // factor * factor
    return float(raw[:n].reshape(-1, factor).mean(axis=1).max())


def horizon_rows(day_of_year: int, step_minutes: int = 60, periods: int = 24, start_hour: float = 0.0) -> np.ndarray:
    """Rows (periods, step / 15 min) of the 15-minute profile year that make up each period of a horizon.

    Same calendar and DST rules as :func:`day_profiles` (days located by their local-time label); rows wrap to
    1 Jan past the end. Averaging a series over axis 1 of ``series[rows]`` gives its per-period values.
    """
    _check_args(day_of_year, step_minutes, periods, start_hour)
    factor = int(step_minutes) // RAW_STEP_MINUTES
    first_row = int(_day_start_rows()[day_of_year - 1]) + round(start_hour * 60 / RAW_STEP_MINUTES)
    n_rows = int(_day_start_rows()[-1]) + 24 * 60 // RAW_STEP_MINUTES  # 35136 for 2016
    return (np.arange(first_row, first_row + periods * factor) % n_rows).reshape(periods, factor)


def day_profiles(
    day_of_year: int,
    step_minutes: int = 60,
    periods: int = 24,
    start_hour: float = 0.0,
    load_profile: str = "H0-B",
    pv_profile: str = "PV3",
    normalise: str = "day",
) -> DayProfiles:
    """Per-unit load and PV for ``periods`` steps from ``start_hour`` (local time) of a 1-based day of 2016.

    The load is divided by its peak after aggregation to the step: with ``normalise="day"`` the peak of the chosen
    day's 24 h from local midnight (every day as heavy as any other), with ``"year"`` the peak over the whole profile
    year (a summer noon lighter than a winter evening). Periods may run past the chosen day (receding horizons); the
    normaliser stays the same, so every window of a rolling horizon shares one scale.
    """
    _check_args(day_of_year, step_minutes, periods, start_hour)
    if normalise not in NORMALISE:
        raise ValueError(f"normalise={normalise!r} not supported; allowed: {NORMALISE}")
    _check_name("load", load_profile)
    _check_name("pv", pv_profile)
    step_minutes = int(step_minutes)

    day_start = int(_day_start_rows()[day_of_year - 1])
    first_row = day_start + round(start_hour * 60 / RAW_STEP_MINUTES)
    load_raw = _column(LOAD_FILE, load_profile + _LOAD_SUFFIX)
    pv_raw = _column(RES_FILE, pv_profile)

    if normalise == "day":
        day_peak = _window(load_raw, day_start, 24 * 60 // step_minutes, step_minutes).max()
    else:
        day_peak = _year_peak(load_profile, step_minutes)
    if day_peak <= 0:
        raise ValueError(f"load profile {load_profile!r} is zero on day {day_of_year}; cannot normalise")
    pv_peak = pv_raw.max()
    if pv_peak <= 0:
        raise ValueError(f"PV profile {pv_profile!r} is zero all year; cannot normalise")

    load = _window(load_raw, first_row, periods, step_minutes) / day_peak
    pv = _window(pv_raw, first_row, periods, step_minutes) / pv_peak
    return DayProfiles(load=load, pv=pv, step_minutes=step_minutes)
