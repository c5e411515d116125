# cython: language_level=3
"""The instruction-set level of the kernels: one state for the whole package
(private).

The compiled kernels exist for several instruction-set levels (baseline,
AVX2, AVX-512). This module holds all of them and the one dispatch table
through which every extension calls them (``_kernels/cpu_kernels.hpp``);
:mod:`fastconv._direct` and :mod:`fastconv._winograd` point at that table
when they are imported (``kernel_table``, cimported from ``_cpu.pxd``), so
:func:`select_isa` switches what both run, at once. :mod:`fastconv._isa`
selects the level once, at import. :func:`fma_peak` measures the limit the
kernels' speed is reported against.
"""

from cython.parallel cimport prange

from ._kernels cimport fc_cpu_isa, fc_kernel_table

import time


cdef extern from "cpu_kernels.hpp" nogil:
    fc_kernel_table fc_kernel_table_active
    int fc_select_kernels(int requested)


ISA_LEVELS = ("baseline", "avx2", "avx512")


cdef const fc_kernel_table *kernel_table() noexcept nogil:
    """The one table of the kernels of the level in use."""
    return &fc_kernel_table_active


cdef int isa_level() noexcept nogil:
    """The level in use, an index into ISA_LEVELS."""
    return fc_kernel_table_active.isa


def cpu_isa():
    """Highest instruction-set level the running CPU (and OS) supports."""
    return ISA_LEVELS[fc_cpu_isa()]


def active_isa():
    """The instruction-set level of the kernels in use."""
    return ISA_LEVELS[isa_level()]


def select_isa(str name):
    """Use the kernels of level ``name`` (capped at :func:`cpu_isa`) in every
    extension. Returns the level now in use."""
    return ISA_LEVELS[fc_select_kernels(ISA_LEVELS.index(name))]


cdef extern from "fma_peak.hpp" nogil:
    double fc_fma_peak_flop(int level)
    void fc_fma_loop(int level, long iterations)


def fma_peak(int threads=1, level=None, double seconds=0.05, int repeats=3):
    """The measured multiply-add peak of ``threads`` threads, in GFLOP/s of
    float32.

    Each thread runs an inline-assembly loop of 12 independent multiply-adds
    (``_kernels/fma_peak.hpp``: a loop the compiler cannot fold) for about
    ``seconds``; the best of ``repeats`` runs counts. The result is the
    physical limit a convolution kernel's GFLOP/s is measured against.

    Parameters
    ----------
    threads : int, default=1
        Threads running the loop at once (OpenMP).
    level : {"baseline", "avx2", "avx512"}, optional
        The instruction-set level whose multiply-adds are timed: FMA on zmm
        (avx512) or ymm (avx2) registers, mulps + addps on xmm (baseline,
        which has no FMA). Default: the level in use.
    seconds : float, default=0.05
    repeats : int, default=3

    Returns
    -------
    gflops : float
        0.0 where the loops do not exist (not x86-64, or not GCC/Clang).
    """
    if threads < 1 or repeats < 1 or not seconds > 0:
        raise ValueError("threads and repeats must be >= 1 and seconds > 0")
    cdef int isa = isa_level() if level is None else ISA_LEVELS.index(level)
    if isa > fc_cpu_isa():
        raise ValueError(f"this CPU cannot run {level!r} instructions")
    cdef double flop = fc_fma_peak_flop(isa)
    if flop == 0:
        return 0.0
    cdef long iterations = 1 << 16
    cdef double elapsed = _time_loops(isa, iterations, 1)
    while elapsed < seconds / 8:
        iterations *= 2
        elapsed = _time_loops(isa, iterations, 1)
    iterations = max(1, <long>(iterations * seconds / elapsed))
    best = min(_time_loops(isa, iterations, threads) for _ in range(repeats))
    return threads * iterations * flop / best / 1e9


cdef double _time_loops(int isa, long iterations, int threads):
    """Seconds for ``threads`` threads to run ``iterations`` each, at once."""
    cdef Py_ssize_t t
    start = time.perf_counter()
    with nogil:
        for t in prange(threads, num_threads=threads, schedule='static', chunksize=1):
            fc_fma_loop(isa, iterations)
    return time.perf_counter() - start
