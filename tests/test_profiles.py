"""Tests for coordinator.profiles, checked against an independent pandas read of the raw SimBench CSVs."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pandas as pd
import pytest

from coordinator.profiles import DayProfiles, available_profiles, day_profiles

JULY_14 = 196  # 2016 is a leap year: 31 + 29 + 31 + 30 + 31 + 30 = 182 days before 1 July
SUNNY_JULY_DAY = 207  # Mon 25 Jul 2016, clear sky for all PV profiles (Thu 14 Jul is cloudy)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """H0-B and mv_urban load and PV3 at 15 min, indexed by the parsed local-time labels."""
    package = os.path.dirname(importlib.util.find_spec("simbench").origin)
    folder = os.path.join(package, "networks", "1-complete_data-mixed-all-0-sw")
    columns = ["time", "H0-B_pload", "mv_urban_pload"]
    load = pd.read_csv(os.path.join(folder, "LoadProfile.csv"), sep=";", usecols=columns)
    pv = pd.read_csv(os.path.join(folder, "RESProfile.csv"), sep=";", usecols=["PV3"])
    frame = pd.DataFrame({"load": load["H0-B_pload"], "pv": pv["PV3"], "urban": load["mv_urban_pload"]})
    frame.index = pd.to_datetime(load["time"], format="%d.%m.%Y %H:%M")
    return frame


def _raw_day(raw: pd.DataFrame, day_of_year: int) -> pd.DataFrame:
    return raw[raw.index.dayofyear == day_of_year]


@pytest.mark.parametrize(("step", "expected_len"), [(60, 24), (15, 96)])
def test_shapes(step: int, expected_len: int) -> None:
    profiles = day_profiles(JULY_14, step_minutes=step, periods=expected_len)
    assert isinstance(profiles, DayProfiles)
    assert profiles.load.shape == profiles.pv.shape == (expected_len,)
    assert profiles.step_minutes == step


def test_hourly_is_mean_of_quarter_hours(raw: pd.DataFrame) -> None:
    day = _raw_day(raw, JULY_14)
    hourly = day.groupby(day.index.hour).mean()
    profiles = day_profiles(JULY_14, step_minutes=60)
    np.testing.assert_allclose(profiles.load, hourly["load"] / hourly["load"].max())
    np.testing.assert_allclose(profiles.pv, hourly["pv"] / raw["pv"].max())


def test_quarter_hours_are_raw_values(raw: pd.DataFrame) -> None:
    day = _raw_day(raw, JULY_14)
    profiles = day_profiles(JULY_14, step_minutes=15, periods=96)
    np.testing.assert_allclose(profiles.load, day["load"] / day["load"].max())
    np.testing.assert_allclose(profiles.pv, day["pv"] / raw["pv"].max())


@pytest.mark.parametrize("step", [60, 15])
def test_day_peak_of_load_is_one(step: int) -> None:
    profiles = day_profiles(JULY_14, step_minutes=step, periods=24 * 60 // step)
    assert profiles.load.max() == pytest.approx(1.0)
    assert profiles.load.min() > 0


def test_pv_night_and_noon() -> None:
    pv = day_profiles(SUNNY_JULY_DAY).pv
    assert pv[2] == 0.0
    assert pv[12] > 0.3
    assert pv.max() <= 1.0


def test_periods_beyond_the_day_keep_the_day_normaliser(raw: pd.DataFrame) -> None:
    two_days = day_profiles(JULY_14, periods=48)
    np.testing.assert_allclose(two_days.load[:24], day_profiles(JULY_14).load)
    day1, day2 = _raw_day(raw, JULY_14), _raw_day(raw, JULY_14 + 1)
    peak = day1.groupby(day1.index.hour)["load"].mean().max()
    np.testing.assert_allclose(two_days.load[24:], day2.groupby(day2.index.hour)["load"].mean() / peak)


def test_start_hour_shifts_the_window() -> None:
    shifted = day_profiles(JULY_14, periods=24, start_hour=6.0)
    two_days = day_profiles(JULY_14, periods=48)
    np.testing.assert_allclose(shifted.load, two_days.load[6:30])
    np.testing.assert_allclose(shifted.pv, two_days.pv[6:30])
    quarter = day_profiles(JULY_14, step_minutes=15, periods=4, start_hour=0.25)
    np.testing.assert_allclose(quarter.load, day_profiles(JULY_14, step_minutes=15, periods=5).load[1:])


def test_wraps_past_the_end_of_the_year() -> None:
    last_day = day_profiles(366, periods=48)
    first_day = day_profiles(1)
    np.testing.assert_allclose(last_day.pv[24:], first_day.pv)
    np.testing.assert_allclose(last_day.load[24:] / last_day.load[24:].max(), first_day.load)


def test_available_profiles() -> None:
    names = available_profiles()
    assert {"H0-A", "H0-B", "G1-A", "mv_rural"} <= set(names["load"])
    assert names["pv"] == [f"PV{i}" for i in range(1, 9)]


@pytest.mark.parametrize(("kind", "bad"), [("load", "H9-Z"), ("pv", "WP1")])
def test_unknown_profile_name(kind: str, bad: str) -> None:
    with pytest.raises(ValueError, match=f"'{bad}'") as info:
        day_profiles(JULY_14, **{f"{kind}_profile": bad})
    listed = [name for name in available_profiles()[kind] if name in str(info.value)]
    assert len(listed) >= 3


def test_bad_step() -> None:
    with pytest.raises(ValueError, match=r"step_minutes=30.*15.*60"):
        day_profiles(JULY_14, step_minutes=30)


@pytest.mark.parametrize(
    "kwargs",
    [{"start_hour": 0.5}, {"start_hour": -1.0}, {"day_of_year": 0}, {"day_of_year": 367}, {"periods": 0}],
)
def test_bad_arguments(kwargs: dict[str, float]) -> None:
    args = {"day_of_year": JULY_14} | kwargs
    with pytest.raises(ValueError):
        day_profiles(**args)


def test_year_normalisation_is_the_year_peak_of_hourly_means(raw: pd.DataFrame) -> None:
    for column, name in (("load", "H0-B"), ("urban", "mv_urban")):
        hourly = raw[column].groupby(raw.index.floor("h")).mean()  # by hour label; only the DST fall-back hour differs
        for day in (JULY_14, 15):  # a summer and a winter day
            frame = _raw_day(raw, day)
            expected = frame.groupby(frame.index.hour)[column].mean() / hourly.max()
            np.testing.assert_allclose(day_profiles(day, load_profile=name, normalise="year").load, expected)
    summer, winter = (day_profiles(d, load_profile="mv_urban", normalise="year").load.max() for d in (JULY_14, 15))
    assert summer < 0.8 * winter < 0.8  # a summer day is lighter than a winter one; under "day" both peaks are 1.0


def test_year_normalisation_quarter_hours(raw: pd.DataFrame) -> None:
    frame = _raw_day(raw, JULY_14)
    profiles = day_profiles(JULY_14, step_minutes=15, periods=96, normalise="year")
    np.testing.assert_allclose(profiles.load, frame["load"] / raw["load"].max())


def test_bad_normalise() -> None:
    with pytest.raises(ValueError, match=r"normalise='week'.*day.*year"):
        day_profiles(JULY_14, normalise="week")


def test_zero_load_day_is_rejected() -> None:
    # heat-pump profiles are zero in summer: dividing by the day peak must fail loudly, not return NaN
    with pytest.raises(ValueError, match="zero"):
        day_profiles(JULY_14, load_profile="HLS_A_3.7")
