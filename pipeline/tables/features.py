"""The features fast.ai's structured-data lesson adds to a dated table (Rossmann): the parts of
the date, and per group (each store) the days since the last and until the next event (promo,
state holiday, school holiday). All vectorised over the whole frame: sorted once by group and
date, events carried forward and back with a grouped fill; no Python per row.

Events are read off the calendar the data gives for every row, test rows included (a promo is
planned, a holiday is known): these are lookups, not statistics fitted on anything."""
from __future__ import annotations

import numpy as np
import pandas as pd

# the date's parts the network learns a value for each of (a December, a Monday, a month's last day)
DATE_CATEGORIES = ("Year", "Month", "Day", "Dayofweek", "Is_month_start", "Is_month_end")
# and those it reads as numbers: the week and the day of the year recur once a year, and as
# categories they let a model learn single days of earlier years (a holiday that moves with
# Easter: LightGBM on Rossmann's last six weeks, 0.157 RMSPE with them as categories, 0.106 as
# numbers, benchmarks/RESULTS.md); as numbers only a smooth season. Elapsed (days since
# 1970) is the trend
DATE_NUMBERS = ("Week", "Dayofyear", "Elapsed")


def date_columns(date: str) -> tuple[list[str], list[str]]:
    """(categorical, continuous) columns the date adds."""
    return [f"{date}{p}" for p in DATE_CATEGORIES], [f"{date}{p}" for p in DATE_NUMBERS]


# An event's nearness is also a category: the days since and until it, up to NEAR, each a value
# with its own embedding (NEAR + 1: further). As numbers, normalised over a year's range, the day
# before a holiday and the day after it sit a hair apart, and the network did not tell them apart:
# Rossmann's last six weeks, 0.121 RMSPE without these, 0.101 with (LightGBM on the same columns:
# 0.106); the misses had been around Whitsun and Ascension (benchmarks/RESULTS.md, issue 28).
# fast.ai's lesson does the same with its 7-day counts of events before and after.
NEAR = 14


def event_columns(events: tuple[str, ...]) -> list[str]:
    """The continuous columns the events add: days since and until each."""
    return [f"{e}{side}" for e in events for side in ("_since", "_until")]


def event_categories(events: tuple[str, ...]) -> list[str]:
    """The categorical ones: the same days, clipped at NEAR + 1."""
    return [f"{c}_days" for c in event_columns(events)]


def add_date_parts(frame: pd.DataFrame, date: str) -> pd.DataFrame:
    """Year, month, ISO week, day of month, day of week, day of year, month start and end, and
    the days since 1970 (DATE_CATEGORIES and DATE_NUMBERS say which the network reads how)."""
    d = frame[date].dt
    parts = {"Year": d.year, "Month": d.month, "Week": d.isocalendar().week.astype(np.int64), "Day": d.day,
             "Dayofweek": d.day_of_week, "Dayofyear": d.day_of_year, "Is_month_start": d.is_month_start,
             "Is_month_end": d.is_month_end,
             "Elapsed": frame[date].to_numpy().astype("datetime64[D]").astype(np.int64)}
    return frame.assign(**{f"{date}{k}": np.asarray(v) for k, v in parts.items()})


def is_event(values: pd.Series) -> np.ndarray:
    """A day with the event: a value other than 0, "0", False or missing (StateHoliday "a" is one)."""
    v = values.to_numpy(object) if values.dtype == object or pd.api.types.is_string_dtype(values) else values.to_numpy()
    return pd.notna(v) & (v != 0) & (v != "0") & (v != False)  # noqa: E712 (elementwise)


def add_events(frame: pd.DataFrame, date: str, group: str | None, events: tuple[str, ...]) -> pd.DataFrame:
    """`<event>_since`: days since the group's last day with the event (0 on the day itself);
    `<event>_until`: days until its next. Missing where the data holds no such day. Each also as
    `<column>_days`, clipped at NEAR + 1, for a category (event_categories)."""
    if not events:
        return frame
    keys = [group, date] if group else [date]
    order = np.lexsort([frame[k].to_numpy() for k in reversed(keys)])
    days = frame[date].to_numpy().astype("datetime64[D]").astype(np.int64)[order].astype(np.float64)
    by = frame[group].to_numpy()[order] if group else np.zeros(len(frame))
    new = {}
    for e in events:
        on = pd.Series(np.where(is_event(frame[e])[order], days, np.nan))
        grouped = on.groupby(by, sort=False)
        since = days - grouped.ffill().to_numpy()
        until = grouped.bfill().to_numpy() - days
        back = np.empty(len(frame))
        for name, values in ((f"{e}_since", since), (f"{e}_until", until)):
            back[order] = values
            new[name] = back.copy()
            new[f"{name}_days"] = np.minimum(back, NEAR + 1)  # (missing, no such day: stays missing)
    return frame.assign(**new)
