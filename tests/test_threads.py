"""set_num_threads / get_num_threads / threads(): the default thread count,
and its cooperation with OMP_NUM_THREADS and threadpoolctl."""

import asyncio
import contextlib
import ctypes
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastconv
from fastconv import _conv, _openmp_helpers, _threads

needs_openmp = pytest.mark.skipif(not _openmp_helpers.openmp_enabled(),
                                  reason="serial build: always 1 thread")


@pytest.fixture(autouse=True)
def no_default():
    """Every test starts and ends without a process default, and ends with
    no open block (a failing test may leave one open)."""
    fastconv.set_num_threads(None)
    yield
    fastconv.set_num_threads(None)
    _threads._context.set(())


@pytest.fixture
def kernel_calls(monkeypatch):
    """The threads every call asks the planner for (it then starts no more
    than the call's work items)."""
    seen = []

    def spy(requested, geometry, _plan_threads=_conv.plan_threads):
        seen.append(requested)
        return _plan_threads(requested, geometry)

    monkeypatch.setattr(_conv, "plan_threads", spy)
    return seen


def run_direct(**kwargs):
    return fastconv.conv2d(np.ones((1, 2, 5, 5)), np.ones((1, 2, 3, 3)),
                           algorithm="direct", **kwargs)


@needs_openmp
def test_set_and_get():
    openmp_default = _openmp_helpers.default_num_threads()
    assert fastconv.get_num_threads() == openmp_default
    fastconv.set_num_threads(3)
    assert fastconv.get_num_threads() == 3
    fastconv.set_num_threads(None)
    assert fastconv.get_num_threads() == openmp_default


@pytest.mark.parametrize("value, error", [(0, ValueError), (-2, ValueError),
                                          (2.0, TypeError), ("2", TypeError),
                                          (True, TypeError)])
def test_invalid_values(value, error):
    with pytest.raises(error, match="num_threads"):
        fastconv.set_num_threads(value)
    with pytest.raises(error, match="num_threads"):
        fastconv.threads(value)  # validated at once, not on entry


def test_priority(kernel_calls):
    """explicit argument > threads() block > set_num_threads > OpenMP (0)."""
    run_direct()
    fastconv.set_num_threads(3)
    run_direct()
    with fastconv.threads(2):
        run_direct()
        run_direct(num_threads=5)
        fastconv.Conv2d(np.ones((1, 2, 3, 3)), num_threads=4)(np.ones((1, 2, 5, 5)))
        with fastconv.threads(None):  # OpenMP's default, ignoring set_num_threads
            run_direct()
    run_direct()
    # OpenMP's default is read at call time, where the caller's limits apply.
    openmp_default = _openmp_helpers.default_num_threads()
    assert kernel_calls == [openmp_default, 3, 2, 5, 4, openmp_default, 3]


@needs_openmp
def test_context_restores_on_exception():
    fastconv.set_num_threads(3)
    with pytest.raises(ZeroDivisionError):
        with fastconv.threads(1) as inside:
            assert inside == 1 == fastconv.get_num_threads()
            1 / 0
    assert fastconv.get_num_threads() == 3
    block = fastconv.threads(2)
    with block:
        with block:  # re-entered
            assert fastconv.get_num_threads() == 2
        assert fastconv.get_num_threads() == 2
    assert fastconv.get_num_threads() == 3


@needs_openmp
def test_decorator():
    @fastconv.threads(1)
    def inner():
        return fastconv.get_num_threads()

    fastconv.set_num_threads(3)
    assert inner() == 1 and fastconv.get_num_threads() == 3


@needs_openmp
def test_python_threads_do_not_share_blocks():
    barrier = threading.Barrier(2, timeout=10)
    seen = {}

    def worker(n):
        with fastconv.threads(n):
            barrier.wait()  # both blocks are active now
            seen[n] = fastconv.get_num_threads()
            run_direct()
            barrier.wait()

    workers = [threading.Thread(target=worker, args=(n,)) for n in (1, 3)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert seen == {1: 1, 3: 3}
    # A thread started inside a block sees the process default, not the block.
    fastconv.set_num_threads(2)
    with fastconv.threads(1):
        t = threading.Thread(target=lambda: seen.update(child=fastconv.get_num_threads()))
        t.start()
        t.join()
    assert seen["child"] == 2


def test_results_do_not_depend_on_threads(rng):
    x = rng.standard_normal((2, 16, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    layer = fastconv.Conv2d(w, padding=1)
    with fastconv.threads(1):
        one = layer(x)
    fastconv.set_num_threads(2)
    np.testing.assert_array_equal(layer(x), one)


@needs_openmp
@pytest.mark.parametrize("value", ["1", "3"])
def test_omp_num_threads(value):
    code = ("import fastconv; print(fastconv.get_num_threads()); "
            "fastconv.set_num_threads(2); print(fastconv.get_num_threads())")
    env = dict(os.environ, OMP_NUM_THREADS=value,
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    lines = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                           capture_output=True, text=True).stdout.split()
    assert lines == [value, "2"]


# --- blocks exited out of order, or on another thread --------------------------

DEFAULT = 7  # the process default of these tests: no block's count


def suspended_in(*blocks):
    """A generator suspended inside ``blocks`` (outermost first); each
    ``next`` yields the count it sees there."""
    def body():
        with contextlib.ExitStack() as stack:
            for block in blocks:
                stack.enter_context(block)
            while True:
                yield fastconv.get_num_threads()

    generator = body()
    next(generator)
    return generator


def in_block(block):
    """A generator suspended inside ``with block:`` (a ``with`` statement,
    unlike :func:`suspended_in`), yielding the count it sees there."""
    with block:
        while True:
            yield fastconv.get_num_threads()


def run_in_thread(function):
    """``function()`` run on a new Python thread; its result."""
    result = []
    worker = threading.Thread(target=lambda: result.append(function()))
    worker.start()
    worker.join()
    return result[0]


@needs_openmp
def test_generators_closed_out_of_order():
    fastconv.set_num_threads(DEFAULT)
    a = in_block(fastconv.threads(1))
    assert next(a) == 1
    b = in_block(fastconv.threads(2))
    assert next(b) == 2
    a.close()  # a's block ends; b's is still open
    assert fastconv.get_num_threads() == 2 == next(b)
    del b  # dropped: its finalizer closes it (the block holds no reference to it)
    assert fastconv.get_num_threads() == DEFAULT
    assert _threads._context.get() == ()  # nothing left behind


@needs_openmp
def test_generators_sharing_a_block_closed_out_of_order():
    """Each exit ends its own entry of a shared object, also when another
    object's block lies between the two entries."""
    fastconv.set_num_threads(DEFAULT)
    one = fastconv.threads(1)

    def inner():
        with fastconv.threads(2):
            with one:
                while True:
                    yield fastconv.get_num_threads()

    a = in_block(one)
    next(a)
    b = inner()
    assert next(b) == 1
    a.close()  # the outer entry of `one` ends, b's stays
    assert next(b) == 1 == fastconv.get_num_threads()
    b.close()
    assert fastconv.get_num_threads() == DEFAULT
    # Two entries of the same object, nothing between them.
    a, b = in_block(one), in_block(one)
    next(a), next(b)
    a.close()
    assert next(b) == 1
    b.close()
    assert fastconv.get_num_threads() == DEFAULT


@needs_openmp
@pytest.mark.parametrize("how", ["with", "ExitStack"])
def test_exit_on_another_thread(how):
    """A block entered on this thread and exited on another ends here, and
    leaves the exiting thread's own block alone."""
    fastconv.set_num_threads(DEFAULT)
    block = fastconv.threads(1)
    suspended = in_block(block) if how == "with" else suspended_in(block)
    assert next(suspended) == 1 == fastconv.get_num_threads()

    def close_there():
        with fastconv.threads(3):
            suspended.close()
            return fastconv.get_num_threads()

    assert run_in_thread(close_there) == 3
    assert fastconv.get_num_threads() == DEFAULT
    assert block._entries == []
    with block:  # still usable
        assert fastconv.get_num_threads() == 1
    assert fastconv.get_num_threads() == DEFAULT


@needs_openmp
def test_exit_stack_closed_on_another_thread_inside_a_block_of_the_object():
    """Without a ``with`` statement to pair them, an exit on a thread that
    has its own block of the object ends that thread's block."""
    fastconv.set_num_threads(DEFAULT)
    block = fastconv.threads(1)
    stack = contextlib.ExitStack()
    stack.enter_context(block)

    def close_there():
        block.__enter__()
        stack.close()
        return fastconv.get_num_threads()

    assert run_in_thread(close_there) == DEFAULT
    assert fastconv.get_num_threads() == 1  # this thread's entry stays open
    block.__exit__(None, None, None)
    assert fastconv.get_num_threads() == DEFAULT


def test_more_exits_than_entries():
    block = fastconv.threads(1)
    with pytest.raises(RuntimeError, match=r"threads\(1\) exited more times than it was"):
        block.__exit__(None, None, None)
    with block:
        pass
    with pytest.raises(RuntimeError, match="exited more times"):
        block.__exit__(None, None, None)


@needs_openmp
def test_asyncio_tasks_do_not_share_blocks():
    fastconv.set_num_threads(DEFAULT)

    async def task(n, started, other_started):
        with fastconv.threads(n):
            started.set()
            await other_started.wait()  # both blocks are open now
            return fastconv.get_num_threads()

    async def main():
        a, b = asyncio.Event(), asyncio.Event()
        counts = await asyncio.gather(task(1, a, b), task(3, b, a))
        return counts, fastconv.get_num_threads()

    assert asyncio.run(main()) == ([1, 3], DEFAULT)


@needs_openmp
def test_asyncio_task_created_in_a_block_sees_it_until_the_block_exits():
    fastconv.set_num_threads(DEFAULT)

    async def count():
        return fastconv.get_num_threads()

    async def main():
        with fastconv.threads(1):
            inside = await asyncio.create_task(count())
            later = asyncio.create_task(count())  # runs after the exit
        return inside, await later

    assert asyncio.run(main()) == (1, DEFAULT)


@needs_openmp
def test_decorator_shared_by_threads():
    """One decorating object, entered on several threads at once and
    recursively."""
    fastconv.set_num_threads(DEFAULT)
    barrier = threading.Barrier(4, timeout=10)

    @fastconv.threads(2)
    def work(depth):
        if depth:
            return work(depth - 1)
        barrier.wait()  # all threads are inside their blocks
        return fastconv.get_num_threads()

    def worker():
        return work(2), fastconv.get_num_threads()

    results = []
    workers = [threading.Thread(target=lambda: results.append(worker())) for _ in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert results == [(2, DEFAULT)] * 4


# --- threadpoolctl --------------------------------------------------------------

class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def fastconv_openmp_library():
    """The file of the OpenMP runtime fastconv's modules resolve
    ``omp_get_max_threads`` to (dlsym on the module searches its
    dependencies), or None where dlsym/dladdr are not available."""
    if not sys.platform.startswith("linux"):
        return None
    module = ctypes.CDLL(_openmp_helpers.__file__)
    try:
        address = ctypes.cast(module.omp_get_max_threads, ctypes.c_void_p)
        dladdr = ctypes.CDLL(None).dladdr
    except AttributeError:
        return None
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    info = _DlInfo()
    if not dladdr(address, ctypes.byref(info)):
        return None
    return os.path.realpath(info.dli_fname.decode())


@needs_openmp
def test_threadpoolctl_sees_and_limits_fastconv(kernel_calls):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    openmp = [os.path.realpath(lib["filepath"]) for lib in threadpoolctl.threadpool_info()
              if lib["user_api"] == "openmp"]
    assert openmp, "threadpoolctl lists no OpenMP runtime"
    library = fastconv_openmp_library()
    if library is not None:
        assert library in openmp
    before = fastconv.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastconv.get_num_threads() == 1
        assert _openmp_helpers.default_num_threads() == 1
        run_direct()  # no num_threads: fastconv asks OpenMP, which says 1
        with fastconv.threads(2):  # an explicit fastconv setting still wins
            assert fastconv.get_num_threads() == 2
    assert fastconv.get_num_threads() == before
    assert kernel_calls == [1]
