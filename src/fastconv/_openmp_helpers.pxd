# OpenMP runtime calls for every compiled module of fastconv.
#
# The only place that touches OpenMP directly: a build without OpenMP gets
# serial stand-ins with the same names, so the kernels compile and run
# unchanged (Cython's prange degrades to a plain loop in that case).

cdef extern from *:
    """
    #ifdef _OPENMP
        #include <omp.h>
        #define FASTCONV_OPENMP_ENABLED 1
    #else
        #define FASTCONV_OPENMP_ENABLED 0
        #define omp_get_max_threads() 1
        #define omp_get_num_procs() 1
    #endif
    """
    bint FASTCONV_OPENMP_ENABLED
    int omp_get_max_threads() noexcept nogil
    int omp_get_num_procs() noexcept nogil


cdef int effective_num_threads(int requested, Py_ssize_t work_items) noexcept nogil
