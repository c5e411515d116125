"""Wall-clock timing: interleaved best-of with settle calls.

Imports nothing from fastconv (see the package docstring): the asv suite
loads this file from the source tree.

Calls being compared are timed interleaved, one call of each in turn per
repeat, so that all of them see the same machine (a shared or throttling
machine drifts between runs), and the best of the repeats is kept. A *settle*
call is an untimed call right before the timed one: it lets the thread pool
of the call timed before (OpenMP or OpenBLAS workers still spinning after
their last task) go idle and wakes this call's own pool. Measured here, a
fastconv or torch call right after a NumPy matmul took 2-4x longer than in a
loop of its own.
"""

import time

__all__ = ["timed_call", "interleaved_times", "interleaved_best", "best_of", "best_time",
           "call_times"]


def timed_call(call, settle=False):
    """Seconds of one ``call()``; with ``settle``, after an untimed call."""
    if settle:
        call()
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def interleaved_times(calls, repeats, settle=False, warm_up=True, step=None):
    """Time each of ``calls`` ``repeats`` times, interleaved.

    Parameters
    ----------
    calls : dict
        No-argument callables by key; timed in this order in each repeat.
    repeats : int
    settle : bool or dict, default=False
        Whether each timed call follows an untimed one: for all calls, or
        per key.
    warm_up : bool, default=True
        Call each once before the first repeat (page faults, thread start,
        caches), untimed.
    step : callable, optional
        ``step(key)`` after each timed call (a progress bar).

    Returns
    -------
    dict
        Per key, the list of ``repeats`` times in seconds.
    """
    if not isinstance(settle, dict):
        settle = dict.fromkeys(calls, settle)
    if warm_up:
        for call in calls.values():
            call()
    times = {key: [] for key in calls}
    for _ in range(repeats):
        for key, call in calls.items():
            times[key].append(timed_call(call, settle[key]))
            if step is not None:
                step(key)
    return times


def interleaved_best(calls, repeats, settle=False, warm_up=True):
    """The best time in seconds per key of ``calls``; see
    :func:`interleaved_times`."""
    times = interleaved_times(calls, repeats, settle, warm_up)
    return {key: min(values) for key, values in times.items()}


def best_of(call, repeats, settle=False, warm_up=True):
    """Best of ``repeats`` timed calls of one ``call``, in seconds."""
    return interleaved_best({None: call}, repeats, settle, warm_up)[None]


def best_time(call, min_calls=3, min_seconds=0.2):
    """Best wall time of ``call()`` after one warm-up call: at least
    ``min_calls`` calls and ``min_seconds`` in all."""
    call()
    times, start = [], time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_seconds:
        times.append(timed_call(call))
    return min(times)


def call_times(call, count):
    """The times in seconds of ``count`` back-to-back calls (no warm-up, no
    settle call): for statistics of a call's spread, not its best."""
    return [timed_call(call) for _ in range(count)]
