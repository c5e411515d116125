# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The FFT path's spectral products on the GEMM tile (private).

For every frequency f, the FFT convolution multiplies the input tiles'
spectra by the conjugated spectra of the weights and sums over the input
channels: ``Y[f, k, p] = sum_c X[f, c, p] * G[f, k, c]``, a complex GEMM
(output channels x input channels x tiles) per frequency. It runs on the
register-blocked real GEMM tile of Winograd (``gemm_tile.hpp``) through the
real 2 x 2 form of a complex product::

    [Yr]   [Gr  -Gi] [Xr]
    [Yi] = [Gi   Gr] [Xi]

with rows (output channel k: real, imaginary) and columns (input channel c:
real, imaginary) interleaved, so one MR-row tile covers MR / 2 output
channels and the reduction runs over 2 C/groups.

The spectra are laid out frequency-major, as ``fastconv._fft`` has the
FFTs give and take them for this path: ``X`` (F, C, P) and ``Y`` (F, K, P)
complex, P the tiles of the batch, so that every frequency's matrices are
contiguous. A work item is (group, frequency, block of NR-column panels): it
gathers its B panels ``[2 C/groups][NR]`` (real and imaginary
parts split), runs the tiles of every output-channel panel into a buffer
and interleaves the results into ``Y``. The driver executes the
plan's blocking (``fastconv._plan.fft``) and decides nothing.
"""

from cython.parallel cimport parallel, prange
from libc.string cimport memset

from ._parallel cimport THREAD_STATE_BYTES, aligned, ceil_div, run_work_items
from ._cpu cimport kernel_table
from ._kernels cimport *

import numpy as np


fc_use_kernel_table(kernel_table())


cdef enum:
    PACK_FREQUENCIES = 16


ctypedef fused floating:
    float
    double


cdef struct Job:
    # What every thread reads: the shapes, the plan's blocking, the arrays.
    Py_ssize_t channels, out_channels, group_in, group_out, out_padded, columns
    Py_ssize_t frequencies
    Py_ssize_t mr, nr, panels, n_column_blocks
    const void *x
    const void *packed
    const void *zeros
    void *y


cdef inline Py_ssize_t _panel_width(const Job *job, Py_ssize_t n_cols,
                                    Py_ssize_t p) noexcept nogil:
    """Columns of panel p: NR, or NR / 2 for a last panel that fits in it
    (the narrow GEMM tile), so few tiles do not pay for a full panel."""
    return job.nr // 2 if n_cols - p * job.nr <= job.nr // 2 else job.nr


cdef void _gather(const Job *job, const floating *x, Py_ssize_t g, Py_ssize_t f,
                  Py_ssize_t col0, Py_ssize_t n_cols, floating *b) noexcept nogil:
    """The B panels ``[2 C/groups][width]`` of columns col0 .. col0 + n_cols
    at frequency f, each NR columns apart in ``b``: row 2c is the real part
    of input channel c, 2c + 1 its imaginary part; columns past the last
    tile are zero."""
    cdef Py_ssize_t nr = job.nr, kc = 2 * job.group_in, c, j, p, valid, width
    cdef const floating *src
    cdef floating *dst
    for p in range(ceil_div(n_cols, nr)):
        dst = b + p * kc * nr
        width = _panel_width(job, n_cols, p)
        valid = min(width, n_cols - p * nr)
        if valid < width:
            memset(dst, 0, <size_t>(kc * width) * sizeof(floating))
        for c in range(job.group_in):
            src = x + 2 * ((f * job.channels + g * job.group_in + c) * job.columns + col0 + p * nr)
            for j in range(valid):
                dst[2 * c * width + j] = src[2 * j]
                dst[(2 * c + 1) * width + j] = src[2 * j + 1]


cdef void _scatter(const Job *job, const floating *c, Py_ssize_t g, Py_ssize_t f,
                   Py_ssize_t col0, Py_ssize_t n_cols, floating *y) noexcept nogil:
    """The GEMM results ``c[k panel][panel][MR][width]`` (panels MR x NR
    apart) into Y: rows 2k and 2k + 1 (one k panel: MR is even) are output
    channel k's real and imaginary parts, interleaved again as complex
    numbers."""
    cdef Py_ssize_t nr = job.nr, mr = job.mr, n_panels = ceil_div(n_cols, nr)
    cdef Py_ssize_t k, j, p, row, width, valid
    cdef const floating *src
    cdef floating *dst
    for k in range(job.group_out):
        row = 2 * k
        dst = y + 2 * ((f * job.out_channels + g * job.group_out + k) * job.columns + col0)
        for p in range(n_panels):
            width = _panel_width(job, n_cols, p)
            valid = min(width, n_cols - p * nr)
            src = c + ((row // mr) * n_panels + p) * mr * nr + (row % mr) * width
            for j in range(valid):
                dst[2 * (p * nr + j)] = src[j]
                dst[2 * (p * nr + j) + 1] = src[width + j]


cdef bint _products_item(const void *job_ptr, Py_ssize_t item, char *scratch,
                         const floating *dtype) noexcept nogil:
    """Work item (group, frequency, block of column panels)."""
    cdef const Job *job = <const Job *>job_ptr
    cdef Py_ssize_t nr = job.nr, mr = job.mr, kc = 2 * job.group_in
    cdef Py_ssize_t column_block = item % job.n_column_blocks
    cdef Py_ssize_t f = (item // job.n_column_blocks) % job.frequencies
    cdef Py_ssize_t g = item // (job.n_column_blocks * job.frequencies)
    cdef Py_ssize_t col0 = column_block * job.panels * nr
    cdef Py_ssize_t n_cols = min(job.panels * nr, job.columns - col0)
    cdef Py_ssize_t n_panels = ceil_div(n_cols, nr), kp, p
    cdef floating *b = <floating *>(scratch + THREAD_STATE_BYTES)
    cdef floating *c = <floating *>(scratch + THREAD_STATE_BYTES
                                    + aligned(job.panels * kc * nr * sizeof(floating)))
    cdef const floating *a = ((<const floating *>job.packed)
                              + (g * job.frequencies + f) * job.out_padded * kc)
    _gather(job, <const floating *>job.x, g, f, col0, n_cols, b)
    # The panels stay in L1/L2 while each weight panel meets all of them.
    for kp in range(job.out_padded // mr):
        for p in range(n_panels):
            fc_gemm_tile(kc, a + kp * kc * mr, b + p * kc * nr, c + (kp * n_panels + p) * mr * nr,
                         _panel_width(job, n_cols, p), 0, <const floating *>job.zeros)
    _scatter(job, c, g, f, col0, n_cols, <floating *>job.y)
    return False


def pack_weights(const floating[:, :, ::1] spectra, floating[:, :, ::1] packed,
                 Py_ssize_t groups, int num_threads):
    """The conjugated spectra of the weights as the GEMM tile's A panels.

    Parameters
    ----------
    spectra : ndarray of shape (K, C // groups, 2 F)
        The weights' spectra (not conjugated) as (real, imaginary) pairs.
    packed : ndarray of shape (groups, F, K_pad * 2 * C // groups)
        Same dtype; written in full: per group and frequency, panels
        ``[K_pad / MR][2 C/groups][MR]`` of the real form of ``conj(G)``
        (module docstring), K_pad = 2 K/groups rounded up to MR (the level
        in use), zero rows past 2 K/groups.
    groups : int
    num_threads : int
        OpenMP threads over blocks of frequencies.

    Returns
    -------
    packed
    """
    cdef int mr = 0, nr = 0
    fc_gemm_tile_shape(<const floating *>NULL, &mr, &nr)
    cdef Py_ssize_t out_channels = spectra.shape[0], group_in = spectra.shape[1]
    cdef Py_ssize_t frequencies = spectra.shape[2] // 2, group_out = out_channels // groups
    cdef Py_ssize_t kc = 2 * group_in, out_padded = ceil_div(2 * group_out, mr) * mr
    if (groups < 1 or out_channels % groups or packed.shape[0] != groups
            or packed.shape[1] != frequencies or packed.shape[2] != out_padded * kc):
        raise ValueError("packed does not match the spectra, groups or ISA level")
    cdef Py_ssize_t g, k, k0, c, f, f0, block, kp, r
    cdef floating re, im
    cdef floating *dst
    cdef const floating *src
    cdef Py_ssize_t n_blocks = ceil_div(frequencies, PACK_FREQUENCIES)
    with nogil:
        # A transpose, (K, C, F) to (F, K, C), in blocks: a block of
        # frequencies, then one output-channel panel and input channel at a
        # time, whose MR x 2 values of one frequency fill whole cache lines.
        for block in prange(n_blocks, schedule='static',
                            num_threads=max(1, min(num_threads, n_blocks))):
            f0 = block * PACK_FREQUENCIES
            for g in range(groups):
                for kp in range(out_padded // mr):
                    for c in range(group_in):
                        for f in range(f0, min(f0 + PACK_FREQUENCIES, frequencies)):
                            dst = &packed[g, f, 0] + kp * kc * mr + 2 * c * mr
                            for r in range(0, mr, 2):
                                k = (kp * mr + r) // 2
                                if k >= group_out:
                                    dst[r] = dst[r + 1] = dst[mr + r] = dst[mr + r + 1] = 0
                                    continue
                                src = &spectra[g * group_out + k, c, 2 * f]
                                # conj(G) = a + ib with a = Gr, b = -Gi: rows
                                # (Yr, Yi) are (a, -b) and (b, a) against
                                # columns (Xr, Xi).
                                re, im = src[0], -src[1]
                                dst[r] = re
                                dst[mr + r] = -im
                                dst[r + 1] = im
                                dst[mr + r + 1] = re
    return packed


def spectral_products(const floating[:, :, ::1] x, const floating[:, :, ::1] packed,
                      floating[:, :, ::1] y, Py_ssize_t groups, int num_threads, blocking):
    """``Y[f, k, p] = sum_c X[f, c, p] * G[f, k, c]`` over each group's
    input channels, complex numbers stored as (real, imaginary) pairs.

    Parameters
    ----------
    x : ndarray of shape (F, C, 2 P)
        The input tiles' spectra.
    packed : ndarray of shape (groups, F, K_pad * 2 * C // groups)
        The weights' conjugated spectra as the GEMM tile's A panels (same
        dtype, the level in use): per group and frequency, panels
        ``[K_pad / MR][2 C/groups][MR]`` of the real form (module
        docstring), K_pad = 2 K/groups rounded up to MR, zero rows past it
        (``fastconv._fft.weight_spectra``).
    y : ndarray of shape (F, K, 2 P)
        Written in full.
    groups : int
    num_threads : int
        The plan's ``threads`` (>= 1).
    blocking : mapping
        The plan's ``panels``: NR-column panels per work item.

    Raises
    ------
    ValueError
        If the shapes or the blocking do not fit together.
    """
    cdef Job job
    cdef int mr = 0, nr = 0
    fc_gemm_tile_shape(<const floating *>NULL, &mr, &nr)
    if x.shape[2] % 2 or y.shape[2] != x.shape[2] or y.shape[0] != x.shape[0]:
        raise ValueError("x and y must be (F, C, 2P) and (F, K, 2P) spectra of one size")
    if groups < 1 or x.shape[1] % groups or y.shape[1] % groups:
        raise ValueError(f"groups={groups} must divide the channels of x and y")
    job.channels, job.out_channels = x.shape[1], y.shape[1]
    job.group_in, job.group_out = x.shape[1] // groups, y.shape[1] // groups
    job.frequencies, job.columns = x.shape[0], x.shape[2] // 2
    job.mr, job.nr = mr, nr
    job.out_padded = ceil_div(2 * job.group_out, mr) * mr
    if (packed.shape[0] != groups or packed.shape[1] != job.frequencies
            or packed.shape[2] != job.out_padded * 2 * job.group_in):
        raise ValueError("packed weights do not match these spectra or the ISA level")
    job.panels = blocking["panels"]
    if job.panels < 1:
        raise ValueError(f"blocking must have panels >= 1; got {blocking}")
    if job.columns == 0 or job.frequencies == 0 or job.group_out == 0:
        return
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1 (the plan's threads); got {num_threads}")
    job.n_column_blocks = ceil_div(job.columns, job.panels * nr)
    zeros_array = np.zeros(mr, np.asarray(y).dtype)
    cdef const floating[::1] zeros = zeros_array
    job.x, job.packed, job.y, job.zeros = &x[0, 0, 0], &packed[0, 0, 0], &y[0, 0, 0], &zeros[0]
    cdef size_t elem = sizeof(floating)
    cdef size_t scratch = (aligned(job.panels * 2 * job.group_in * nr * elem)
                           + job.out_padded * job.panels * nr * elem)
    run_work_items(_products_item[floating], &job,
                   groups * job.frequencies * job.n_column_blocks, num_threads, scratch)



def run_chunks(callback, Py_ssize_t n_chunks, int num_threads):
    """``callback(i)`` for i in range(n_chunks) on up to ``num_threads`` of
    the package's OpenMP threads, each taking the next chunk as it finishes
    one (the FFT path's chunks: the FFT libraries and the products release
    the GIL while they compute, the glue between them holds it).

    The first exception a callback raises stops the chunks not yet started
    and is raised here once the others have finished.
    """
    cdef Py_ssize_t i
    cdef int threads = max(1, min(num_threads, n_chunks))
    errors = []
    if threads == 1:
        for i in range(n_chunks):
            callback(i)
        return
    with nogil, parallel(num_threads=threads):
        for i in prange(n_chunks, schedule='dynamic'):
            with gil:
                if not errors:
                    try:
                        callback(i)
                    except BaseException as error:
                        errors.append(error)
    if errors:
        raise errors[0]
