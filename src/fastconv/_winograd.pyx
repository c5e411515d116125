# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Winograd F(m x m, 3 x 3) convolution for stride 1, dilation 1 (private).

One call runs, per work item (image, group, block of NR output tiles, block
of output channels):

1. for each chunk of ``CB`` input channels: the input transform
   ``V[xi][c][tile] = (B^T d B)[xi]`` of the block's tiles (``_kernels/winograd_transforms.hpp``),
2. the ``alpha^2`` GEMMs ``M[xi] += U[xi] (K_block x CB) . V[xi] (CB x NR)``
   on the register-blocked micro-kernel, with ``M`` kept in L2,
3. the output transform ``A^T M A`` (+ bias) scattered into the output with
   the last row/column of tiles clipped.

``U`` (the transformed weights, packed as the micro-kernel's A panels) comes
from :func:`pack_weights` and can be computed once for many calls.  Scratch
per thread is ``alpha^2 * (CB + K_block) * NR`` elements plus a few tiles;
nothing proportional to the image is allocated, unlike a transform of the
whole input.

With fewer blocks of tiles than threads (small images), splitting the output
channels among the threads would repeat each block's input transform once
per channel block; instead all threads transform one block's input into a
shared ``V`` and then share out its output channels (``_conv2d_cooperative``).
"""

from cython.parallel cimport parallel, prange
from libc.string cimport memset

from ._interrupt cimport (fc_interrupt, fc_interrupted, raise_if_interrupted,
                          start_interrupt_checks)
from ._openmp_helpers cimport effective_num_threads
from ._cpu cimport kernel_table
from ._kernels cimport *

from . import _cpu

import numpy as np


# Kernels of the level in use: fastconv._cpu's one table.
fc_use_kernel_table(kernel_table())


TILE_SIZES = (2, 4, 6)

# Working-set budgets (bytes) of one thread, sized for a 1-2 MiB L2: the
# transformed input chunk V and the GEMM result M of the channel block.
cdef Py_ssize_t _V_BYTES = 8 << 20
cdef Py_ssize_t _M_BYTES = 8 << 20
# The reduction chunk never shrinks below this many channels (the micro-kernel
# reloads its accumulators once per chunk).
cdef Py_ssize_t _CB_MIN = 32
# NR-tile panels per work item: each weight panel loaded is used this often.
cdef Py_ssize_t _PANELS = 4
# Panels of NR / 2 tiles (the narrow GEMM tile) are used when they hold the
# batch's tiles in at most this fraction of the lanes that NR-wide panels
# need: the narrow tile broadcasts each weight for half as many FMAs.
cdef double _NARROW_LANES = 0.75
# Work items whose static split gives one thread this much more than the
# mean share make way for the cooperative mode.
cdef double _IMBALANCE = 1.05
# The cooperative mode keeps each thread's M within an L2 (fewer tile panels
# per round) unless the transformed weights are too big to stay in the last
# level cache: each round streams them again. At 2 threads: (8,256,256,14),
# (8,128,128,28) and (1,256,256,56) 6-13% faster with 1 MiB than with 8 MiB,
# (1,512,512,28) (37.7 MB of U) 21% slower.
cdef Py_ssize_t _COOP_M_BYTES = 1 << 20
cdef Py_ssize_t _U_CACHED_BYTES = 16 << 20


def _set_blocking(Py_ssize_t v_bytes, Py_ssize_t m_bytes, Py_ssize_t cb_min,
                  Py_ssize_t panels, double narrow_lanes=0.75):
    """Change the blocking (for tuning experiments); returns the old values."""
    global _V_BYTES, _M_BYTES, _CB_MIN, _PANELS, _NARROW_LANES
    old = (_V_BYTES, _M_BYTES, _CB_MIN, _PANELS, _NARROW_LANES)
    if min(v_bytes, m_bytes, cb_min, panels) < 1 or not 0 <= narrow_lanes <= 1:
        raise ValueError("blocking parameters must be >= 1 (narrow_lanes in [0, 1])")
    _V_BYTES, _M_BYTES, _CB_MIN, _PANELS = v_bytes, m_bytes, cb_min, panels
    _NARROW_LANES = narrow_lanes
    return old


def scratch_peak_bytes(bint reset=False):
    """The most per-thread scratch one thread of this module's kernels asked
    to hold at once since the last reset, in bytes (for tests of the scratch
    budgets). ``reset=True`` returns it and starts again from zero."""
    return fc_scratch_peak_bytes(reset)


def select_isa(int level):
    """Use the kernels of level ``ISA_LEVELS[level]`` in every extension (the
    one ISA state, :func:`fastconv._cpu.select_isa`); returns the level in
    use, as an index."""
    return _cpu.ISA_LEVELS.index(_cpu.select_isa(_cpu.ISA_LEVELS[level]))


def transform_matrices(int m):
    """``(B^T, G, A^T)`` of F(m x m, 3 x 3) as float64 arrays (for tests)."""
    if m not in TILE_SIZES:
        raise ValueError(f"tile size must be one of {TILE_SIZES}; got {m}")
    alpha = m + 2
    bt = np.empty((alpha, alpha))
    g = np.empty((alpha, 3))
    at = np.empty((m, alpha))
    cdef double[:, ::1] view
    for which, array in enumerate((bt, g, at)):
        view = array
        fc_wino_matrix(m, which, &view[0, 0])
    return bt, g, at


ctypedef fused floating:
    float
    double


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b


def pack_weights(const floating[:, :, :, ::1] weight, Py_ssize_t groups, int m,
                 int num_threads):
    """Transformed weights ``U = G g G^T`` packed for the GEMMs.

    Parameters
    ----------
    weight : ndarray of shape (K, C // groups, 3, 3)
    groups : int
    m : {2, 4, 6}
        Output tile size.
    num_threads : int
        <= 0 means the OpenMP default.

    Returns
    -------
    packed : ndarray of shape (groups, alpha**2, K_pad * C // groups)
        Per group and transform point ``xi``, panels ``[K_pad / MR][C/groups][MR]``
        with ``K_pad`` = K/groups rounded up to MR (zero rows past K/groups).
        Computed in float64, rounded once to the weight dtype.
    """
    if m not in TILE_SIZES:
        raise ValueError(f"tile size must be one of {TILE_SIZES}; got {m}")
    cdef int mr = 0, nr = 0
    fc_gemm_tile_shape(<const floating *>NULL, &mr, &nr)
    cdef Py_ssize_t out_channels = weight.shape[0], group_in = weight.shape[1]
    cdef Py_ssize_t group_out = out_channels // groups
    cdef Py_ssize_t out_padded = _ceil_div(group_out, mr) * mr
    cdef Py_ssize_t alpha2 = (m + 2) * (m + 2)
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
            fc_wino_pack_panel_m(m, &weight[g * group_out, 0, 0, 0], group_out, group_in,
                                 mr, panel, &u[g, 0, 0], out_padded * group_in)
    return packed


cdef struct Plan:
    fc_geometry conv                 # shapes, padding, relu (geometry.hpp)
    int m, mr, nr, alpha2
    Py_ssize_t out_padded
    Py_ssize_t tiles_w, tiles_per_image, n_tiles   # n_tiles: whole batch
    Py_ssize_t panels                # NR-tile panels per work item (at most)
    Py_ssize_t n_tile_panels         # over the whole batch
    Py_ssize_t n_tile_blocks
    Py_ssize_t kpanels_per_block, n_channel_blocks
    Py_ssize_t cb                    # input channels per transformed chunk
    bint cooperative                 # all threads on one tile block at a time


# Values, not out-parameters: Cython decides which variables of a parallel
# section are thread-private from plain assignments.
cdef inline Py_ssize_t _block_tile0(const Plan *plan, Py_ssize_t tile_block) noexcept nogil:
    """First tile of block ``tile_block``, which holds tile panels
    [b*P/B, (b+1)*P/B): block sizes differ by at most one panel, so equal
    item counts are equal work."""
    return tile_block * plan.n_tile_panels // plan.n_tile_blocks * plan.nr


cdef inline Py_ssize_t _block_tiles(const Plan *plan, Py_ssize_t tile_block) noexcept nogil:
    """Number of tiles of block ``tile_block``."""
    cdef Py_ssize_t panel1 = (tile_block + 1) * plan.n_tile_panels // plan.n_tile_blocks
    return min(panel1 * plan.nr, plan.n_tiles) - _block_tile0(plan, tile_block)


cdef void _transform_panel(const Plan *plan, const floating *x, Py_ssize_t g,
                           Py_ssize_t tile0, Py_ssize_t n_tiles, Py_ssize_t c, Py_ssize_t p,
                           floating *v_dst, Py_ssize_t v_xi_stride,
                           floating *scratch) noexcept nogil:
    """Input transform of channel ``c`` of group ``g`` for tile panel ``p`` of
    the block (tiles tile0 .. tile0 + n_tiles, numbered over the batch):
    gathered into ``scratch``, transformed into ``v_dst[xi * v_xi_stride]``."""
    cdef Py_ssize_t nr = plan.nr, plane = plan.conv.height * plan.conv.width
    cdef Py_ssize_t t = tile0 + p * nr
    cdef Py_ssize_t t_end = min(t + nr, tile0 + n_tiles)
    cdef Py_ssize_t lane = 0, n, local, run
    if t_end - t < nr:
        memset(scratch, 0, <size_t>(plan.alpha2 * nr) * sizeof(floating))
    while t < t_end:
        n = t // plan.tiles_per_image
        local = t - n * plan.tiles_per_image
        run = min(t_end - t, plan.tiles_per_image - local)
        fc_wino_gather_m(plan.m, &plan.conv,
                         x + (n * plan.conv.channels + g * plan.conv.group_in + c) * plane,
                         plan.tiles_w, local, run, lane, nr, scratch)
        t = t + run
        lane = lane + run
    fc_wino_input(plan.m, nr, scratch, v_dst, v_xi_stride)


cdef void _gemm_block(const Plan *plan, const floating *u_group, Py_ssize_t c0,
                      Py_ssize_t cb, const floating *v, Py_ssize_t v_xi_stride,
                      Py_ssize_t n_panels, Py_ssize_t kp_lo, Py_ssize_t kp_hi,
                      floating *mbuf, Py_ssize_t m_xi_stride,
                      const floating *zeros) noexcept nogil:
    """The alpha^2 GEMMs M[xi] (+)= U[xi] . V[xi] of input channels c0 .. c0
    + cb, for output-channel panels kp_lo .. kp_hi and the block's tile
    panels. M is [xi][k panel][tile panel][MR][NR], V [xi][tile panel][cb][NR]."""
    cdef Py_ssize_t nr = plan.nr, mr = plan.mr, panels = plan.panels
    cdef Py_ssize_t u_xi_stride = plan.out_padded * plan.conv.group_in
    cdef Py_ssize_t xi, p, kp
    for xi in range(plan.alpha2):
        for p in range(n_panels):
            # The tile panel stays in L1 while the weight panels of this
            # transform point stream from L2.
            for kp in range(kp_lo, kp_hi):
                fc_gemm_tile(cb, u_group + xi * u_xi_stride + (kp * plan.conv.group_in + c0) * mr,
                             v + xi * v_xi_stride + p * cb * nr,
                             mbuf + xi * m_xi_stride + ((kp - kp_lo) * panels + p) * mr * nr,
                             nr, c0 > 0, zeros)


cdef bint _output_block(const Plan *plan, Py_ssize_t g, Py_ssize_t tile0,
                        Py_ssize_t n_tiles, Py_ssize_t kp_lo, Py_ssize_t kp_hi,
                        const floating *mbuf, Py_ssize_t m_xi_stride,
                        const floating *bias, floating *out,
                        floating *scratch) noexcept nogil:
    """Output transform A^T M A (+ bias, ReLU) of the block's output channels,
    scattered into ``out`` with the last row/column of tiles clipped. Returns
    whether any result (clipped ones included) is NaN or infinite."""
    cdef Py_ssize_t nr = plan.nr, mr = plan.mr, panels = plan.panels
    cdef Py_ssize_t n_panels = (n_tiles + nr - 1) // nr
    cdef Py_ssize_t out_plane = plan.conv.out_h * plan.conv.out_w
    cdef floating *y = scratch + (plan.m + 2) * plan.m * nr
    cdef Py_ssize_t kp, k, k_global, p, t, t_end, lane, n, local, run
    cdef bint nonfinite = False
    for kp in range(kp_lo, kp_hi):
        for k in range(mr):
            k_global = kp * mr + k
            if k_global >= plan.conv.group_out:
                break
            for p in range(n_panels):
                if fc_wino_output(plan.m, mbuf + (((kp - kp_lo) * panels + p) * mr + k) * nr,
                                  m_xi_stride, bias[g * plan.conv.group_out + k_global],
                                  nr, scratch, plan.conv.relu):
                    nonfinite = True
                t = tile0 + p * nr
                t_end = min(t + nr, tile0 + n_tiles)
                lane = 0
                while t < t_end:
                    n = t // plan.tiles_per_image
                    local = t - n * plan.tiles_per_image
                    run = min(t_end - t, plan.tiles_per_image - local)
                    fc_wino_scatter_m(plan.m, &plan.conv, <const floating *>y,
                                      out + (n * plan.conv.out_channels + g * plan.conv.group_out
                                             + k_global) * out_plane,
                                      plan.tiles_w, local, run, lane, nr)
                    t = t + run
                    lane = lane + run
    return nonfinite


cdef inline Py_ssize_t _block_kp_end(const Plan *plan, Py_ssize_t channel_block) noexcept nogil:
    """End of the output-channel panels of ``channel_block``; they start at
    channel_block * kpanels_per_block."""
    return min((channel_block + 1) * plan.kpanels_per_block, plan.out_padded // plan.mr)


cdef bint _run_work_item(const Plan *plan, Py_ssize_t item, const floating *x,
                         const floating *u, const floating *bias, floating *out,
                         floating *v, floating *mbuf, floating *scratch,
                         const floating *zeros) noexcept nogil:
    """One (group, block of tiles, block of output channels): the input
    transform of the block's tiles chunk by chunk of input channels, the
    GEMMs accumulated in M, then the output transform. Returns whether a
    result is NaN or infinite."""
    cdef Py_ssize_t nr = plan.nr, mr = plan.mr
    cdef Py_ssize_t channel_block = item % plan.n_channel_blocks
    cdef Py_ssize_t rest = item // plan.n_channel_blocks
    cdef Py_ssize_t tile_block = rest % plan.n_tile_blocks
    cdef Py_ssize_t g = rest // plan.n_tile_blocks
    cdef Py_ssize_t tile0 = _block_tile0(plan, tile_block)
    cdef Py_ssize_t n_tiles = _block_tiles(plan, tile_block)
    cdef Py_ssize_t kp_lo = channel_block * plan.kpanels_per_block
    cdef Py_ssize_t kp_hi = _block_kp_end(plan, channel_block)
    if kp_lo >= kp_hi:
        return False
    cdef Py_ssize_t n_panels = (n_tiles + nr - 1) // nr
    cdef const floating *u_group = u + g * plan.alpha2 * plan.out_padded * plan.conv.group_in
    cdef Py_ssize_t m_xi_stride = (kp_hi - kp_lo) * plan.panels * mr * nr
    cdef Py_ssize_t c0 = 0, cb, c, p, v_xi_stride
    while c0 < plan.conv.group_in:
        cb = min(plan.cb, plan.conv.group_in - c0)
        v_xi_stride = plan.panels * cb * nr
        for c in range(cb):
            for p in range(n_panels):
                _transform_panel(plan, x, g, tile0, n_tiles, c0 + c, p,
                                 v + (p * cb + c) * nr, v_xi_stride, scratch)
        _gemm_block(plan, u_group, c0, cb, v, v_xi_stride, n_panels, kp_lo, kp_hi,
                    mbuf, m_xi_stride, zeros)
        c0 = c0 + cb
    return _output_block(plan, g, tile0, n_tiles, kp_lo, kp_hi, mbuf, m_xi_stride, bias,
                         out, scratch)


cdef Py_ssize_t _plan_blocks(Plan *plan, Py_ssize_t batch, Py_ssize_t elem,
                             int num_threads) noexcept:
    """Fill in the tiling and blocking of ``plan``; returns the work items.

    Tiles are numbered over the whole batch and cut into blocks of at most
    ``_PANELS`` panels of NR tiles, in a multiple of the thread count when
    possible so static scheduling balances; the input-channel chunk and the
    output-channel block follow from the V and M budgets.
    """
    cdef Py_ssize_t m = plan.m, mr = plan.mr, groups = plan.conv.groups
    plan.tiles_w = _ceil_div(plan.conv.out_w, m)
    plan.tiles_per_image = _ceil_div(plan.conv.out_h, m) * plan.tiles_w
    plan.n_tiles = batch * plan.tiles_per_image
    # plan.nr comes in as the GEMM tile's width.
    cdef Py_ssize_t half = plan.nr // 2
    if _ceil_div(plan.n_tiles, half) * half <= (
            _NARROW_LANES * _ceil_div(plan.n_tiles, plan.nr) * plan.nr):
        plan.nr = half
    cdef Py_ssize_t nr = plan.nr
    cdef int threads = effective_num_threads(num_threads, 1 << 30)
    plan.n_tile_panels = _ceil_div(plan.n_tiles, nr)
    plan.n_tile_blocks = _ceil_div(plan.n_tile_panels, _PANELS)
    cdef Py_ssize_t n_kpanels = plan.out_padded // mr
    # Fewer tile blocks than threads: splitting the output channels would
    # make every channel block repeat the block's input transform (at 16
    # threads, (8,256,256,14) ran slower than at 4). Instead all threads
    # transform one block's input together into a shared V, then share out
    # its output channels.
    cdef Py_ssize_t v_panel_bytes = plan.alpha2 * plan.conv.group_in * nr * elem
    cdef bint can_cooperate = (threads > 1 and v_panel_bytes <= _V_BYTES and n_kpanels > 1)
    plan.cooperative = can_cooperate and groups * plan.n_tile_blocks < threads
    if plan.cooperative:
        return _plan_cooperative(plan, threads, v_panel_bytes, elem)
    # Items of equal size in a multiple of the thread count balance under
    # static scheduling: add tile blocks while they stay at least one panel.
    cdef Py_ssize_t blocks = plan.n_tile_blocks
    while (groups * blocks) % threads and blocks < plan.n_tile_panels:
        blocks += 1
    if (groups * blocks) % threads == 0:
        plan.n_tile_blocks = blocks
    plan.panels = _ceil_div(plan.n_tile_panels, plan.n_tile_blocks)

    cdef Py_ssize_t block_bytes = plan.alpha2 * plan.panels * nr * elem
    plan.cb = max(_CB_MIN, _V_BYTES // block_bytes)
    plan.cb = _ceil_div(plan.conv.group_in, _ceil_div(plan.conv.group_in, plan.cb))
    cdef Py_ssize_t max_kpanels = max(1, _M_BYTES // (block_bytes * mr))
    plan.n_channel_blocks = _ceil_div(n_kpanels, max_kpanels)
    # Still too few items for the threads, or unbalanced ones: split the
    # output channels further (each block repeats the input transform, a
    # small cost next to the GEMMs).
    cdef Py_ssize_t base = groups * plan.n_tile_blocks
    cdef Py_ssize_t want
    if base * plan.n_channel_blocks < threads or (
            base * plan.n_channel_blocks < 8 * threads
            and (base * plan.n_channel_blocks) % threads):
        want = _ceil_div(threads, base)
        while want * base % threads and want < n_kpanels:
            want += 1
        plan.n_channel_blocks = min(n_kpanels, max(plan.n_channel_blocks, want))
    plan.kpanels_per_block = _ceil_div(n_kpanels, plan.n_channel_blocks)
    plan.n_channel_blocks = _ceil_div(n_kpanels, plan.kpanels_per_block)
    # Tile blocks differ by up to a panel: 7 panels in two blocks give the
    # threads 3 and 4. Sharing out each block's output channels instead
    # balances them ((1,64,64,56) and (1,256,256,56) at 2 threads: 17-18%
    # faster).
    plan.cooperative = can_cooperate and _static_imbalance(plan, threads) > _IMBALANCE
    if plan.cooperative:
        return _plan_cooperative(plan, threads, v_panel_bytes, elem)
    return base * plan.n_channel_blocks


cdef Py_ssize_t _plan_cooperative(Plan *plan, int threads, Py_ssize_t v_panel_bytes,
                                  Py_ssize_t elem) noexcept:
    """The cooperative mode's blocking: a shared V of all input channels for
    as many tile panels as the V and M budgets allow, the output-channel
    panels shared out among the threads. Returns the rounds (tile blocks)."""
    cdef Py_ssize_t n_kpanels = plan.out_padded // plan.mr
    cdef Py_ssize_t u_bytes = plan.alpha2 * plan.out_padded * plan.conv.group_in * elem
    cdef Py_ssize_t m_bytes = _M_BYTES if u_bytes > _U_CACHED_BYTES else _COOP_M_BYTES
    plan.cb = plan.conv.group_in
    plan.n_channel_blocks = min(n_kpanels, threads)
    plan.kpanels_per_block = _ceil_div(n_kpanels, plan.n_channel_blocks)
    plan.n_channel_blocks = _ceil_div(n_kpanels, plan.kpanels_per_block)
    plan.panels = min(plan.n_tile_panels, _V_BYTES // v_panel_bytes,
                      max(1, m_bytes // (plan.alpha2 * plan.kpanels_per_block * plan.mr
                                         * plan.nr * elem)))
    plan.n_tile_blocks = _ceil_div(plan.n_tile_panels, plan.panels)
    plan.panels = _ceil_div(plan.n_tile_panels, plan.n_tile_blocks)
    return plan.conv.groups * plan.n_tile_blocks


cdef double _static_imbalance(const Plan *plan, int threads) noexcept:
    """Largest thread's share of the work items (tile panels x output-channel
    panels) under static scheduling, over the mean share."""
    cdef Py_ssize_t n_items = plan.conv.groups * plan.n_tile_blocks * plan.n_channel_blocks
    cdef Py_ssize_t n_kpanels = plan.out_padded // plan.mr
    cdef Py_ssize_t t, item, start, end, rest, tile_block, channel_block, work, largest = 0
    cdef int used = min(threads, n_items)
    for t in range(used):
        # OpenMP's static schedule: contiguous chunks, the first n % T one longer.
        start = t * (n_items // used) + min(t, n_items % used)
        end = start + n_items // used + (1 if t < n_items % used else 0)
        work = 0
        for item in range(start, end):
            channel_block = item % plan.n_channel_blocks
            rest = item // plan.n_channel_blocks
            tile_block = rest % plan.n_tile_blocks
            work += ((_block_tiles(plan, tile_block) + plan.nr - 1) // plan.nr
                     * (_block_kp_end(plan, channel_block)
                        - channel_block * plan.kpanels_per_block))
        largest = max(largest, work)
    return <double>largest * used / (plan.conv.groups * plan.n_tile_panels * n_kpanels)


cdef inline Py_ssize_t _v_elems(const Plan *plan) noexcept nogil:
    return plan.alpha2 * plan.cb * plan.panels * plan.nr


cdef inline Py_ssize_t _m_elems(const Plan *plan) noexcept nogil:
    return plan.alpha2 * plan.kpanels_per_block * plan.mr * plan.panels * plan.nr


cdef inline Py_ssize_t _scratch_elems(const Plan *plan) noexcept nogil:
    # gathered tiles (alpha^2), then the output transform's alpha x m and m x m
    cdef Py_ssize_t alpha = plan.m + 2
    return (alpha * alpha + alpha * plan.m + plan.m * plan.m) * plan.nr


cdef int _plan_threads(const Plan *plan, Py_ssize_t n_items, int num_threads) noexcept:
    """Threads a call runs (and workspace_bytes counts): at most one per work
    item, or in the cooperative mode per (channel block, tile panel) pair."""
    if plan.cooperative:
        return effective_num_threads(num_threads, plan.n_channel_blocks * plan.n_tile_panels)
    return effective_num_threads(num_threads, n_items)


cdef bint _conv2d_cooperative(const Plan *plan, Py_ssize_t n_rounds, const floating *x,
                              const floating *u, const floating *bias, floating *out,
                              const floating *zeros, int num_threads) except -1:
    """All threads on one (group, tile block) at a time: they transform its
    input into one shared V (a share of the (channel, tile panel) pairs
    each), then each computes the GEMMs and output transform of a block of
    output channels. No input transform is repeated; two barriers per block."""
    cdef Py_ssize_t nr = plan.nr, mr = plan.mr, cb = plan.conv.group_in
    cdef Py_ssize_t v_xi_stride = plan.panels * cb * nr
    cdef int threads = _plan_threads(plan, n_rounds, num_threads)
    # The shared V belongs to the calling thread (slot 3), M and the tile
    # scratch to each thread.
    cdef floating *v = <floating *>fc_scratch_acquire(3, <size_t>_v_elems(plan) * sizeof(floating))
    if v == NULL:
        raise MemoryError("fastconv: cannot allocate the shared Winograd buffer")
    cdef size_t m_elems = <size_t>_m_elems(plan)
    cdef size_t scratch_elems = <size_t>_scratch_elems(plan)
    cdef int alloc_failed = 0
    cdef int *alloc_failed_ptr = &alloc_failed
    cdef Py_ssize_t round_, g, tile0, n_tiles, n_panels, work, c, p, kb, kp_lo, kp_hi
    cdef const floating *u_group
    cdef floating *mbuf
    cdef floating *scratch
    cdef int nonfinite = 0
    cdef int *nonfinite_ptr = &nonfinite
    cdef fc_interrupt interrupt
    cdef fc_interrupt *interrupt_ptr = &interrupt
    start_interrupt_checks(interrupt_ptr)
    with nogil, parallel(num_threads=threads):
        mbuf = <floating *>fc_scratch_acquire(1, m_elems * sizeof(floating))
        scratch = <floating *>fc_scratch_acquire(2, scratch_elems * sizeof(floating))
        if mbuf == NULL or scratch == NULL:
            alloc_failed_ptr[0] = 1
        # Every thread runs every round; the two loops end in barriers.
        for round_ in range(n_rounds):
            g = round_ // plan.n_tile_blocks
            tile0 = _block_tile0(plan, round_ - g * plan.n_tile_blocks)
            n_tiles = _block_tiles(plan, round_ - g * plan.n_tile_blocks)
            n_panels = (n_tiles + nr - 1) // nr
            u_group = u + g * plan.alpha2 * plan.out_padded * plan.conv.group_in
            # Once stopped, the rounds run on empty, since every thread must
            # meet the same barriers.
            for work in prange(cb * n_panels, schedule='static'):
                if scratch != NULL and not fc_interrupted(interrupt_ptr):
                    c = work // n_panels
                    p = work - c * n_panels
                    _transform_panel(plan, x, g, tile0, n_tiles, c, p,
                                     v + (p * cb + c) * nr, v_xi_stride, scratch)
            for kb in prange(plan.n_channel_blocks, schedule='static'):
                if (mbuf != NULL and scratch != NULL and not alloc_failed_ptr[0]
                        and not fc_interrupted(interrupt_ptr)):
                    kp_lo = kb * plan.kpanels_per_block
                    kp_hi = _block_kp_end(plan, kb)
                    _gemm_block(plan, u_group, 0, cb, v, v_xi_stride, n_panels, kp_lo,
                                kp_hi, mbuf, (kp_hi - kp_lo) * plan.panels * mr * nr, zeros)
                    if _output_block(plan, g, tile0, n_tiles, kp_lo, kp_hi, mbuf,
                                     (kp_hi - kp_lo) * plan.panels * mr * nr, bias, out,
                                     scratch):
                        nonfinite_ptr[0] = 1
        fc_scratch_release(1)
        fc_scratch_release(2)
    fc_scratch_release(3)
    raise_if_interrupted(interrupt_ptr)
    if alloc_failed:
        raise MemoryError("fastconv: cannot allocate per-thread Winograd buffers")
    return nonfinite


def conv2d_winograd(const floating[:, :, :, ::1] x, const floating[:, :, ::1] packed,
                    const floating[::1] bias, floating[:, :, :, ::1] out,
                    int m, Py_ssize_t pad_top, Py_ssize_t pad_left,
                    Py_ssize_t groups, int num_threads, bint relu=False):
    """Winograd convolution of validated, C-contiguous arrays.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    packed : ndarray
        From :func:`pack_weights` with the same ``m`` and dtype.
    bias : ndarray of shape (K,)
    out : ndarray of shape (N, K, H_out, W_out)
        ``H_out = H + pad_top + pad_bottom - 2``; written in full.
    m : {2, 4, 6}
    pad_top, pad_left : int
        Padding before the first row/column (the bottom/right padding is
        implied by the output size).
    groups : int
    num_threads : int
        <= 0 means the OpenMP default at call time.
    relu : bool, default=False
        Apply ``max(y, 0)`` in the output transform.

    Returns
    -------
    finite : bool
        False if a result is NaN or infinite: from NaN or Inf in the data,
        or from the transforms overflowing where the direct sum would not.
    """
    if m not in TILE_SIZES:
        raise ValueError(f"tile size must be one of {TILE_SIZES}; got {m}")
    cdef Plan plan
    cdef int mr = 0, nr = 0
    fc_gemm_tile_shape(<const floating *>NULL, &mr, &nr)
    cdef Py_ssize_t batch = x.shape[0]
    plan.conv = fc_geometry_of(x.shape[1], x.shape[2], x.shape[3], out.shape[1], out.shape[2],
                               out.shape[3], 3, 3, 1, 1, pad_top, pad_left, 1, 1, groups, relu)
    plan.m, plan.mr, plan.nr = m, mr, nr
    plan.alpha2 = (m + 2) * (m + 2)
    plan.out_padded = _ceil_div(plan.conv.group_out, mr) * mr
    if (packed.shape[0] != groups or packed.shape[1] != plan.alpha2
            or packed.shape[2] != plan.out_padded * plan.conv.group_in):
        raise ValueError("packed weights do not match this geometry, tile size or ISA level")
    if batch == 0 or plan.conv.out_channels == 0 or plan.conv.out_h == 0 or plan.conv.out_w == 0:
        return True
    cdef Py_ssize_t n_items = _plan_blocks(&plan, batch, sizeof(floating), num_threads)
    zeros_array = np.zeros(mr, np.asarray(bias).dtype)
    cdef const floating[::1] zeros = zeros_array
    if plan.cooperative:
        return not _conv2d_cooperative(&plan, n_items, &x[0, 0, 0, 0], &packed[0, 0, 0],
                                       &bias[0], &out[0, 0, 0, 0], &zeros[0], num_threads)
    cdef int threads = _plan_threads(&plan, n_items, num_threads)

    cdef size_t v_elems = <size_t>_v_elems(&plan)
    cdef size_t m_elems = <size_t>_m_elems(&plan)
    cdef size_t scratch_elems = <size_t>_scratch_elems(&plan)
    cdef int alloc_failed = 0
    cdef int *alloc_failed_ptr = &alloc_failed
    cdef const floating *x_ptr = &x[0, 0, 0, 0]
    cdef const floating *u_ptr = &packed[0, 0, 0]
    cdef const floating *b_ptr = &bias[0]
    cdef const floating *z_ptr = &zeros[0]
    cdef floating *out_ptr = &out[0, 0, 0, 0]
    cdef floating *v
    cdef floating *mbuf
    cdef floating *scratch
    cdef Py_ssize_t item
    cdef int nonfinite = 0
    cdef int *nonfinite_ptr = &nonfinite
    cdef fc_interrupt interrupt
    cdef fc_interrupt *interrupt_ptr = &interrupt
    start_interrupt_checks(interrupt_ptr)
    with nogil, parallel(num_threads=threads):
        # Kept by each thread for its next call (_kernels/scratch.hpp).
        v = <floating *>fc_scratch_acquire(0, v_elems * sizeof(floating))
        mbuf = <floating *>fc_scratch_acquire(1, m_elems * sizeof(floating))
        scratch = <floating *>fc_scratch_acquire(2, scratch_elems * sizeof(floating))
        if v == NULL or mbuf == NULL or scratch == NULL:
            alloc_failed_ptr[0] = 1
        for item in prange(n_items, schedule='static'):
            if (v != NULL and mbuf != NULL and scratch != NULL
                    and not fc_interrupted(interrupt_ptr)
                    and _run_work_item(&plan, item, x_ptr, u_ptr, b_ptr, out_ptr, v, mbuf,
                                       scratch, z_ptr)):
                nonfinite_ptr[0] = 1
        fc_scratch_release(0)
        fc_scratch_release(1)
        fc_scratch_release(2)
    raise_if_interrupted(interrupt_ptr)
    if alloc_failed:
        raise MemoryError("fastconv: cannot allocate per-thread Winograd buffers")
    return not nonfinite


def gemm_tile_shape(dtype):
    """``(MR, NR)`` of the GEMM tile for ``dtype`` at the level in use."""
    cdef int mr = 0, nr = 0
    if np.dtype(dtype) == np.float32:
        fc_gemm_tile_shape(<const float *>NULL, &mr, &nr)
    else:
        fc_gemm_tile_shape(<const double *>NULL, &mr, &nr)
    return mr, nr


def workspace_bytes(int m, Py_ssize_t batch, Py_ssize_t channels, Py_ssize_t out_channels,
                    Py_ssize_t out_h, Py_ssize_t out_w, Py_ssize_t groups, dtype,
                    int num_threads):
    """Extra memory of one call, in bytes: ``(packed_weights, scratch)``.

    ``packed_weights`` = ``groups * alpha^2 * K_pad * C/groups`` elements
    (``alpha = m + 2``; ``K_pad`` = K/groups rounded up to MR), the transformed
    weights that :func:`pack_weights` returns and a ``Conv2d`` keeps.
    ``scratch`` = ``threads * alpha^2 * panels * NR * (C_chunk + K_block)``
    elements plus a few tiles: the transformed inputs V and GEMM results M of
    one work item per thread. ``panels * NR`` tiles is at most 4 * 32 (float32,
    AVX-512) and C_chunk, K_block are capped by 8 MiB budgets each, so the
    scratch does not grow with the image. When there are fewer tile blocks
    than threads, or the tile blocks split unevenly among them, the threads
    share one V (all input channels, at most 8 MiB) and keep an M each.
    A call with nothing to compute (a zero size) allocates no scratch.
    """
    if m not in TILE_SIZES:
        raise ValueError(f"tile size must be one of {TILE_SIZES}; got {m}")
    if min(batch, channels, out_channels, out_h, out_w) < 0 or groups < 1:
        raise ValueError("sizes must be >= 0 and groups >= 1")
    cdef Plan plan
    cdef int mr = 0, nr = 0
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        fc_gemm_tile_shape(<const float *>NULL, &mr, &nr)
    else:
        fc_gemm_tile_shape(<const double *>NULL, &mr, &nr)
    # The input's height, width and padding do not change the blocking.
    plan.conv = fc_geometry_of(channels, 0, 0, out_channels, out_h, out_w, 3, 3, 1, 1, 0, 0, 1,
                               1, groups, False)
    plan.m, plan.mr, plan.nr = m, mr, nr
    plan.alpha2 = (m + 2) * (m + 2)
    plan.out_padded = _ceil_div(plan.conv.group_out, mr) * mr
    packed = groups * plan.alpha2 * plan.out_padded * plan.conv.group_in
    if min(batch, out_channels, out_h, out_w) == 0:
        return packed * dtype.itemsize, 0
    cdef Py_ssize_t n_items = _plan_blocks(&plan, batch, dtype.itemsize, num_threads)
    cdef int threads = _plan_threads(&plan, n_items, num_threads)
    if plan.cooperative:
        # One shared V; M and the tile scratch per thread.
        scratch = _v_elems(&plan) + threads * (_m_elems(&plan) + _scratch_elems(&plan))
    else:
        scratch = threads * (_v_elems(&plan) + _m_elems(&plan) + _scratch_elems(&plan))
    return packed * dtype.itemsize, scratch * dtype.itemsize
