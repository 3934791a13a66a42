"""@memoize on pandas data, notebook style: run it top to bottom, or cell by cell (``# %%``)
in VS Code, PyCharm or Jupyter. Run it twice: the second run reads every result from the cache.

    python examples/memo_pandas.py

The cache goes to ``$RECKON_CACHE_DIR`` (default: your user cache directory); ``reckon cache ls``
lists what this script left there and ``reckon cache clear`` empties it.
"""

# %% The data: a year of hourly readings from a few sensors, made up with a fixed seed.
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from reckon import memoize

rng = np.random.default_rng(7)
hours = pd.date_range("2026-01-01", periods=24 * 365, freq="h")
readings = pd.DataFrame(
    {
        "sensor": rng.choice(["north", "south", "east"], size=len(hours)),
        "temperature": 12
        + 8 * np.sin(np.arange(len(hours)) / 24 / 58)
        + rng.normal(0, 1.5, len(hours)),
    },
    index=hours,
)


# %% An expensive step, memoized: keyed by the DataFrame's values and by the code below.
@memoize
def daily_profile(frame: pd.DataFrame, window: int = 7) -> pd.DataFrame:
    """Per sensor and day: mean temperature, smoothed over ``window`` days."""
    time.sleep(0.5)  # stands for minutes of work
    daily = frame.groupby("sensor").resample("D")["temperature"].mean().unstack(level=0)
    return daily.rolling(window, min_periods=1).mean()


started = time.perf_counter()
profile = daily_profile(readings)
first = time.perf_counter() - started
started = time.perf_counter()
again = daily_profile(readings)  # same data, same code: read back, not computed
second = time.perf_counter() - started
pd.testing.assert_frame_equal(profile, again)
print(f"first call {first:.2f} s, second call {second * 1000:.1f} ms")


# %% Other arguments or other data are other entries; the old ones stay.
weekly = daily_profile(readings, window=14)
north_only = daily_profile(readings[readings["sensor"] == "north"])
print(profile.tail(3).round(2))
print(f"{len(weekly)} days smoothed over 14 days; {north_only.shape[1]} sensor north only")


# %% A memoized function that calls another shares its cache entries.
@memoize
def warmest_day(frame: pd.DataFrame) -> tuple[str, str, float]:
    prof = daily_profile(frame)
    sensor = str(prof.max().idxmax())
    day = prof[sensor].idxmax()
    return sensor, day.date().isoformat(), round(float(prof[sensor].max()), 2)


print("warmest smoothed day:", warmest_day(readings))
