# cython: language_level=3
"""The compiled drivers' one parallel idiom (private; inline, compiled into
each driver module that cimports it).

A driver fills a job struct (the geometry, its plan's blocking, pointers to
the arrays) and hands it with a work function to :func:`run_work_items`,
or, for paths whose threads work on one block together, to
:func:`run_rounds`. They start the threads, give each its per-thread
scratch from the package's pool (``fc_scratch_acquire``), run the work
items in static chunks, stop early on a pending signal
(``_interrupt.pxd``) and raise ``MemoryError`` if a thread had no scratch:
what used to be written out in every driver.

A thread's scratch starts with ``THREAD_STATE_BYTES`` zeroed at the start of
each call: room for what a work function keeps between the items of one
thread (the plane kernel's last row block, whose zero borders it reuses);
the rest is the work function's, laid out as its job says.
"""

from cython.parallel cimport parallel, prange
from libc.stdint cimport int64_t
from libc.string cimport memset

from ._interrupt cimport (fc_interrupt, fc_interrupted, raise_if_interrupted,
                          start_interrupt_checks)
from ._kernels cimport fc_scratch_acquire, fc_scratch_release

ctypedef fused numeric_t:
    float
    double
    int64_t


cdef enum:
    # The pool's slots: a call holds one of each at most.
    SLOT_THREAD = 0       # each thread's scratch (run_work_items, run_rounds)
    SLOT_SHARED = 1       # what the calling thread holds for all threads
    THREAD_STATE_BYTES = 64


cdef inline char *_thread_scratch(size_t scratch_bytes) noexcept nogil:
    """This thread's scratch (SLOT_THREAD) with its state zeroed, or NULL."""
    cdef char *scratch = <char *>fc_scratch_acquire(SLOT_THREAD,
                                                   THREAD_STATE_BYTES + scratch_bytes)
    if scratch != NULL:
        memset(scratch, 0, THREAD_STATE_BYTES)
    return scratch


cdef inline int _raise_if_stopped(fc_interrupt *interrupt, int alloc_failed) except -1:
    """After a parallel region: the pending signal's exception, or
    MemoryError if a thread had no scratch."""
    raise_if_interrupted(interrupt)
    if alloc_failed:
        raise MemoryError("fastconv: cannot allocate per-thread scratch buffers")
    return 0


cdef inline bint run_work_items(
        bint (*work)(const void *job, Py_ssize_t item, char *scratch,
                     const numeric_t *dtype) noexcept nogil,
        const void *job, Py_ssize_t n_items, int threads,
        size_t scratch_bytes) except -1:
    """``work(job, item, scratch, NULL)`` for item in [0, n_items), on
    ``threads`` threads in contiguous static chunks, each with
    ``THREAD_STATE_BYTES + scratch_bytes`` of scratch. Returns whether any
    call returned True (Winograd: a non-finite result)."""
    cdef int alloc_failed = 0, flagged = 0
    cdef int *alloc_failed_ptr = &alloc_failed
    cdef int *flagged_ptr = &flagged
    # Set before the parallel region, which copies it into each thread
    # (Cython makes it firstprivate): an unset one would be copied
    # uninitialised (gcc's -Wmaybe-uninitialized), though each thread sets it
    # before use.
    cdef char *scratch = NULL
    cdef Py_ssize_t item
    cdef fc_interrupt interrupt
    cdef fc_interrupt *interrupt_ptr = &interrupt
    start_interrupt_checks(interrupt_ptr)
    with nogil, parallel(num_threads=threads):
        scratch = _thread_scratch(scratch_bytes)
        if scratch == NULL:
            alloc_failed_ptr[0] = 1
        for item in prange(n_items, schedule='static'):
            if scratch != NULL and not fc_interrupted(interrupt_ptr):
                if work(job, item, scratch, NULL):
                    flagged_ptr[0] = 1
        fc_scratch_release(SLOT_THREAD)
    _raise_if_stopped(interrupt_ptr, alloc_failed)
    return flagged


cdef inline bint run_rounds(
        Py_ssize_t (*phase_items)(const void *job, Py_ssize_t round,
                                  int phase) noexcept nogil,
        bint (*work)(const void *job, Py_ssize_t round, int phase, Py_ssize_t item,
                     char *scratch, const numeric_t *dtype) noexcept nogil,
        const void *job, Py_ssize_t n_rounds, int threads,
        size_t scratch_bytes) except -1:
    """Rounds in which all threads work on one block together: per round,
    phase 0's ``phase_items(job, round, 0)`` items, a barrier, then phase
    1's (each a static ``prange``), e.g. pack a block's input together,
    then share out its output channels. Scratch, interrupts and the result
    as in :func:`run_work_items`."""
    cdef int alloc_failed = 0, flagged = 0
    cdef int *alloc_failed_ptr = &alloc_failed
    cdef int *flagged_ptr = &flagged
    cdef char *scratch = NULL   # firstprivate: see run_work_items
    cdef Py_ssize_t round_index = 0, item
    cdef int phase = 0
    cdef fc_interrupt interrupt
    cdef fc_interrupt *interrupt_ptr = &interrupt
    start_interrupt_checks(interrupt_ptr)
    with nogil, parallel(num_threads=threads):
        scratch = _thread_scratch(scratch_bytes)
        if scratch == NULL:
            alloc_failed_ptr[0] = 1
        for round_index in range(n_rounds):
            for phase in range(2):
                for item in prange(phase_items(job, round_index, phase), schedule='static'):
                    if scratch != NULL and not fc_interrupted(interrupt_ptr):
                        if work(job, round_index, phase, item, scratch, NULL):
                            flagged_ptr[0] = 1
        fc_scratch_release(SLOT_THREAD)
    _raise_if_stopped(interrupt_ptr, alloc_failed)
    return flagged


cdef inline Py_ssize_t ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b


cdef inline size_t aligned(size_t nbytes) noexcept nogil:
    """``nbytes`` rounded up to 64: where the next part of a scratch starts."""
    return (nbytes + 63) & ~(<size_t>63)
