/*
 * CPU detection and the one dispatch table of the package's kernels.
 *
 * Each kernel that exists per instruction-set level (the GEMM tiles, the
 * channel-lanes tile, the packer, the plane kernel, Winograd's transforms,
 * gathers and scatters) is called through fc_kernel_table, whose entries are
 * the functions of one level. The table itself lives in one place
 * (cpu_kernels.hpp, compiled into fastconv._cpu), which also holds the one
 * ISA state: the level in use is the table's `isa`. Every extension that
 * calls kernels includes this header and points `fc_kernels` at that table
 * once, at import (fc_use_kernel_table); switching the level rewrites the
 * table, so all extensions follow at once and none keeps a copy.
 *
 * The inline functions at the end are the kernels' entry points: overloads
 * per dtype, so that Cython fused-type code calls one name; int64 (exact
 * integer convolution) always runs the portable scalar code.
 */
#ifndef FASTCONV_CPU_DISPATCH_HPP
#define FASTCONV_CPU_DISPATCH_HPP

#include "channel_lanes_tile.hpp"
#include "gemm_tile.hpp"
#include "pack.hpp"
#include "planes.hpp"
#include "platform.hpp"
#include "winograd_gather.hpp"
#include "winograd_transforms.hpp"

/* Highest level the running CPU and OS support (the OS check matters: a
 * kernel may disable AVX-512 state; __builtin_cpu_supports reads XCR0). */
static inline int fc_cpu_isa(void)
{
#if FC_HAVE_X86_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return FC_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return FC_ISA_AVX2;
#endif
    return FC_ISA_BASELINE;
}

/* Winograd's kernels per (output tile m, filter size r): F(2, 3), F(4, 3),
 * F(6, 3), F(2, 5), F(4, 5), F(2, 7) (fc_wino_index). */
#define FC_WINO_SIZES 6

struct fc_kernel_table {
    int isa; /* the level of every entry below */
    /* The direct convolution's tile (MR x NR), on a packed B panel and on B
     * rows in place. */
    int mr_f32, nr_f32, mr_f64, nr_f64;
    fc_tile_f32_fn tile_f32;
    fc_tile_f64_fn tile_f64;
    fc_tile_indirect_f32_fn tile_indirect_f32;
    fc_tile_indirect_f64_fn tile_indirect_f64;
    /* A wider float32 tile on B rows in place (MR x wide_nr_f32), for the
     * strided rows' reduction chunks; width 0 and no function where the
     * level has none. */
    int wide_nr_f32;
    fc_tile_indirect_f32_fn tile_indirect_wide_f32;
    /* Winograd's GEMM tile (gemm_mr x NR, the direct tiles' NR) and its
     * narrow form (NR / 2). */
    int gemm_mr_f32, gemm_mr_f64;
    fc_gemm_f32_fn gemm_f32, gemm_narrow_f32;
    fc_gemm_f64_fn gemm_f64, gemm_narrow_f64;
    /* The channel-lanes tile and its width KB (output channels); width 0
     * and no function where the level has none. */
    int channel_lanes_width_f32, channel_lanes_width_f64;
    fc_channel_lanes_f32_fn channel_lanes_f32;
    fc_channel_lanes_f64_fn channel_lanes_f64;
    fc_pack_f32_fn pack_f32;
    fc_pack_f64_fn pack_f64;
    fc_plane_f32_fn plane_f32;
    fc_plane_f64_fn plane_f64;
    fc_wino_input_f32_fn wino_input_f32[FC_WINO_SIZES];
    fc_wino_input_f64_fn wino_input_f64[FC_WINO_SIZES];
    fc_wino_output_f32_fn wino_output_f32[FC_WINO_SIZES];
    fc_wino_output_f64_fn wino_output_f64[FC_WINO_SIZES];
    fc_wino_gather_f32_fn wino_gather_f32[FC_WINO_SIZES];
    fc_wino_gather_f64_fn wino_gather_f64[FC_WINO_SIZES];
    fc_wino_scatter_f32_fn wino_scatter_f32[FC_WINO_SIZES];
    fc_wino_scatter_f64_fn wino_scatter_f64[FC_WINO_SIZES];
    fc_wino_pack_f32_fn wino_pack_f32[FC_WINO_SIZES];
    fc_wino_pack_f64_fn wino_pack_f64[FC_WINO_SIZES];
    /* The one per-thread scratch pool (scratch.hpp), the same at every level. */
    void *(*scratch_acquire)(int slot, size_t nbytes);
    void (*scratch_release)(int slot);
    size_t (*scratch_peak_bytes)(int reset);
};

/* This extension's pointer to the one table (fastconv._cpu's). */
static const fc_kernel_table *fc_kernels = NULL;

static inline void fc_use_kernel_table(const fc_kernel_table *table) { fc_kernels = table; }

/* ------------------------------------------------------------------------ */
/* Per-thread scratch: at least `nbytes` (64-byte aligned) in `slot`, kept   */
/* for the thread's next call, or NULL; a call site uses distinct slots for  */
/* buffers it holds at once (scratch.hpp).                                   */

static inline void *fc_scratch_acquire(int slot, size_t nbytes)
{ return fc_kernels->scratch_acquire(slot, nbytes); }
static inline void fc_scratch_release(int slot) { fc_kernels->scratch_release(slot); }
static inline size_t fc_scratch_peak_bytes(int reset)
{ return fc_kernels->scratch_peak_bytes(reset); }

/* ------------------------------------------------------------------------ */
/* The direct convolution's tiles.                                          */

FC_DEFINE_DIRECT_TILES(i64, , int64_t, 8, (fc_tile_scalar<int64_t, 4, 8>))

static inline void fc_tile(FC_TILE_ARGS(float))
{ fc_kernels->tile_f32(kc, a, lda, b, FC_TILE_REST); }
static inline void fc_tile(FC_TILE_ARGS(double))
{ fc_kernels->tile_f64(kc, a, lda, b, FC_TILE_REST); }
static inline void fc_tile(FC_TILE_ARGS(int64_t)) { fc_tile_i64(kc, a, lda, b, FC_TILE_REST); }
static inline void fc_tile_indirect(FC_TILE_INDIRECT_ARGS(float))
{ fc_kernels->tile_indirect_f32(kc, a, lda, base, offsets, FC_TILE_REST); }
static inline void fc_tile_indirect(FC_TILE_INDIRECT_ARGS(double))
{ fc_kernels->tile_indirect_f64(kc, a, lda, base, offsets, FC_TILE_REST); }
static inline void fc_tile_indirect(FC_TILE_INDIRECT_ARGS(int64_t))
{ fc_tile_indirect_i64(kc, a, lda, base, offsets, FC_TILE_REST); }

/* The wide tile (width fc_wide_nr, 0 where there is none: float64 and
 * int64 never take it). */
static inline void fc_tile_indirect_wide(FC_TILE_INDIRECT_ARGS(float))
{ fc_kernels->tile_indirect_wide_f32(kc, a, lda, base, offsets, FC_TILE_REST); }
static inline void fc_tile_indirect_wide(FC_TILE_INDIRECT_ARGS(double))
{ fc_tile_indirect(kc, a, lda, base, offsets, FC_TILE_REST); }
static inline void fc_tile_indirect_wide(FC_TILE_INDIRECT_ARGS(int64_t))
{ fc_tile_indirect(kc, a, lda, base, offsets, FC_TILE_REST); }
static inline int fc_wide_nr(const float *) { return fc_kernels->wide_nr_f32; }
static inline int fc_wide_nr(const double *) { return 0; }
static inline int fc_wide_nr(const int64_t *) { return 0; }

static inline void fc_tile_shape(const float *, int *mr, int *nr)
{ *mr = fc_kernels->mr_f32; *nr = fc_kernels->nr_f32; }
static inline void fc_tile_shape(const double *, int *mr, int *nr)
{ *mr = fc_kernels->mr_f64; *nr = fc_kernels->nr_f64; }
static inline void fc_tile_shape(const int64_t *, int *mr, int *nr)
{ *mr = 4; *nr = 8; }

/* ------------------------------------------------------------------------ */
/* Winograd's GEMM tile on the A panels of fc_gemm_tile_shape, for B panels  */
/* of its nr or of nr / 2 (the narrow tile) tiles; ldc is that width.        */

static inline void fc_gemm_tile(FC_GEMM_ARGS(float))
{
    if (ldc == fc_kernels->nr_f32) fc_kernels->gemm_f32(kc, a, b, FC_TILE_REST);
    else fc_kernels->gemm_narrow_f32(kc, a, b, FC_TILE_REST);
}
static inline void fc_gemm_tile(FC_GEMM_ARGS(double))
{
    if (ldc == fc_kernels->nr_f64) fc_kernels->gemm_f64(kc, a, b, FC_TILE_REST);
    else fc_kernels->gemm_narrow_f64(kc, a, b, FC_TILE_REST);
}
static inline void fc_gemm_tile_shape(const float *, int *mr, int *nr)
{ *mr = fc_kernels->gemm_mr_f32; *nr = fc_kernels->nr_f32; }
static inline void fc_gemm_tile_shape(const double *, int *mr, int *nr)
{ *mr = fc_kernels->gemm_mr_f64; *nr = fc_kernels->nr_f64; }

/* ------------------------------------------------------------------------ */
/* The channel-lanes tile; width 0: none at this level (the tile must not be */
/* called).                                                                  */

#define FC_CHANNEL_LANES_PASS kc, base, k_offsets, pixel_offsets, w, c
static inline void fc_channel_lanes_tile(FC_CHANNEL_LANES_ARGS(float))
{ fc_kernels->channel_lanes_f32(FC_CHANNEL_LANES_PASS); }
static inline void fc_channel_lanes_tile(FC_CHANNEL_LANES_ARGS(double))
{ fc_kernels->channel_lanes_f64(FC_CHANNEL_LANES_PASS); }
static inline int fc_channel_lanes_width(const float *)
{ return fc_kernels->channel_lanes_width_f32; }
static inline int fc_channel_lanes_width(const double *)
{ return fc_kernels->channel_lanes_width_f64; }

/* ------------------------------------------------------------------------ */
/* Packing and the plane kernel.                                            */

static inline void fc_pack_input(FC_PACK_ARGS(float)) { fc_kernels->pack_f32(FC_PACK_PASS); }
static inline void fc_pack_input(FC_PACK_ARGS(double)) { fc_kernels->pack_f64(FC_PACK_PASS); }
static inline void fc_pack_input(FC_PACK_ARGS(int64_t)) { fc_pack_any<int64_t>(FC_PACK_PASS); }

static inline void fc_plane_rows(FC_PLANE_ARGS(float)) { fc_kernels->plane_f32(FC_PLANE_PASS); }
static inline void fc_plane_rows(FC_PLANE_ARGS(double)) { fc_kernels->plane_f64(FC_PLANE_PASS); }
static inline void fc_plane_rows(FC_PLANE_ARGS(int64_t))
{ fc_plane_rows_any<int64_t, 1>(FC_PLANE_PASS); }

/* ------------------------------------------------------------------------ */
/* Winograd, for output tile size m and filter size r (one the caller      */
/* checked is compiled in).                                                 */

static inline int fc_wino_index(int m, int r)
{ return r == 3 ? m / 2 - 1 : (r == 5 ? m / 2 + 2 : 5); }

static inline void fc_wino_input(int m, int r, fc_index nr,
                                 float *scratch, float *v, fc_index xi_stride)
{ fc_kernels->wino_input_f32[fc_wino_index(m, r)](nr, scratch, v, xi_stride); }
static inline void fc_wino_input(int m, int r, fc_index nr,
                                 double *scratch, double *v, fc_index xi_stride)
{ fc_kernels->wino_input_f64[fc_wino_index(m, r)](nr, scratch, v, xi_stride); }
static inline int fc_wino_output(int m, int r, const float *m_k, fc_index xi_stride, float bias,
                                 fc_index nr, float *scratch, int relu)
{ return fc_kernels->wino_output_f32[fc_wino_index(m, r)](m_k, xi_stride, bias, nr, scratch, relu); }
static inline int fc_wino_output(int m, int r, const double *m_k, fc_index xi_stride, double bias,
                                 fc_index nr, double *scratch, int relu)
{ return fc_kernels->wino_output_f64[fc_wino_index(m, r)](m_k, xi_stride, bias, nr, scratch, relu); }

static inline void fc_wino_gather_m(int m, int r, FC_WINO_GATHER_ARGS(float))
{ fc_kernels->wino_gather_f32[fc_wino_index(m, r)](FC_WINO_GATHER_PASS); }
static inline void fc_wino_gather_m(int m, int r, FC_WINO_GATHER_ARGS(double))
{ fc_kernels->wino_gather_f64[fc_wino_index(m, r)](FC_WINO_GATHER_PASS); }
static inline void fc_wino_scatter_m(int m, int r, FC_WINO_SCATTER_ARGS(float))
{ fc_kernels->wino_scatter_f32[fc_wino_index(m, r)](FC_WINO_SCATTER_PASS); }
static inline void fc_wino_scatter_m(int m, int r, FC_WINO_SCATTER_ARGS(double))
{ fc_kernels->wino_scatter_f64[fc_wino_index(m, r)](FC_WINO_SCATTER_PASS); }
static inline void fc_wino_pack_panel_m(int m, int r, FC_WINO_PACK_ARGS(float))
{ fc_kernels->wino_pack_f32[fc_wino_index(m, r)](FC_WINO_PACK_PASS); }
static inline void fc_wino_pack_panel_m(int m, int r, FC_WINO_PACK_ARGS(double))
{ fc_kernels->wino_pack_f64[fc_wino_index(m, r)](FC_WINO_PACK_PASS); }

#endif /* FASTCONV_CPU_DISPATCH_HPP */
