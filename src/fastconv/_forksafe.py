"""Multithreaded calls in a process forked after OpenMP ran (private).

GNU libgomp does not survive ``fork``: a thread that has run a parallel
region keeps a pool of worker threads, a forked child inherits the pool's
bookkeeping but not its threads, and the child's first parallel region with
more than one thread then waits for them forever (GCC bug 52303; LLVM's and
Intel's runtimes reset themselves in the child, libgomp has no such hook and
no call that resets a pool). A thread started in the child has no pool yet
and builds a fresh one. So in a forked child the thread that called ``fork``
hands its multithreaded calls to a helper thread of its own, started on its
first such call; calls on one thread start no team and run in place, and so
do the calls of threads started in the child. The helper costs one hand-off
per call (tens of microseconds, against calls that are only multithreaded
when they are large enough to pay for a second thread) and keeps the child
at its full thread count. This applies to ``os.fork``, ``multiprocessing``'s
"fork" start method (Linux's default before Python 3.14) and the process
pools built on it; "spawn" and "forkserver" children start a fresh runtime.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional, TypeVar

__all__ = ["call"]

T = TypeVar("T")

# The ident of the thread that forked this process (None in a process that
# was not forked), and its helper once started.
_forked_thread: Optional[int] = None
_helper: Optional[ThreadPoolExecutor] = None
_helper_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _forked_thread, _helper, _helper_lock
    _forked_thread = threading.get_ident()
    # The parent's helper thread, if any, did not come along.
    _helper = None
    _helper_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def call(function: Callable[..., T], threads: int, *args: Any) -> T:
    """``function(*args)``, on a helper thread where OpenMP could hang.

    Parameters
    ----------
    function : callable
        Runs the kernels with up to ``threads`` OpenMP threads.
    threads : int
        The thread count the call may use (1: it starts no team).
    *args
        Passed to ``function``.

    Returns
    -------
    result
        What ``function`` returns; its exceptions propagate.

    Notes
    -----
    A ``KeyboardInterrupt`` that arrives while the caller waits for the helper
    is raised once the helper's call has finished (the helper, not being
    Python's main thread, cannot see the signal itself, and returning early
    would leave it writing to the caller's arrays).
    """
    if threads == 1 or _forked_thread is None or threading.get_ident() != _forked_thread:
        return function(*args)
    future = _start_helper().submit(function, *args)
    interrupted = None
    while True:
        try:
            result = future.result()
            break
        except KeyboardInterrupt as error:
            interrupted = error
    if interrupted is not None:
        raise interrupted
    return result


def _start_helper() -> ThreadPoolExecutor:
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = ThreadPoolExecutor(max_workers=1,
                                         thread_name_prefix="fastconv-after-fork")
        return _helper
