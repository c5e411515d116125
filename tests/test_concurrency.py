"""Concurrent use from Python threads: identical results, the GIL released
during the computation, and no oversubscription from executor workers.

How threads combine
-------------------
Every ``conv2d`` call (and every ``Conv2d`` layer call) runs its own OpenMP
parallel region. The Python thread that makes the call becomes the master of
an OpenMP team of ``num_threads`` threads (``None``: the active
``fastconv.threads`` block, else ``fastconv.set_num_threads``'s default, else
``omp_get_max_threads()``; never more than the call has work items). With
GNU OpenMP each calling Python thread keeps its own pool of
``num_threads - 1`` helper threads until it exits. So ``P`` Python threads
calling at once with the default use up to ``P * omp_get_max_threads()``
threads: oversubscription. Inside ``concurrent.futures`` workers (or any
pool of Python threads) pass ``num_threads=1``, or wrap the work in
``with fastconv.threads(1):`` *inside* the worker function (the block is a
context variable, which executor threads do not inherit), or call
``fastconv.set_num_threads(1)`` for the whole process; then the process has
at most one computing thread per Python worker.

The kernels release the GIL while they compute and keep no global state
except the SIMD level chosen at import, and the results are bit-identical
for any thread count, so concurrent calls give exactly the single-threaded
results.
"""

import inspect
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastconv
from fastconv import _openmp_helpers

needs_openmp = pytest.mark.skipif(not _openmp_helpers.openmp_enabled(),
                                  reason="serial build: no OpenMP threads")


def _os_threads():
    """Threads of this process (Linux)."""
    return len(os.listdir("/proc/self/task"))


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/task"),
                                reason="needs /proc/self/task (Linux)")


# --- a mix of shapes and code paths ---------------------------------------------

def _jobs():
    """(name, fn(num_threads) -> result): each a different shape or path."""
    rng = np.random.default_rng(2024)

    def normal(*shape, dtype=np.float32):
        return rng.standard_normal(shape).astype(dtype)

    # Each call takes about 1-5 ms: long enough for the threads to overlap.
    x1, w1, b1 = normal(2, 32, 40, 40), normal(48, 32, 3, 3), normal(48)
    x2, w2 = normal(1, 16, 40, 70, dtype=np.float64), normal(16, 16, 3, 3, dtype=np.float64)
    x3, w3 = normal(4, 64, 48, 48), normal(64, 1, 3, 3)
    x4, w4 = normal(2, 32, 45, 45), normal(32, 16, 3, 3)
    x5, w5, b5 = normal(2, 64, 28, 28), normal(64, 64, 3, 3), normal(64)
    x6, w6 = normal(1, 24, 31, 33, dtype=np.float64), normal(20, 24, 3, 3, dtype=np.float64)
    x7 = rng.integers(-50, 50, (1, 6, 57, 59))
    w7 = rng.integers(-5, 5, (5, 6, 4, 2))
    x8, w8 = normal(2, 3, 60, 60, dtype=np.float16), normal(8, 3, 5, 5, dtype=np.float16)
    x9, w9 = normal(1, 32, 32, 32), normal(32, 32, 3, 3)
    x10, w10 = normal(2, 128, 28, 28), normal(96, 128, 1, 1)
    x11, w11 = normal(1, 3, 112, 112), normal(32, 3, 7, 7)
    shared = fastconv.Conv2d(w5, b5, padding=1, algorithm="winograd4")
    shared(x5)  # cached before the threads start
    jobs = [
        ("direct-gemm", lambda t: fastconv.conv2d(x1, w1, b1, padding=1, algorithm="direct",
                                                  num_threads=t)),
        ("direct-rows", lambda t: fastconv.conv2d(x2, w2, padding=1, algorithm="direct",
                                                  num_threads=t)),
        ("depthwise", lambda t: fastconv.conv2d(x3, w3, padding=1, groups=64, num_threads=t)),
        ("grouped-stride2", lambda t: fastconv.conv2d(x4, w4, stride=2, groups=2,
                                                      num_threads=t)),
        ("winograd2", lambda t: fastconv.conv2d(x5, w5, b5, padding=1, algorithm="winograd2",
                                                num_threads=t)),
        ("winograd4-layer", lambda t: shared(x5, num_threads=t)),
        ("winograd6-f64", lambda t: fastconv.conv2d(x6, w6, padding="same",
                                                    algorithm="winograd6", num_threads=t)),
        ("int64", lambda t: fastconv.conv2d(x7, w7, dilation=(2, 3), num_threads=t)),
        ("float16", lambda t: fastconv.conv2d(x8, w8, padding=2, num_threads=t)),
        ("pointwise", lambda t: fastconv.conv2d(x10, w10, num_threads=t)),
        ("stem-7x7-s2", lambda t: fastconv.conv2d(x11, w11, stride=2, padding=3,
                                                  num_threads=t)),
    ]
    kwargs = {}
    parameters = inspect.signature(fastconv.conv2d).parameters
    if "layout" in parameters and "activation" in parameters:
        kwargs.update(layout="NHWC", activation="relu")
    if "padding_mode" in parameters:
        kwargs.update(padding_mode="reflect")
    x9_in = x9.transpose(0, 2, 3, 1).copy() if "layout" in kwargs else x9
    jobs.append(("nhwc-relu-reflect",
                 lambda t: fastconv.conv2d(x9_in, w9, padding=1, num_threads=t, **kwargs)))
    return jobs


def _same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def _run_threads(n_threads, target):
    """Start ``n_threads`` threads on target(index, barrier); re-raise the
    first error."""
    barrier = threading.Barrier(n_threads, timeout=120)
    errors = []

    def run(i):
        try:
            target(i, barrier)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append((i, exc))
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        i, exc = errors[0]
        raise AssertionError(f"thread {i} failed: {exc!r}") from exc


def test_eight_threads_match_serial_results():
    """8 Python threads call conv2d and Conv2d layers at once, each on the
    shapes in a different order and with different num_threads: every
    result equals the serial one bit for bit."""
    jobs = _jobs()
    expected = {name: fn(1) for name, fn in jobs}
    rounds, n_threads = 6, 8

    def worker(i, barrier):
        barrier.wait()
        for r in range(rounds):
            for k in range(len(jobs)):
                name, fn = jobs[(k + i * 3 + r) % len(jobs)]
                got = fn((None, 1, 2)[(i + k) % 3])
                assert _same(got, expected[name]), f"{name}: differs from the serial result"

    _run_threads(n_threads, worker)


def test_threads_share_a_new_layer():
    """The first calls of a layer race to pack its weights: all of them get
    the right result, and later calls too."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 16, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    n_threads = 8
    for algorithm in ("direct", "winograd2", "winograd4", "winograd6"):
        expected = fastconv.conv2d(x, w, padding=1, algorithm=algorithm, num_threads=1)
        layer = fastconv.Conv2d(w, padding=1, algorithm=algorithm)

        def worker(i, barrier):
            barrier.wait()  # all first calls at once
            for _ in range(3):
                assert _same(layer(x), expected), algorithm

        _run_threads(n_threads, worker)


def test_out_buffers_per_thread():
    """Each thread writes its own ``out``; nothing leaks between them."""
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((1, 4, 9 + i, 11)) for i in range(8)]
    w = rng.standard_normal((6, 4, 3, 3))
    expected = [fastconv.conv2d(x, w, padding=1) for x in xs]

    def worker(i, barrier):
        out = np.full_like(expected[i], np.nan)
        barrier.wait()
        for _ in range(20):
            out[...] = np.nan
            assert fastconv.conv2d(xs[i], w, padding=1, out=out) is out
            assert _same(out, expected[i])

    _run_threads(8, worker)


# --- the GIL --------------------------------------------------------------------

def _loop_rate_while(fn):
    """(iterations per second of a pure-Python loop in this thread while
    ``fn`` runs in another, seconds ``fn`` took)."""
    started, done = threading.Event(), threading.Event()
    times = {}

    def worker():
        started.set()
        times["start"] = time.perf_counter()
        try:
            fn()
        finally:
            times["end"] = time.perf_counter()
            done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    started.wait()
    count = 0
    while not done.is_set():
        count += 1
    thread.join()
    elapsed = times["end"] - times["start"]
    return count / elapsed, elapsed


def _long_calls():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 256, 56, 56)).astype(np.float32)
    w = rng.standard_normal((256, 256, 3, 3)).astype(np.float32) * 0.02
    xd = rng.standard_normal((8, 256, 64, 64)).astype(np.float32)
    wd = rng.standard_normal((256, 1, 7, 7)).astype(np.float32)
    return {
        "direct": lambda: fastconv.conv2d(x, w, padding=1, algorithm="direct", num_threads=1),
        "winograd": lambda: fastconv.conv2d(x, w, padding=1, algorithm="winograd4",
                                            num_threads=1),
        "depthwise": lambda: fastconv.conv2d(xd, wd, padding=3, groups=256, num_threads=1),
    }


@pytest.mark.parametrize("kind", ["direct", "winograd", "depthwise"])
def test_gil_released_during_computation(kind):
    """While one thread runs a long convolution (about 0.1-0.3 s here),
    another thread keeps running Python code at a good fraction of its
    speed. Were the GIL held, it would get at most a switch interval or two
    (about 5 ms) of the call."""
    call = _long_calls()[kind]
    call()  # warm up: page in the arrays, start the OpenMP pool
    ratios = []
    for _ in range(3):  # a loaded machine may steal one attempt
        base_rate, _ = _loop_rate_while(lambda: time.sleep(0.2))  # sleep frees the GIL
        rate, elapsed = _loop_rate_while(call)
        ratios.append(rate / base_rate)
        if elapsed >= 0.03 and ratios[-1] > 0.25:
            return
    pytest.fail(f"the other thread ran at {max(ratios):.2f} of its speed during the "
                f"call ({ratios}): the GIL looks held")


# --- thread pools ---------------------------------------------------------------

def _settled_thread_count(limit, timeout=5.0):
    """The thread count once it is <= limit (threads that have been joined
    may take a moment to leave /proc), or the last count seen."""
    deadline = time.monotonic() + timeout
    count = _os_threads()
    while count > limit and time.monotonic() < deadline:
        time.sleep(0.02)
        count = _os_threads()
    return count


def _quiet_thread_count(timeout=3.0):
    """The thread count once it has stopped falling: OpenMP helpers of
    Python threads that other tests joined exit a little after them."""
    deadline = time.monotonic() + timeout
    count, stable_since = _os_threads(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - stable_since < 0.3:
        time.sleep(0.02)
        now = _os_threads()
        if now != count:
            count, stable_since = now, time.monotonic()
    return count


@needs_proc
@needs_openmp
@pytest.mark.parametrize("how", ["num_threads=1", "threads(1)", "set_num_threads(1)"])
def test_executor_workers_with_one_thread_each_do_not_oversubscribe(how):
    """Executor workers that ask for one thread per call add no OpenMP
    threads: the process runs at most one computing thread per worker (see
    the module docstring). The results are the serial ones."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 16, 32, 32)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    expected = fastconv.conv2d(x, w, padding=1)  # also starts this thread's pool
    workers = 2
    baseline = _quiet_thread_count()
    peak = []

    def task(i):
        if how == "num_threads=1":
            y = fastconv.conv2d(x, w, padding=1, num_threads=1)
        elif how == "threads(1)":
            with fastconv.threads(1):  # inside the worker: blocks are per thread
                y = fastconv.conv2d(x, w, padding=1)
        else:
            y = fastconv.conv2d(x, w, padding=1)
        peak.append(_os_threads())
        return y

    if how == "set_num_threads(1)":
        fastconv.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(task, range(60)))
    finally:
        fastconv.set_num_threads(None)
    assert all(_same(y, expected) for y in results)
    # baseline + the executor's own threads + a little slack (a thread of
    # another test finishing, or one not yet gone from /proc).
    assert max(peak) <= baseline + workers + 3, (baseline, max(peak))
    # The workers' threads are gone with the executor.
    assert _settled_thread_count(baseline + 1) <= baseline + 1


@needs_proc
@needs_openmp
def test_executor_thread_count_is_workers_times_num_threads():
    """The bound the module docstring documents: each worker calling with
    ``num_threads=k`` keeps ``k - 1`` OpenMP helpers (in steady state), and
    they go away with the worker."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 16, 32, 32)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    expected = fastconv.conv2d(x, w, padding=1, num_threads=1)
    workers, k = 2, 3
    baseline = _quiet_thread_count()
    peak = []

    def task(i):
        y = fastconv.conv2d(x, w, padding=1, num_threads=k)
        peak.append(_os_threads())
        return y

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(task, range(40)))
    assert all(_same(y, expected) for y in results)
    # GNU OpenMP ends surplus helpers when a team is smaller than the last
    # one (here: the weight packing's), and starts new ones for the next:
    # exiting threads linger in /proc for a moment, so judge the typical
    # count, and bound the peak loosely.
    typical = sorted(peak)[len(peak) // 2]
    assert typical <= baseline + workers * k + 1, (baseline, typical, sorted(peak))
    assert max(peak) <= baseline + 2 * workers * k + 3, (baseline, sorted(peak))
    assert _settled_thread_count(baseline + 1) <= baseline + 1
