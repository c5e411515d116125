/*
 * The kernels of every instruction-set level, the one dispatch table and the
 * one ISA state of the package.
 *
 * Only fastconv._cpu includes this header: the per-level functions are
 * compiled once, there, and the other extensions reach them through the
 * table's address (cpu_dispatch.hpp). fc_select_kernels() rewrites the table
 * for a level; the level in use is fc_kernel_table_active.isa.
 *
 * Tile shapes leave room in the register file: 16 (8 x 32) or 24 (12 x 32)
 * of 32 zmm accumulators for AVX-512, 12 of 16 ymm for AVX2.
 */
#ifndef FASTCONV_CPU_KERNELS_HPP
#define FASTCONV_CPU_KERNELS_HPP

#include "cpu_dispatch.hpp"
#include "scratch.hpp"

/* ------------------------------------------------------------------------ */
/* GEMM and channel-lanes tiles.                                            */

#if FC_HAVE_VECTOR_EXTENSIONS
#define FC_BASELINE_F32_NR 16
FC_DEFINE_TILES(f32_baseline, , float, 4, 4, 4)
FC_DEFINE_TILES(f64_baseline, , double, 4, 4, 2)
#else
#define FC_BASELINE_F32_NR 8
FC_DEFINE_TILE_SET(f32_baseline, , float, 4, 8, (fc_tile_scalar<float, 4, 8>),
                   (fc_tile_scalar<float, 4, 4>))
FC_DEFINE_TILE_SET(f64_baseline, , double, 4, 8, (fc_tile_scalar<double, 4, 8>),
                   (fc_tile_scalar<double, 4, 4>))
#endif

#if FC_HAVE_X86_DISPATCH
FC_DEFINE_TILES(f32_avx2, FC_TARGET_AVX2, float, 6, 2, 8)
FC_DEFINE_TILES(f64_avx2, FC_TARGET_AVX2, double, 6, 2, 4)
/* AVX-512 float32 has two tile heights. The direct convolution runs 8 x 32:
 * measured in place, it was 5-20% faster than 12 x 32 on six of the eight
 * README direct layers timed and equal on the other two (and 8 divides the
 * usual channel counts, where 12 pads 64 to 72). Winograd's GEMMs keep
 * 12 x 32: 8 x 32 was up to 30% slower there in one run, 8 and 16 x 32
 * within +-7% in another, so there was no case for a change. */
FC_DEFINE_DIRECT_TILES(f32_avx512, FC_TARGET_AVX512, float, 32, (fc_tile_vec<float, 8, 2, 16>))
FC_DEFINE_WIDE_INDIRECT_TILE(f32_avx512, FC_TARGET_AVX512, float, (fc_tile_vec<float, 8, 3, 16>))
FC_DEFINE_GEMM_TILE(f32_avx512_12, FC_TARGET_AVX512, float, 12, 32,
                    (fc_tile_vec<float, 12, 2, 16>), (fc_tile_vec<float, 12, 1, 16>))
FC_DEFINE_TILES(f64_avx512, FC_TARGET_AVX512, double, 12, 2, 8)
/* Channel-lanes tiles, 7 pixels x 4 vectors (28 of 32 zmm). */
FC_DEFINE_CHANNEL_LANES_TILE(f32_avx512, FC_TARGET_AVX512, float, 64,
                             (fc_tile_vec<float, FC_CHANNEL_LANES_PIXELS, 4, 16>))
FC_DEFINE_CHANNEL_LANES_TILE(f64_avx512, FC_TARGET_AVX512, double, 32,
                             (fc_tile_vec<double, FC_CHANNEL_LANES_PIXELS, 4, 8>))
#endif

/* ------------------------------------------------------------------------ */
/* Packing and the plane kernel, VLEN elements per vector.                  */

#define FC_DEFINE_PACK_AND_PLANES(SUFFIX, ATTR, VLEN_F32)                      \
    ATTR static void fc_pack_f32_##SUFFIX(FC_PACK_ARGS(float))                 \
    { fc_pack_any<float>(FC_PACK_PASS); }                                      \
    ATTR static void fc_pack_f64_##SUFFIX(FC_PACK_ARGS(double))                \
    { fc_pack_any<double>(FC_PACK_PASS); }                                     \
    ATTR static void fc_plane_f32_##SUFFIX(FC_PLANE_ARGS(float))               \
    { fc_plane_rows_any<float, VLEN_F32>(FC_PLANE_PASS); }                     \
    ATTR static void fc_plane_f64_##SUFFIX(FC_PLANE_ARGS(double))              \
    { fc_plane_rows_any<double, VLEN_F32 / 2>(FC_PLANE_PASS); }

FC_DEFINE_PACK_AND_PLANES(baseline, , 4)
#if FC_HAVE_X86_DISPATCH
FC_DEFINE_PACK_AND_PLANES(avx2, FC_TARGET_AVX2, 8)
FC_DEFINE_PACK_AND_PLANES(avx512, FC_TARGET_AVX512, 16)
#endif

/* ------------------------------------------------------------------------ */
/* Winograd: the transforms, gathers and scatters of each (m, r) per ISA and */
/* dtype; VBYTES is the vector width in bytes. The strided copies of the     */
/* gathers and scatters vectorise (with permutes) at each ISA too. The       */
/* scatter depends on m only.                                               */

#define FC_WINO_DEFINE(SUFFIX, ATTR, T, VBYTES)                                \
    template <int M, int R> ATTR static void fc_wino_input_##SUFFIX(           \
        fc_index nr, T *scratch, T *v, fc_index xi_stride)                     \
    { fc_wino_input_impl<T, M, R, VBYTES / sizeof(T)>(nr, scratch, v, xi_stride); } \
    template <int M, int R> ATTR static int fc_wino_output_##SUFFIX(           \
        const T *m_k, fc_index xi_stride, T bias, fc_index nr, T *scratch, int relu) \
    { return fc_wino_output_impl<T, M, R, VBYTES / sizeof(T)>(m_k, xi_stride, bias, nr, scratch, relu); } \
    template <int M, int R> ATTR static void fc_wino_gather_##SUFFIX(FC_WINO_GATHER_ARGS(T)) \
    { fc_wino_gather<M, R, T>(FC_WINO_GATHER_PASS); }                          \
    template <int M, int R> ATTR static void fc_wino_scatter_##SUFFIX(FC_WINO_SCATTER_ARGS(T)) \
    { fc_wino_scatter<M, T>(FC_WINO_SCATTER_PASS); }                           \
    template <int M, int R> ATTR static void fc_wino_pack_##SUFFIX(FC_WINO_PACK_ARGS(T)) \
    { fc_wino_pack_panel<M, R, T>(FC_WINO_PACK_PASS); }

/* Without vector extensions (MSVC) the baseline transforms are plain loops
 * (winograd_transforms.hpp). */
FC_WINO_DEFINE(f32_baseline, , float, 16)
FC_WINO_DEFINE(f64_baseline, , double, 16)
#if FC_HAVE_X86_DISPATCH
FC_WINO_DEFINE(f32_avx2, FC_TARGET_AVX2, float, 32)
FC_WINO_DEFINE(f64_avx2, FC_TARGET_AVX2, double, 32)
FC_WINO_DEFINE(f32_avx512, FC_TARGET_AVX512, float, 64)
FC_WINO_DEFINE(f64_avx512, FC_TARGET_AVX512, double, 64)
#endif

/* In the order of fc_wino_index (cpu_dispatch.hpp). */
#define FC_WINO_ALL_M(F) {F<2, 3>, F<4, 3>, F<6, 3>, F<2, 5>, F<4, 5>, F<2, 7>}
#define FC_WINO_FILL(t, S32, S64)                                              \
    do {                                                                       \
        const fc_wino_input_f32_fn input_f32[] = FC_WINO_ALL_M(fc_wino_input_##S32); \
        const fc_wino_input_f64_fn input_f64[] = FC_WINO_ALL_M(fc_wino_input_##S64); \
        const fc_wino_output_f32_fn output_f32[] = FC_WINO_ALL_M(fc_wino_output_##S32); \
        const fc_wino_output_f64_fn output_f64[] = FC_WINO_ALL_M(fc_wino_output_##S64); \
        const fc_wino_gather_f32_fn gather_f32[] = FC_WINO_ALL_M(fc_wino_gather_##S32); \
        const fc_wino_gather_f64_fn gather_f64[] = FC_WINO_ALL_M(fc_wino_gather_##S64); \
        const fc_wino_scatter_f32_fn scatter_f32[] = FC_WINO_ALL_M(fc_wino_scatter_##S32); \
        const fc_wino_scatter_f64_fn scatter_f64[] = FC_WINO_ALL_M(fc_wino_scatter_##S64); \
        const fc_wino_pack_f32_fn pack_f32[] = FC_WINO_ALL_M(fc_wino_pack_##S32); \
        const fc_wino_pack_f64_fn pack_f64[] = FC_WINO_ALL_M(fc_wino_pack_##S64); \
        for (int i = 0; i < FC_WINO_SIZES; ++i) {                              \
            t.wino_input_f32[i] = input_f32[i];                                \
            t.wino_input_f64[i] = input_f64[i];                                \
            t.wino_output_f32[i] = output_f32[i];                              \
            t.wino_output_f64[i] = output_f64[i];                              \
            t.wino_gather_f32[i] = gather_f32[i];                              \
            t.wino_gather_f64[i] = gather_f64[i];                              \
            t.wino_scatter_f32[i] = scatter_f32[i];                            \
            t.wino_scatter_f64[i] = scatter_f64[i];                            \
            t.wino_pack_f32[i] = pack_f32[i];                                  \
            t.wino_pack_f64[i] = pack_f64[i];                                  \
        }                                                                      \
    } while (0)

/* ------------------------------------------------------------------------ */
/* The table of each level.                                                 */

#define FC_FILL_TILES(t, MR32, NR32, MR64, NR64, S32, S64, GEMM_MR32, GEMM32)  \
    do {                                                                       \
        t.mr_f32 = MR32, t.nr_f32 = NR32, t.mr_f64 = MR64, t.nr_f64 = NR64;    \
        t.tile_f32 = fc_tile_##S32, t.tile_f64 = fc_tile_##S64;                \
        t.tile_indirect_f32 = fc_tile_indirect_##S32;                          \
        t.tile_indirect_f64 = fc_tile_indirect_##S64;                          \
        t.gemm_mr_f32 = GEMM_MR32, t.gemm_mr_f64 = MR64;                       \
        t.gemm_f32 = fc_gemm_##GEMM32, t.gemm_narrow_f32 = fc_gemm_narrow_##GEMM32; \
        t.gemm_f64 = fc_gemm_##S64, t.gemm_narrow_f64 = fc_gemm_narrow_##S64;  \
    } while (0)
#define FC_FILL_PACK_AND_PLANES(t, SUFFIX)                                     \
    do {                                                                       \
        t.pack_f32 = fc_pack_f32_##SUFFIX, t.pack_f64 = fc_pack_f64_##SUFFIX;  \
        t.plane_f32 = fc_plane_f32_##SUFFIX, t.plane_f64 = fc_plane_f64_##SUFFIX; \
    } while (0)

static fc_kernel_table fc_kernels_baseline(void)
{
    fc_kernel_table t = {};
    t.isa = FC_ISA_BASELINE;
    FC_FILL_TILES(t, 4, FC_BASELINE_F32_NR, 4, 8, f32_baseline, f64_baseline, 4, f32_baseline);
    FC_FILL_PACK_AND_PLANES(t, baseline);
    FC_WINO_FILL(t, f32_baseline, f64_baseline);
    return t;
}

#if FC_HAVE_X86_DISPATCH
static fc_kernel_table fc_kernels_avx2(void)
{
    fc_kernel_table t = {};
    t.isa = FC_ISA_AVX2;
    FC_FILL_TILES(t, 6, 16, 6, 8, f32_avx2, f64_avx2, 6, f32_avx2);
    FC_FILL_PACK_AND_PLANES(t, avx2);
    FC_WINO_FILL(t, f32_avx2, f64_avx2);
    return t;
}

static fc_kernel_table fc_kernels_avx512(void)
{
    fc_kernel_table t = {};
    t.isa = FC_ISA_AVX512;
    FC_FILL_TILES(t, 8, 32, 12, 16, f32_avx512, f64_avx512, 12, f32_avx512_12);
    t.channel_lanes_width_f32 = 64, t.channel_lanes_width_f64 = 32;
    t.channel_lanes_f32 = fc_channel_lanes_tile_f32_avx512;
    t.channel_lanes_f64 = fc_channel_lanes_tile_f64_avx512;
    t.wide_nr_f32 = 48, t.tile_indirect_wide_f32 = fc_tile_indirect_wide_f32_avx512;
    FC_FILL_PACK_AND_PLANES(t, avx512);
    FC_WINO_FILL(t, f32_avx512, f64_avx512);
    /* float32 tiles of m = 2 and 4 move 16 tiles at a time
     * (winograd_gather.hpp); the order of FC_WINO_ALL_M. */
    t.wino_gather_f32[0] = fc_wino_gather_f32_avx512_runs<2, 3>;
    t.wino_gather_f32[1] = fc_wino_gather_f32_avx512_runs<4, 3>;
    t.wino_gather_f32[3] = fc_wino_gather_f32_avx512_runs<2, 5>;
    t.wino_gather_f32[4] = fc_wino_gather_f32_avx512_runs<4, 5>;
    t.wino_gather_f32[5] = fc_wino_gather_f32_avx512_runs<2, 7>;
    t.wino_scatter_f32[0] = fc_wino_scatter_f32_avx512_runs<2>;
    t.wino_scatter_f32[1] = fc_wino_scatter_f32_avx512_runs<4>;
    t.wino_scatter_f32[3] = fc_wino_scatter_f32_avx512_runs<2>;
    t.wino_scatter_f32[4] = fc_wino_scatter_f32_avx512_runs<4>;
    t.wino_scatter_f32[5] = fc_wino_scatter_f32_avx512_runs<2>;
    return t;
}
#endif

/* ------------------------------------------------------------------------ */
/* The one table and ISA state.                                             */

static fc_kernel_table fc_with_scratch_pool(fc_kernel_table t)
{
    t.scratch_acquire = fc_scratch_pool_acquire;
    t.scratch_release = fc_scratch_pool_release;
    t.scratch_peak_bytes = fc_scratch_pool_peak_bytes;
    return t;
}

static fc_kernel_table fc_kernel_table_active = fc_with_scratch_pool(fc_kernels_baseline());

/* Use `requested` capped at what the CPU can run; returns the level in use. */
static int fc_select_kernels(int requested)
{
    int level = fc_cpu_isa();
    if (requested < level) level = requested;
    fc_kernel_table t = fc_kernels_baseline();
#if FC_HAVE_X86_DISPATCH
    if (level == FC_ISA_AVX512) t = fc_kernels_avx512();
    else if (level == FC_ISA_AVX2) t = fc_kernels_avx2();
#endif
    fc_kernel_table_active = fc_with_scratch_pool(t);
    fc_use_kernel_table(&fc_kernel_table_active);
    return t.isa;
}

#endif /* FASTCONV_CPU_KERNELS_HPP */
