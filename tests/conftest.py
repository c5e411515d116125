"""Shared pytest setup for the fastconv suite.

* Puts this folder on ``sys.path`` so ``reference`` and ``cases`` import the
  same way under every pytest import mode.
* Falls back to ``src/`` when fastconv is built in place but not installed.
* Makes hypothesis deterministic and deadline-free by default (property
  tests also say so explicitly and bound their example counts), so CI runs
  are reproducible and not flaky on a loaded 2-core machine.
"""

import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

try:
    import fastconv  # noqa: F401
except ImportError:
    SRC = os.path.join(os.path.dirname(HERE), "src")
    if os.path.isdir(SRC) and SRC not in sys.path:
        sys.path.insert(0, SRC)

settings.register_profile(
    "fastconv", deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("fastconv")


@pytest.fixture
def rng():
    """A fixed-seed generator so every test run sees the same data."""
    return np.random.default_rng(12345)


# --- Longer fuzzing runs ------------------------------------------------------
# FASTCONV_HYPOTHESIS_PROFILE=long python -m pytest -m fuzz
# runs the property tests that do not fix their own example count (the ones in
# test_fuzz.py scale up to this profile's max_examples) with random, not
# derandomized, data: each run explores new cases, and failures are kept in
# the .hypothesis/ database and replayed first next time.
# FASTCONV_HYPOTHESIS_EXAMPLES sets the count (default 2000 per test).
settings.register_profile(
    "long", parent=settings.get_profile("fastconv"), derandomize=False,
    max_examples=int(os.environ.get("FASTCONV_HYPOTHESIS_EXAMPLES", "2000")))
if os.environ.get("FASTCONV_HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["FASTCONV_HYPOTHESIS_PROFILE"])


# --- Threads on small calls ---------------------------------------------------
# A call starts no more threads than its work pays for (about a million
# multiply-adds each), so most test shapes would run on one thread. The suite
# checks the multithreaded kernels on small shapes (bit-identical results for
# every thread count, races, the thread splits), so it lifts that minimum;
# tests of the minimum itself use the `thread_minimum` marker.
@pytest.fixture(autouse=True)
def _threads_on_small_calls(request, monkeypatch):
    if request.node.get_closest_marker("thread_minimum") is None:
        from fastconv import _plan

        monkeypatch.setattr(_plan, "MIN_WORK_PER_THREAD", 1)
