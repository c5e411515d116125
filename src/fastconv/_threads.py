"""Thread-count control: a process default and a context manager (private).

The number of OpenMP threads a convolution uses is decided, from the
strongest to the weakest, by

1. an explicit ``num_threads=`` argument (of the call, or of a
   :class:`fastconv.Conv2d` layer),
2. the innermost active ``with fastconv.threads(n):`` block of the current
   thread or asyncio task (a :class:`contextvars.ContextVar`, so concurrent
   Python threads do not see each other's blocks),
3. the process default of :func:`set_num_threads`,
4. OpenMP's own default at call time (``omp_get_max_threads()``), which
   honours ``OMP_NUM_THREADS`` and ``threadpoolctl.threadpool_limits``.

Only levels 1 to 3 are stored here, in Python; level 4 is never changed by
fastconv, so other libraries sharing the OpenMP runtime are not affected.
"""

from __future__ import annotations

import contextlib
import contextvars
import operator
import sys
import threading
from types import FrameType
from typing import List, Optional, Tuple

import numpy as np

from . import _openmp_helpers

__all__ = ["set_num_threads", "get_num_threads", "threads"]

#: The kernels' "no request" value: OpenMP's default at call time.
OPENMP_DEFAULT = 0
#: Requests above this are capped (more threads than this never help).
MAX_THREADS = 1 << 16

_process_default: Optional[int] = None


class _Entry:
    """One entry into a :class:`threads` block, until its exit."""

    __slots__ = ("num_threads", "active", "frame")

    def __init__(self, num_threads: Optional[int], frame: Optional[FrameType]) -> None:
        self.num_threads = num_threads
        # Cleared by the exit. A flag rather than a removal from the stack,
        # because the exit may run in another thread or context, which
        # cannot change this context's variable.
        self.active = True
        # The frame that entered (None once exited): a ``with`` statement
        # exits from the frame that entered, which pairs an exit with its
        # own entry when blocks of one object are exited out of order.
        self.frame = frame


#: The entries of the current thread or asyncio task, outermost first; an
#: immutable tuple, so that contexts copied from this one never see later
#: pushes and pops. Entries stay after an exit in another context until
#: this context's next entry or exit drops them.
_context: contextvars.ContextVar[Tuple[_Entry, ...]] = contextvars.ContextVar(
    "fastconv_num_threads", default=())


def _active(stack: Tuple[_Entry, ...]) -> Tuple[_Entry, ...]:
    """``stack`` without its exited entries."""
    return tuple(entry for entry in stack if entry.active)


def check_num_threads(num_threads: object, name: str = "num_threads") -> Optional[int]:
    """``num_threads`` validated: ``None`` or an int >= 1 (capped at 65536).

    Raises
    ------
    TypeError
        For a value that is not an int (bool included) or None.
    ValueError
        For an int < 1.
    """
    if num_threads is None:
        return None
    if isinstance(num_threads, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or None; got {num_threads!r}")
    try:
        n = operator.index(num_threads)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int or None; got {num_threads!r}") from None
    if n < 1:
        raise ValueError(f"{name} must be >= 1 or None; got {n}")
    return min(n, MAX_THREADS)


def _requested() -> Optional[int]:
    """The thread count asked for by a ``threads`` block or the process
    default, or None for OpenMP's default."""
    # Usually the innermost entry is active: the loop stops at once.
    for entry in reversed(_context.get()):
        if entry.active:
            return entry.num_threads
    return _process_default


def kernel_threads(num_threads: object = None) -> int:
    """The ``num_threads`` argument for the compiled kernels.

    An explicit ``num_threads`` (validated) wins; otherwise the active
    :func:`threads` block or the :func:`set_num_threads` default; otherwise
    ``0``, which the kernels read as OpenMP's default at call time.
    """
    n = check_num_threads(num_threads)
    if n is None:
        n = _requested()
    return OPENMP_DEFAULT if n is None else n


def set_num_threads(num_threads: Optional[int]) -> None:
    """Set the process-wide default number of threads of fastconv's kernels.

    Parameters
    ----------
    num_threads : int or None
        Threads (>= 1) for every later call that passes no ``num_threads``
        and runs outside a :func:`threads` block. ``None`` removes the
        default, so OpenMP's own default applies again (``OMP_NUM_THREADS``,
        ``threadpoolctl`` limits).

    Raises
    ------
    TypeError
        If ``num_threads`` is not an int or None.
    ValueError
        If ``num_threads`` < 1.

    See Also
    --------
    get_num_threads, threads

    Notes
    -----
    The default is kept by fastconv; OpenMP's settings are not changed, so
    other libraries that share the OpenMP runtime are unaffected. While a
    default is set it takes precedence over ``OMP_NUM_THREADS`` and
    ``threadpoolctl`` limits, just as an explicit ``num_threads=`` does.

    Examples
    --------
    >>> import fastconv
    >>> fastconv.set_num_threads(2)
    >>> fastconv.get_num_threads()
    2
    >>> fastconv.set_num_threads(None)  # back to OpenMP's default
    """
    global _process_default
    _process_default = check_num_threads(num_threads)


def get_num_threads() -> int:
    """The number of threads a call without ``num_threads`` would use now.

    Returns
    -------
    num_threads : int
        The innermost active :func:`threads` block's count, else the
        :func:`set_num_threads` default, else OpenMP's default
        (``omp_get_max_threads()``, which follows ``OMP_NUM_THREADS`` and
        ``threadpoolctl`` limits). Always 1 for a build without OpenMP. It is
        an upper bound: a call never starts more threads than it has work
        items.

    See Also
    --------
    set_num_threads, threads

    Examples
    --------
    >>> import fastconv
    >>> with fastconv.threads(1):
    ...     fastconv.get_num_threads()
    1
    """
    if not _openmp_helpers.openmp_enabled():
        return 1
    n = _requested()
    return int(_openmp_helpers.default_num_threads()) if n is None else n


class threads(contextlib.ContextDecorator):
    """Context manager: fastconv's default number of threads inside a block.

    Parameters
    ----------
    num_threads : int or None
        Threads (>= 1) for the calls in the block that pass no
        ``num_threads``; ``None`` means OpenMP's default inside the block
        (ignoring a :func:`set_num_threads` default). Validated at once.

    Raises
    ------
    TypeError
        If ``num_threads`` is not an int or None.
    ValueError
        If ``num_threads`` < 1.
    RuntimeError
        On exit, if the object has no block left to exit (it was exited
        more times than entered).

    See Also
    --------
    set_num_threads, get_num_threads

    Notes
    -----
    ``with threads(n) as count:`` binds ``count`` to the effective number in
    the block, as :func:`get_num_threads` says. The setting ends when the
    block exits, also on an exception. It lives in a
    :class:`contextvars.ContextVar`: it applies to the Python thread (or
    asyncio task) that entered the block only, so concurrent threads using
    different counts do not interfere, and a thread started inside the block
    does not inherit it (it sees the :func:`set_num_threads` default). A
    context copied inside the block (such as an asyncio task created there)
    sees the setting until the block exits. Blocks nest, and the same object
    may be re-entered. It can also decorate a function.

    Blocks may exit in any order (generators suspended inside blocks and
    closed out of order): an exit ends its own block only, and the innermost
    block not yet exited applies. A block may also exit on another thread
    than the one that entered it (a generator or a
    :class:`contextlib.ExitStack` closed there); it ends for the entering
    thread too. An exit ends the block of the same object that its ``with``
    statement entered; where that is unknown (an ``ExitStack``), the
    innermost open block of the object in the exiting thread, else the
    object's latest open block elsewhere.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x, w = np.ones((1, 4, 8, 8)), np.ones((2, 4, 3, 3))
    >>> with fastconv.threads(1) as n:
    ...     y = fastconv.conv2d(x, w)  # single-threaded
    >>> n
    1
    """

    def __init__(self, num_threads: Optional[int]) -> None:
        self.num_threads = check_num_threads(num_threads)
        # This object's entries not yet exited, in entry order, shared by
        # all threads: an exit may run on another thread than its entry.
        self._entries: List[_Entry] = []
        self._lock = threading.Lock()

    def __enter__(self) -> int:
        entry = _Entry(self.num_threads, sys._getframe(1))
        with self._lock:
            self._entries.append(entry)
        _context.set(_active(_context.get()) + (entry,))
        return get_num_threads()

    def __exit__(self, *exc_info: object) -> None:
        caller = sys._getframe(1)
        stack = _context.get()
        with self._lock:
            entry = self._pop_entry(caller, stack)
            entry.active = False
            entry.frame = None
        _context.set(_active(stack))

    def _pop_entry(self, caller: FrameType, stack: Tuple[_Entry, ...]) -> _Entry:
        """Remove and return the entry an exit from ``caller`` ends.

        The latest entry made by ``caller`` (a ``with`` statement), else the
        innermost of this object in ``stack``, else its latest anywhere.
        Call with ``self._lock`` held.
        """
        entries = self._entries
        for i in range(len(entries) - 1, -1, -1):
            if entries[i].frame is caller:
                return entries.pop(i)
        for entry in reversed(stack):
            if entry in entries:
                entries.remove(entry)
                return entry
        if entries:
            return entries.pop()
        raise RuntimeError(f"{self!r} exited more times than it was entered")

    def __repr__(self) -> str:
        return f"threads({self.num_threads!r})"
