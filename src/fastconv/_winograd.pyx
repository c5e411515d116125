# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Winograd F(m x m, r x r) convolution for stride 1, dilation 1 (private).

The driver executes a plan (``fastconv._plan.winograd`` decides the
blocking and the threads; nothing is decided here). In the tiles mode a
work item is (group, block of NR-tile panels, block of output channels):

1. for each chunk of ``CB`` input channels: the input transform
   ``V[xi][c][tile] = (B^T d B)[xi]`` of the block's tiles
   (``_kernels/winograd_transforms.hpp``),
2. the ``alpha^2`` GEMMs ``M[xi] += U[xi] (K_block x CB) . V[xi] (CB x NR)``
   on the register-blocked GEMM tile, with ``M`` kept in L2,
3. the output transform ``A^T M A`` (+ bias) scattered into the output with
   the last row/column of tiles clipped.

``U`` (the transformed weights, packed as the GEMM tile's A panels) comes
from :func:`pack_weights` and can be computed once for many calls. Scratch
per thread is ``alpha^2 * (CB + K_block) * NR`` elements plus a few tiles;
nothing proportional to the image is allocated, unlike a transform of the
whole input.

In the cooperative mode (few tile blocks, or blocks that split unevenly
among the threads) each (group, tile block) is a round of
``_parallel.run_rounds``: all threads transform its input into one shared
``V`` of all input channels, then share out its output-channel blocks
(``_round_item``), so no input transform is repeated.
"""

from cython.parallel cimport prange
from libc.string cimport memset

from ._openmp_helpers cimport effective_num_threads
from ._parallel cimport (SLOT_SHARED, THREAD_STATE_BYTES, aligned, ceil_div, run_rounds,
                         run_work_items)
from ._cpu cimport kernel_table
from ._kernels cimport *

import numpy as np


# Kernels of the level in use: fastconv._cpu's one table.
fc_use_kernel_table(kernel_table())


# The output tile sizes m compiled in per filter size r (the order of
# FC_WINO_ALL_M in _kernels/cpu_kernels.hpp).
from ._checks import WINOGRAD_TILE_SIZES as TILE_SIZES


def _check_sizes(int m, int r):
    if m not in TILE_SIZES.get(r, ()):
        raise ValueError(f"tile size and filter size must be one of "
                         f"{[(t, k) for k in TILE_SIZES for t in TILE_SIZES[k]]}; "
                         f"got {(m, r)}")


def scratch_peak_bytes(bint reset=False):
    """The most per-thread scratch one thread of this module's kernels asked
    to hold at once since the last reset, in bytes (for tests of the scratch
    budgets). ``reset=True`` returns it and starts again from zero."""
    return fc_scratch_peak_bytes(reset)


def transform_matrices(int m, int r):
    """``(B^T, G, A^T)`` of F(m x m, r x r) as float64 arrays (for tests)."""
    _check_sizes(m, r)
    alpha = m + r - 1
    bt = np.empty((alpha, alpha))
    g = np.empty((alpha, r))
    at = np.empty((m, alpha))
    cdef double[:, ::1] view
    for which, array in enumerate((bt, g, at)):
        view = array
        fc_wino_matrix(m, r, which, &view[0, 0])
    return bt, g, at


ctypedef fused floating:
    float
    double


def pack_weights(const floating[:, :, :, ::1] weight, Py_ssize_t groups, int m,
                 int num_threads):
    """Transformed weights ``U = G g G^T`` packed for the GEMMs.

    Parameters
    ----------
    weight : ndarray of shape (K, C // groups, r, r)
        ``r`` is 3, 5 or 7.
    groups : int
    m : int
        Output tile size: 2, 4 or 6 for r = 3, 2 or 4 for r = 5, 2 for r = 7.
    num_threads : int
        <= 0 means the OpenMP default.

    Returns
    -------
    packed : ndarray of shape (groups, alpha**2, K_pad * C // groups)
        Per group and transform point ``xi``, panels ``[K_pad / MR][C/groups][MR]``
        with ``K_pad`` = K/groups rounded up to MR (zero rows past K/groups).
        Computed in float64, rounded once to the weight dtype.
    """
    cdef int r = weight.shape[2]
    if weight.shape[3] != r:
        raise ValueError(f"weight must hold square filters; got {weight.shape[2]} x "
                         f"{weight.shape[3]}")
    _check_sizes(m, r)
    cdef int mr = 0, nr = 0
    fc_gemm_tile_shape(<const floating *>NULL, &mr, &nr)
    cdef Py_ssize_t out_channels = weight.shape[0], group_in = weight.shape[1]
    cdef Py_ssize_t group_out = out_channels // groups
    cdef Py_ssize_t out_padded = ceil_div(group_out, mr) * mr
    cdef Py_ssize_t alpha2 = (m + r - 1) * (m + r - 1)
    packed = np.empty((groups, alpha2, out_padded * group_in), np.asarray(weight).dtype)
    if packed.size == 0:
        return packed
    cdef floating[:, :, ::1] u = packed
    cdef Py_ssize_t panels_per_group = out_padded // mr
    cdef Py_ssize_t item, g, panel
    cdef int threads = effective_num_threads(num_threads, groups * panels_per_group)
    with nogil:
        for item in prange(groups * panels_per_group, schedule='static',
                           num_threads=threads):
            g = item // panels_per_group
            panel = item - g * panels_per_group
            fc_wino_pack_panel_m(m, r, &weight[g * group_out, 0, 0, 0], group_out, group_in,
                                 mr, panel, &u[g, 0, 0], out_padded * group_in)
    return packed


cdef struct Blocking:
    # A plan's blocking (fastconv._plan.winograd.DRIVER_KEYS), converted by
    # Cython from the plan's mapping.
    Py_ssize_t nr, n_tile_blocks, panels, cb, n_channel_blocks, kpanels_per_block
    bint cooperative


cdef struct Job:
    # What every thread reads: the geometry, the plan's blocking and what
    # follows from it, the scratch layout, the arrays.
    fc_geometry conv                 # shapes, padding, relu (geometry.hpp)
    int m, r, alpha, mr, nr, alpha2  # alpha = m + r - 1
    Py_ssize_t out_padded
    Py_ssize_t tiles_w, tiles_per_image, n_tiles   # n_tiles: whole batch
    Py_ssize_t panels                # NR-tile panels per tile block (at most)
    Py_ssize_t n_tile_panels         # over the whole batch
    Py_ssize_t n_tile_blocks
    Py_ssize_t kpanels_per_block, n_channel_blocks
    Py_ssize_t cb                    # input channels per transformed chunk
    bint cooperative                 # all threads on one tile block at a time
    size_t v_bytes, m_bytes, tile_bytes   # V, M and the tile scratch
    # The arrays (typed by the work functions, which are fused over the
    # dtype); v is the shared V of the cooperative mode.
    const void *x
    const void *u
    const void *bias
    const void *zeros
    void *out
    void *v


cdef inline Py_ssize_t _block_tile0(const Job *job, Py_ssize_t tile_block) noexcept nogil:
    """First tile of block ``tile_block``, which holds tile panels
    [b*P/B, (b+1)*P/B): block sizes differ by at most one panel, so equal
    item counts are equal work."""
    return tile_block * job.n_tile_panels // job.n_tile_blocks * job.nr


cdef inline Py_ssize_t _block_tiles(const Job *job, Py_ssize_t tile_block) noexcept nogil:
    """Number of tiles of block ``tile_block``."""
    cdef Py_ssize_t panel1 = (tile_block + 1) * job.n_tile_panels // job.n_tile_blocks
    return min(panel1 * job.nr, job.n_tiles) - _block_tile0(job, tile_block)


cdef void _transform_panel(const Job *job, const floating *x, Py_ssize_t g,
                           Py_ssize_t tile0, Py_ssize_t n_tiles, Py_ssize_t c, Py_ssize_t p,
                           floating *v_dst, Py_ssize_t v_xi_stride,
                           floating *scratch) noexcept nogil:
    """Input transform of channel ``c`` of group ``g`` for tile panel ``p`` of
    the block (tiles tile0 .. tile0 + n_tiles, numbered over the batch):
    gathered into ``scratch``, transformed into ``v_dst[xi * v_xi_stride]``."""
    cdef Py_ssize_t nr = job.nr, plane = job.conv.height * job.conv.width
    cdef Py_ssize_t t = tile0 + p * nr
    cdef Py_ssize_t t_end = min(t + nr, tile0 + n_tiles)
    cdef Py_ssize_t lane = 0, n, local, run
    if t_end - t < nr:
        memset(scratch, 0, <size_t>(job.alpha2 * nr) * sizeof(floating))
    while t < t_end:
        n = t // job.tiles_per_image
        local = t - n * job.tiles_per_image
        run = min(t_end - t, job.tiles_per_image - local)
        fc_wino_gather_m(job.m, job.r, &job.conv,
                         x + (n * job.conv.channels + g * job.conv.group_in + c) * plane,
                         job.tiles_w, local, run, lane, nr, scratch)
        t = t + run
        lane = lane + run
    fc_wino_input(job.m, job.r, nr, scratch, v_dst, v_xi_stride)


cdef void _gemm_block(const Job *job, const floating *u_group, Py_ssize_t c0,
                      Py_ssize_t cb, const floating *v, Py_ssize_t v_xi_stride,
                      Py_ssize_t n_panels, Py_ssize_t kp_lo, Py_ssize_t kp_hi,
                      floating *mbuf, Py_ssize_t m_xi_stride,
                      const floating *zeros) noexcept nogil:
    """The alpha^2 GEMMs M[xi] (+)= U[xi] . V[xi] of input channels c0 .. c0
    + cb, for output-channel panels kp_lo .. kp_hi and the block's tile
    panels. M is [xi][k panel][tile panel][MR][NR], V [xi][tile panel][cb][NR]."""
    cdef Py_ssize_t nr = job.nr, mr = job.mr, panels = job.panels
    cdef Py_ssize_t u_xi_stride = job.out_padded * job.conv.group_in
    cdef Py_ssize_t xi, p, kp
    for xi in range(job.alpha2):
        for p in range(n_panels):
            # The tile panel stays in L1 while the weight panels of this
            # transform point stream from L2.
            for kp in range(kp_lo, kp_hi):
                fc_gemm_tile(cb, u_group + xi * u_xi_stride + (kp * job.conv.group_in + c0) * mr,
                             v + xi * v_xi_stride + p * cb * nr,
                             mbuf + xi * m_xi_stride + ((kp - kp_lo) * panels + p) * mr * nr,
                             nr, c0 > 0, zeros)


cdef bint _output_block(const Job *job, Py_ssize_t g, Py_ssize_t tile0,
                        Py_ssize_t n_tiles, Py_ssize_t kp_lo, Py_ssize_t kp_hi,
                        const floating *mbuf, Py_ssize_t m_xi_stride,
                        const floating *bias, floating *out,
                        floating *scratch) noexcept nogil:
    """Output transform A^T M A (+ bias, ReLU) of the block's output channels,
    scattered into ``out`` with the last row/column of tiles clipped. Returns
    whether any result (clipped ones included) is NaN or infinite."""
    cdef Py_ssize_t nr = job.nr, mr = job.mr, panels = job.panels
    cdef Py_ssize_t n_panels = (n_tiles + nr - 1) // nr
    cdef Py_ssize_t out_plane = job.conv.out_h * job.conv.out_w
    cdef floating *y = scratch + job.alpha * job.m * nr
    cdef Py_ssize_t kp, k, k_global, p, t, t_end, lane, n, local, run
    cdef bint nonfinite = False
    for kp in range(kp_lo, kp_hi):
        for k in range(mr):
            k_global = kp * mr + k
            if k_global >= job.conv.group_out:
                break
            for p in range(n_panels):
                if fc_wino_output(job.m, job.r, mbuf + (((kp - kp_lo) * panels + p) * mr + k) * nr,
                                  m_xi_stride, bias[g * job.conv.group_out + k_global],
                                  nr, scratch, job.conv.relu):
                    nonfinite = True
                t = tile0 + p * nr
                t_end = min(t + nr, tile0 + n_tiles)
                lane = 0
                while t < t_end:
                    n = t // job.tiles_per_image
                    local = t - n * job.tiles_per_image
                    run = min(t_end - t, job.tiles_per_image - local)
                    fc_wino_scatter_m(job.m, job.r, &job.conv, <const floating *>y,
                                      out + (n * job.conv.out_channels + g * job.conv.group_out
                                             + k_global) * out_plane,
                                      job.tiles_w, local, run, lane, nr)
                    t = t + run
                    lane = lane + run
    return nonfinite




cdef inline Py_ssize_t _block_kp_end(const Job *job, Py_ssize_t channel_block) noexcept nogil:
    """End of the output-channel panels of ``channel_block``; they start at
    channel_block * kpanels_per_block."""
    return min((channel_block + 1) * job.kpanels_per_block, job.out_padded // job.mr)


cdef inline char *_thread_part(const Job *job, char *scratch, int part) noexcept nogil:
    """Part ``part`` of a thread's scratch after its THREAD_STATE_BYTES: 0 V
    (the tiles mode's own), 1 M, 2 the tile scratch, each 64-byte aligned
    (_plan/winograd.py counts the same)."""
    cdef char *at = scratch + THREAD_STATE_BYTES
    if part > 0 and not job.cooperative:
        at += aligned(job.v_bytes)
    if part > 1:
        at += aligned(job.m_bytes)
    return at


cdef bint _tiles_item(const void *job_ptr, Py_ssize_t item, char *scratch,
                      const floating *dtype) noexcept nogil:
    """Work item ``item`` of the tiles mode (run_work_items): one (group,
    block of tiles, block of output channels), its input transformed chunk
    by chunk of input channels into V, the GEMMs accumulated in M, then the
    output transform. Returns whether a result is NaN or infinite."""
    cdef const Job *job = <const Job *>job_ptr
    cdef floating *v = <floating *>_thread_part(job, scratch, 0)
    cdef floating *mbuf = <floating *>_thread_part(job, scratch, 1)
    cdef floating *tile = <floating *>_thread_part(job, scratch, 2)
    cdef Py_ssize_t nr = job.nr, mr = job.mr
    cdef Py_ssize_t channel_block = item % job.n_channel_blocks
    cdef Py_ssize_t rest = item // job.n_channel_blocks
    cdef Py_ssize_t tile_block = rest % job.n_tile_blocks
    cdef Py_ssize_t g = rest // job.n_tile_blocks
    cdef Py_ssize_t tile0 = _block_tile0(job, tile_block)
    cdef Py_ssize_t n_tiles = _block_tiles(job, tile_block)
    cdef Py_ssize_t kp_lo = channel_block * job.kpanels_per_block
    cdef Py_ssize_t kp_hi = _block_kp_end(job, channel_block)
    if kp_lo >= kp_hi:
        return False
    cdef Py_ssize_t n_panels = ceil_div(n_tiles, nr)
    cdef const floating *u_group = (<const floating *>job.u
                                    + g * job.alpha2 * job.out_padded * job.conv.group_in)
    cdef Py_ssize_t m_xi_stride = (kp_hi - kp_lo) * job.panels * mr * nr
    cdef Py_ssize_t c0 = 0, cb, c, p, v_xi_stride
    while c0 < job.conv.group_in:
        cb = min(job.cb, job.conv.group_in - c0)
        v_xi_stride = job.panels * cb * nr
        for c in range(cb):
            for p in range(n_panels):
                _transform_panel(job, <const floating *>job.x, g, tile0, n_tiles, c0 + c, p,
                                 v + (p * cb + c) * nr, v_xi_stride, tile)
        _gemm_block(job, u_group, c0, cb, v, v_xi_stride, n_panels, kp_lo, kp_hi,
                    mbuf, m_xi_stride, <const floating *>job.zeros)
        c0 = c0 + cb
    return _output_block(job, g, tile0, n_tiles, kp_lo, kp_hi, mbuf, m_xi_stride,
                         <const floating *>job.bias, <floating *>job.out, tile)


cdef Py_ssize_t _round_items(const void *job_ptr, Py_ssize_t round_index,
                             int phase) noexcept nogil:
    """Items of a cooperative round (one group's tile block): phase 0 its
    (input channel, tile panel) pairs, phase 1 its output-channel blocks."""
    cdef const Job *job = <const Job *>job_ptr
    if phase == 1:
        return job.n_channel_blocks
    return job.conv.group_in * ceil_div(_block_tiles(job, round_index % job.n_tile_blocks),
                                         job.nr)


cdef bint _round_item(const void *job_ptr, Py_ssize_t round_index, int phase,
                      Py_ssize_t item, char *scratch, const floating *dtype) noexcept nogil:
    """Item ``item`` of phase ``phase`` of a cooperative round (run_rounds):
    phase 0 transforms one input channel of one tile panel into the shared
    V (all input channels: no transform is repeated), phase 1 computes the
    GEMMs and output transform of one block of output channels from it.
    Returns whether a result is NaN or infinite."""
    cdef const Job *job = <const Job *>job_ptr
    cdef floating *v = <floating *>job.v
    cdef floating *mbuf = <floating *>_thread_part(job, scratch, 1)
    cdef floating *tile = <floating *>_thread_part(job, scratch, 2)
    cdef Py_ssize_t nr = job.nr, cb = job.conv.group_in
    cdef Py_ssize_t g = round_index // job.n_tile_blocks
    cdef Py_ssize_t tile0 = _block_tile0(job, round_index - g * job.n_tile_blocks)
    cdef Py_ssize_t n_tiles = _block_tiles(job, round_index - g * job.n_tile_blocks)
    cdef Py_ssize_t n_panels = ceil_div(n_tiles, nr)
    cdef Py_ssize_t v_xi_stride = job.panels * cb * nr
    cdef Py_ssize_t c, p, kp_lo, kp_hi, m_xi_stride
    if phase == 0:
        c = item // n_panels
        p = item - c * n_panels
        _transform_panel(job, <const floating *>job.x, g, tile0, n_tiles, c, p,
                         v + (p * cb + c) * nr, v_xi_stride, tile)
        return False
    kp_lo = item * job.kpanels_per_block
    kp_hi = _block_kp_end(job, item)
    m_xi_stride = (kp_hi - kp_lo) * job.panels * job.mr * nr
    _gemm_block(job, <const floating *>job.u + g * job.alpha2 * job.out_padded * cb, 0, cb,
                v, v_xi_stride, n_panels, kp_lo, kp_hi, mbuf, m_xi_stride,
                <const floating *>job.zeros)
    return _output_block(job, g, tile0, n_tiles, kp_lo, kp_hi, mbuf, m_xi_stride,
                         <const floating *>job.bias, <floating *>job.out, tile)


cdef int _take_blocking(Job *job, Blocking b, Py_ssize_t batch, int gemm_nr,
                        size_t elem) except -1:
    """Put the plan's blocking ``b`` and what follows from it into ``job``.
    A blocking that does not fit the geometry is a ValueError: the blocks
    and buffers are sized from it, so it must not write out of bounds."""
    cdef Py_ssize_t n_kpanels = job.out_padded // job.mr
    job.tiles_w = ceil_div(job.conv.out_w, job.m)
    job.tiles_per_image = ceil_div(job.conv.out_h, job.m) * job.tiles_w
    job.n_tiles = batch * job.tiles_per_image
    if b.nr != gemm_nr and 2 * b.nr != gemm_nr:
        raise ValueError(f"blocking: nr={b.nr} is neither the GEMM tile's width "
                         f"{gemm_nr} nor its half")
    job.n_tile_panels = ceil_div(job.n_tiles, b.nr)
    if not 1 <= b.n_tile_blocks <= job.n_tile_panels or (
            b.panels != ceil_div(job.n_tile_panels, b.n_tile_blocks)):
        raise ValueError(f"blocking: {b.n_tile_blocks} tile blocks of {b.panels} panels "
                         f"do not hold {job.n_tile_panels} panels of {b.nr} tiles")
    if not 1 <= b.kpanels_per_block <= n_kpanels or (
            b.n_channel_blocks != ceil_div(n_kpanels, b.kpanels_per_block)):
        raise ValueError(f"blocking: {b.n_channel_blocks} blocks of {b.kpanels_per_block} "
                         f"output-channel panels do not hold {n_kpanels} panels")
    # The cooperative mode's shared V holds all input channels.
    if not 1 <= b.cb <= job.conv.group_in or (b.cooperative and b.cb != job.conv.group_in):
        raise ValueError(f"blocking: chunks of {b.cb} input channels do not fit "
                         f"{job.conv.group_in} per group")
    job.nr, job.n_tile_blocks, job.panels, job.cb = b.nr, b.n_tile_blocks, b.panels, b.cb
    job.n_channel_blocks, job.kpanels_per_block = b.n_channel_blocks, b.kpanels_per_block
    job.cooperative = b.cooperative
    job.v_bytes = <size_t>(job.alpha2 * job.cb * job.panels * job.nr) * elem
    job.m_bytes = <size_t>(job.alpha2 * job.kpanels_per_block * job.mr * job.panels
                           * job.nr) * elem
    # The gathered tiles (alpha^2), then the output transform's alpha x m, m x m.
    job.tile_bytes = <size_t>((job.alpha * job.alpha + job.alpha * job.m
                               + job.m * job.m) * job.nr) * elem
    return 0


def conv2d_winograd(const floating[:, :, :, ::1] x, const floating[:, :, ::1] packed,
                    const floating[::1] bias, floating[:, :, :, ::1] out,
                    int m, int r, Py_ssize_t pad_top, Py_ssize_t pad_left,
                    Py_ssize_t groups, int num_threads, blocking, bint relu=False):
    """Winograd convolution of validated, C-contiguous arrays, as planned.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    packed : ndarray of shape (groups, (m + r - 1)**2, K_pad * C // groups)
        From :func:`pack_weights` with the same ``m``, ``r`` and dtype.
    bias : ndarray of shape (K,)
    out : ndarray of shape (N, K, H_out, W_out)
        ``H_out = H + pad_top + pad_bottom - r + 1``; written in full.
    m, r : int
        Output tile size and filter size, as for :func:`pack_weights`.
    pad_top, pad_left : int
        Padding before the first row/column (the bottom/right padding is
        implied by the output size).
    groups : int
    num_threads : int
        The plan's ``threads``, run as given (>= 1).
    blocking : mapping
        The plan's ``blocking`` (``fastconv._plan.winograd.DRIVER_KEYS``);
        ignored when there is nothing to compute.
    relu : bool, default=False
        Apply ``max(y, 0)`` in the output transform.

    Returns
    -------
    finite : bool
        False if a result is NaN or infinite: from NaN or Inf in the data,
        or from the transforms overflowing where the direct sum would not.

    Raises
    ------
    ValueError
        If ``packed`` or ``blocking`` do not fit the geometry.
    """
    _check_sizes(m, r)
    cdef Job job
    cdef int mr = 0, nr = 0
    fc_gemm_tile_shape(<const floating *>NULL, &mr, &nr)
    job.conv = fc_geometry_of(x.shape[1], x.shape[2], x.shape[3], out.shape[1], out.shape[2],
                              out.shape[3], r, r, 1, 1, pad_top, pad_left, 1, 1, groups, relu)
    job.m, job.r, job.mr = m, r, mr
    job.alpha = m + r - 1
    job.alpha2 = job.alpha * job.alpha
    job.out_padded = ceil_div(job.conv.group_out, mr) * mr
    if (packed.shape[0] != groups or packed.shape[1] != job.alpha2
            or packed.shape[2] != job.out_padded * job.conv.group_in):
        raise ValueError("packed weights do not match this geometry, tile size or ISA level")
    if x.shape[0] == 0 or job.conv.out_channels == 0 or job.conv.out_h == 0 or job.conv.out_w == 0:
        return True
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1 (the plan's threads); got {num_threads}")
    _take_blocking(&job, dict(blocking), x.shape[0], nr, sizeof(floating))
    zeros_array = np.zeros(mr, np.asarray(bias).dtype)
    cdef const floating[::1] zeros = zeros_array
    job.x, job.u, job.bias = &x[0, 0, 0, 0], &packed[0, 0, 0], &bias[0]
    job.zeros, job.out = &zeros[0], &out[0, 0, 0, 0]
    cdef size_t thread_bytes = aligned(job.m_bytes) + aligned(job.tile_bytes)
    if not job.cooperative:
        return not run_work_items(
            _tiles_item[floating], &job, groups * job.n_tile_blocks * job.n_channel_blocks,
            num_threads, aligned(job.v_bytes) + thread_bytes)
    # The shared V is the calling thread's; M and the tile scratch each thread's.
    job.v = fc_scratch_acquire(SLOT_SHARED, job.v_bytes)
    if job.v == NULL:
        raise MemoryError("fastconv: cannot allocate the shared Winograd buffer")
    try:
        return not run_rounds(_round_items, _round_item[floating], &job,
                              groups * job.n_tile_blocks, num_threads, thread_bytes)
    finally:
        fc_scratch_release(SLOT_SHARED)


def gemm_tile_shape(dtype):
    """``(MR, NR)`` of the GEMM tile for ``dtype`` at the level in use."""
    cdef int mr = 0, nr = 0
    if np.dtype(dtype) == np.float32:
        fc_gemm_tile_shape(<const float *>NULL, &mr, &nr)
    else:
        fc_gemm_tile_shape(<const double *>NULL, &mr, &nr)
    return mr, nr
