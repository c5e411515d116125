"""Guarded access to the OpenMP runtime (private)."""

def openmp_enabled():
    """Whether this build of fastconv was compiled with OpenMP.

    Returns
    -------
    enabled : bool
        False for a serial build (the compiler had no OpenMP support).
    """
    return bool(FASTCONV_OPENMP_ENABLED)


def openmp_version():
    """The ``_OPENMP`` date macro of the build (e.g. 201511), or 0 without OpenMP."""
    return _openmp_version()


cdef extern from *:
    """
    #ifdef _OPENMP
    static long fastconv_openmp_version(void) { return (long)_OPENMP; }
    #else
    static long fastconv_openmp_version(void) { return 0; }
    #endif
    """
    long fastconv_openmp_version() noexcept nogil


cdef long _openmp_version():
    return fastconv_openmp_version()


def default_num_threads():
    """Threads a call uses when ``num_threads=None``.

    This is OpenMP's current default (``omp_get_max_threads``), read at call
    time, so ``OMP_NUM_THREADS`` and ``threadpoolctl`` limits apply.
    """
    return omp_get_max_threads()


def thread_limit():
    """Most threads a call may run: four per processor (or per OpenMP default
    thread), 1 in a build without OpenMP."""
    if not FASTCONV_OPENMP_ENABLED:
        return 1
    return 4 * max(omp_get_num_procs(), omp_get_max_threads())


cdef int effective_num_threads(int requested, Py_ssize_t work_items) noexcept nogil:
    """Threads for a parallel region: ``requested`` (<= 0: the OpenMP default
    now) capped by the number of work items, since an idle thread only costs a
    wake-up, and by four per processor (or per OpenMP default thread)."""
    cdef Py_ssize_t n = requested if requested > 0 else omp_get_max_threads()
    # More threads than a few per processor only cost memory (and a runtime
    # may fail to create thousands): cap absurd requests.
    cdef Py_ssize_t cap = 4 * max(omp_get_num_procs(), omp_get_max_threads())
    if not FASTCONV_OPENMP_ENABLED:
        return 1
    if n > cap:
        n = cap
    if n > work_items:
        n = work_items
    return <int>(n if n > 1 else 1)


cdef extern from *:
    """
    #ifndef FASTCONV_BUILD_FLAGS
    #define FASTCONV_BUILD_FLAGS "unknown"
    #endif
    #ifndef FASTCONV_BUILD_COMPILER
    #define FASTCONV_BUILD_COMPILER "unknown"
    #endif
    #if defined(__clang__)
    #define FASTCONV_COMPILER_VERSION "clang " __clang_version__
    #elif defined(__GNUC__)
    #define FASTCONV_COMPILER_VERSION "gcc " __VERSION__
    #elif defined(_MSC_VER)
    #define FASTCONV_COMPILER_VERSION "msvc " FASTCONV_STR(_MSC_VER)
    #else
    #define FASTCONV_COMPILER_VERSION "unknown"
    #endif
    #define FASTCONV_STR_(x) #x
    #define FASTCONV_STR(x) FASTCONV_STR_(x)
    """
    const char *FASTCONV_BUILD_FLAGS
    const char *FASTCONV_BUILD_COMPILER
    const char *FASTCONV_COMPILER_VERSION


def build_info():
    """Compiler, its version and the flags the extensions were built with."""
    return {
        "compiler": FASTCONV_BUILD_COMPILER.decode(),
        "compiler_version": FASTCONV_COMPILER_VERSION.decode(),
        "flags": FASTCONV_BUILD_FLAGS.decode(),
    }
