"""Faults users met in processes and long calls: fork, signals, tiny calls,
Winograd overflow, sizes no array can have."""

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import fastconv
from fastconv import _direct_gemm, _openmp_helpers, _plan

needs_openmp = pytest.mark.skipif(not _openmp_helpers.openmp_enabled(),
                                  reason="a build without OpenMP has no threads")

# --- fork ----------------------------------------------------------------------------

# The parent runs a two-thread call first (libgomp then holds a pool of
# threads that a forked child inherits without its threads), then the child
# runs another and reports the thread count its kernel got and the thread
# it ran on. Large enough for two threads (35 M multiply-adds). The "spawn"
# and "forkserver" children import this script, hence the __main__ guard.
_FORK_SCRIPT = textwrap.dedent("""
    import json, os, sys, threading
    import numpy as np
    import fastconv
    from fastconv import _direct_gemm

    x = np.ones((1, 32, 64, 64), np.float32)
    w = np.ones((32, 32, 3, 3), np.float32)
    expected = fastconv.conv2d(x, w, algorithm="direct", num_threads=1)

    def child_call(_=None):
        seen = []
        kernel = _direct_gemm.conv2d_rows  # the path of this direct call
        def spy(*args):
            seen.append((args[-3], threading.current_thread().name))  # num_threads
            return kernel(*args)
        _direct_gemm.conv2d_rows = spy
        try:
            results = [fastconv.conv2d(x, w, algorithm=algorithm, num_threads=2)
                       for algorithm in ("direct", "winograd4")]
        finally:
            _direct_gemm.conv2d_rows = kernel
        ok = (np.array_equal(results[0], expected)
              and np.allclose(results[1], expected, rtol=1e-5))
        return {"ok": bool(ok), "threads": seen[0][0], "thread": seen[0][1]}

    if __name__ == "__main__":
        for algorithm in ("direct", "winograd4"):  # both kernels' pools
            fastconv.conv2d(x, w, algorithm=algorithm, num_threads=2)
        how = sys.argv[1]
        if how == "os.fork":
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.write(write, json.dumps(child_call()).encode())
                os._exit(0)
            os.waitpid(pid, 0)
            print(os.read(read, 4096).decode())
        elif how == "nested os.fork":
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                child_call()  # the child's own helper and pools, then fork again
                pid2 = os.fork()
                if pid2 == 0:
                    os.write(write, json.dumps(child_call()).encode())
                    os._exit(0)
                os.waitpid(pid2, 0)
                os._exit(0)
            os.waitpid(pid, 0)
            print(os.read(read, 4096).decode())
        elif how == "ProcessPoolExecutor":
            import concurrent.futures
            with concurrent.futures.ProcessPoolExecutor(2) as pool:
                print(json.dumps(list(pool.map(child_call, range(2)))[0]))
        else:
            import multiprocessing
            with multiprocessing.get_context(how).Pool(2) as pool:
                print(json.dumps(pool.map(child_call, range(2))[0]))
""")


@needs_openmp
@pytest.mark.subprocess
@pytest.mark.parametrize("how", ["os.fork", "nested os.fork", "fork", "spawn", "forkserver",
                                 "ProcessPoolExecutor"])
def test_children_run_multithreaded_calls(how, tmp_path):
    """No hang after fork, and the child keeps its threads."""
    if how in ("os.fork", "nested os.fork", "fork", "forkserver") and not hasattr(
            __import__("os"), "fork"):
        pytest.skip("no fork on this platform")
    script = tmp_path / "fork_child.py"
    script.write_text(_FORK_SCRIPT)
    try:
        done = subprocess.run([sys.executable, str(script), how], capture_output=True,
                              text=True, timeout=60, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{how}: a child's multithreaded call hung")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"], report
    assert report["threads"] == 2, report  # not pinned to one thread


# --- signals ---------------------------------------------------------------------------

class Stop(Exception):
    pass


# (label, input shape for one image, weight shape, keywords): each path's
# work items; the batch grows until a call takes long enough to interrupt.
_LONG_CALLS = [
    ("direct, row panels", (64, 64, 64), (64, 64, 3, 3), {"algorithm": "direct"}),
    ("direct, packed 1x1", (256, 32, 32), (256, 256, 1, 1), {"algorithm": "direct"}),
    ("direct, planes", (256, 128, 128), (256, 4, 11, 11),
     {"algorithm": "direct", "groups": 64}),
    ("winograd", (64, 64, 64), (64, 64, 3, 3), {"algorithm": "winograd4"}),
]


def _long_input(image_shape, call, min_seconds=0.5, max_bytes=1 << 29):
    """An input of as many images as make ``call`` take ``min_seconds`` or
    more (None when that would exceed ``max_bytes``: a machine too fast)."""
    largest = max_bytes // (int(np.prod(image_shape)) * 4)
    batch = 1
    while True:
        x = np.ones((batch,) + image_shape, np.float32)
        call(x)  # faults the pages in, transforms the weights
        start = time.perf_counter()
        call(x)
        seconds = time.perf_counter() - start
        if seconds >= min_seconds:
            return x
        if batch >= largest:
            return None
        # Aim at twice the time: a loaded machine's timings jump.
        batch = min(largest, max(batch + 1,
                                 int(np.ceil(batch * 2 * min_seconds / seconds))))


@pytest.mark.slow
@pytest.mark.parametrize("label, image_shape, w_shape, kwargs", _LONG_CALLS,
                         ids=[case[0] for case in _LONG_CALLS])
def test_a_signal_stops_a_long_call(label, image_shape, w_shape, kwargs):
    """A handler that raises (Ctrl-C's KeyboardInterrupt) ends the call within
    about the kernels' check interval (0.1 s), not when it returns: the rest
    of the output is never written. The process stays sound."""
    w = np.ones(w_shape, np.float32) / np.prod(w_shape[1:])
    call = lambda x, out=None: fastconv.conv2d(x, w, padding=1, out=out,  # noqa: E731
                                               **kwargs)
    x = _long_input(image_shape, call)
    if x is None:
        pytest.skip("this machine is too fast for a long call of bounded size")
    first_image = call(x[:1])
    out = np.full((x.shape[0],) + first_image.shape[1:], np.nan, first_image.dtype)

    def handler(signum, frame):
        raise Stop

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        with pytest.raises(Stop):
            call(x, out)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # Stopped early (timing-free): work items were left undone.
    assert np.isnan(out).any(), label
    # Sound afterwards: the same call gives the same result as before.
    np.testing.assert_array_equal(call(x[:1]), first_image)


def test_a_handler_that_returns_lets_the_call_finish():
    """Handlers run during the call; one that does not raise changes nothing."""
    w = np.ones((64, 64, 3, 3), np.float32)
    call = lambda x: fastconv.conv2d(x, w, padding=1, algorithm="direct")  # noqa: E731
    x = _long_input((64, 64, 64), call, min_seconds=0.3)
    if x is None:
        pytest.skip("this machine is too fast for a long call of bounded size")
    x = x + np.arange(x.shape[0], dtype=np.float32)[:, None, None, None]
    expected = call(x)
    calls = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: calls.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        got = call(x)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert calls == [signal.SIGALRM]
    np.testing.assert_array_equal(got, expected)


def test_calls_from_other_threads_are_not_stopped_by_the_main_threads_signals():
    """Only the main thread runs handlers: a worker thread's call completes."""
    w = np.ones((64, 64, 3, 3), np.float32)
    x = np.ones((4, 64, 64, 64), np.float32)
    expected = fastconv.conv2d(x, w, padding=1, algorithm="direct")
    got = []
    worker = threading.Thread(
        target=lambda: got.append(fastconv.conv2d(x, w, padding=1, algorithm="direct")))
    worker.start()
    worker.join()
    np.testing.assert_array_equal(got[0], expected)


# --- small calls -------------------------------------------------------------------

@needs_openmp
@pytest.mark.thread_minimum
def test_small_calls_start_no_second_thread(monkeypatch):
    seen = []
    for name in ("conv2d_packed", "conv2d_rows"):  # the paths of the calls below
        def spy(*args, _kernel=getattr(_direct_gemm, name)):
            seen.append(args[-3])  # (..., num_threads, blocking, relu)
            return _kernel(*args)

        monkeypatch.setattr(_direct_gemm, name, spy)
    small_x, small_w = np.ones((2, 8, 12, 12), np.float32), np.ones((8, 8, 3, 3), np.float32)
    large_x, large_w = np.ones((1, 32, 64, 64), np.float32), np.ones((32, 32, 3, 3), np.float32)
    for num_threads in (2, None):
        fastconv.conv2d(small_x, small_w, algorithm="direct", num_threads=num_threads)
        with fastconv.threads(2):
            fastconv.conv2d(large_x, large_w, algorithm="direct", num_threads=num_threads)
    # 66 thousand multiply-adds: one thread; 35 million: the two asked for.
    assert seen == [1, 2, 1, 2]
    per_thread = _plan.MIN_WORK_PER_THREAD
    # A 1x1 layer of one input channel: per output element one multiply-add
    # and two elements touched.
    def calls(elements):
        return _plan.Geometry(1, 1, 1, elements, 1, 1, elements, 1, 1, 1, 1, 0, 0, 0, 0,
                              1, 1, 1)
    cost = 1 + 2 * _plan.WORK_PER_ELEMENT
    assert _plan.plan_threads(8, calls(per_thread // cost - 1)) == 1
    # Memory-bound work counts too (a depthwise layer's elements): these
    # multiply-adds alone would get one thread.
    geometry = calls(3 * per_thread // cost + 1)
    assert geometry.multiply_adds < per_thread
    assert _plan.plan_threads(8, geometry) == 3


# --- Winograd overflow ---------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["auto", "winograd"])
def test_auto_never_turns_a_finite_result_into_inf(algorithm):
    """Data near float32's largest: the direct sums (~5.5e37) are finite, the
    Winograd transforms overflow. auto recomputes directly; a forced Winograd
    call may return Inf or NaN (documented)."""
    x = np.full((1, 16, 24, 24), 1e37, np.float32)
    w = np.full((16, 16, 3, 3), 1.1 / (2 * 16 * 9), np.float32)
    direct = fastconv.conv2d(x, w, algorithm="direct")
    assert np.isfinite(direct).all()
    got = fastconv.conv2d(x, w, algorithm=algorithm)
    layer = fastconv.Conv2d(w, algorithm=algorithm)(x)
    if algorithm == "auto":
        assert fastconv.plan(x.shape, w.shape).algorithm == "winograd"
        np.testing.assert_array_equal(got, direct)
        np.testing.assert_array_equal(layer, direct)
    else:
        assert not np.isfinite(got).all()


def test_auto_puts_nan_where_the_direct_kernel_does(rng):
    x = rng.standard_normal((2, 16, 20, 20)).astype(np.float32)
    x[0, 3, 5, 7] = np.nan
    x[1, 0, 10, 2] = np.inf
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    direct = fastconv.conv2d(x, w, padding=1, algorithm="direct")
    got = fastconv.conv2d(x, w, padding=1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(direct))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(direct))


# --- sizes -------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"padding": 2**62},
    {"padding": 2**40},
    {"padding": 2**40, "stride": 2**40, "padding_mode": "replicate"},
])
def test_padding_beyond_any_array_is_a_value_error(kwargs):
    x = np.ones((1, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match="padding"):
        fastconv.conv2d(x, np.ones((2, 3, 3, 3), np.float32), **kwargs)
