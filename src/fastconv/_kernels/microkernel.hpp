/*
 * Register-blocked GEMM micro-kernels for the direct convolution and
 * Winograd, with run-time selection of the instruction set.
 *
 * One tile computes C[MR x NR] (+)= A[MR x kc] . B[kc x NR] where
 *   A is MR weight rows (MR output channels), read in place `lda` apart, or
 *     for Winograd a packed panel laid out [kc][MR],
 *   B is a packed input panel laid out [kc][NR] (NR output pixels per step),
 *     or input rows read in place (rows.hpp),
 *   C is the output, rows MR output channels apart by `ldc` elements.
 * The MR x NR accumulators live in vector registers for the whole reduction,
 * so every B vector loaded is reused MR times and every broadcast weight NR
 * times.
 *
 * The same generic template is compiled once per instruction set through
 * GCC/Clang `target` attributes; the function called is chosen once at import
 * (fc_select_isa), so the default build needs no -march flag and a wheel runs
 * on any x86-64 CPU. Compilers without GNU vector extensions (MSVC) get a
 * portable scalar kernel only.
 *
 * Floating-point contraction (a*b+c -> fma) is the only liberty taken; no
 * -ffast-math, so NaN and Inf propagate as IEEE arithmetic says.
 */
#ifndef FASTCONV_MICROKERNEL_HPP
#define FASTCONV_MICROKERNEL_HPP

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

typedef std::ptrdiff_t fc_index;

enum fc_isa { FC_ISA_BASELINE = 0, FC_ISA_AVX2 = 1, FC_ISA_AVX512 = 2 };

#if (defined(__GNUC__) || defined(__clang__)) && !defined(FASTCONV_NO_VECTOR_EXTENSIONS)
#define FC_HAVE_VECTOR_EXTENSIONS 1
#define FC_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define FC_HAVE_VECTOR_EXTENSIONS 0
#define FC_ALWAYS_INLINE inline
#endif

#if FC_HAVE_VECTOR_EXTENSIONS && (defined(__x86_64__) || defined(_M_X64))
#define FC_HAVE_X86_DISPATCH 1
#else
#define FC_HAVE_X86_DISPATCH 0
#endif

/* ------------------------------------------------------------------------ */
/* Aligned scratch memory: portable (no aligned_alloc on MSVC).             */

static inline void *fc_aligned_malloc(size_t nbytes)
{
    const size_t align = 64;
    void *raw = std::malloc(nbytes + align + sizeof(void *));
    if (raw == NULL) return NULL;
    uintptr_t start = (uintptr_t)raw + sizeof(void *);
    uintptr_t aligned = (start + align - 1) & ~(uintptr_t)(align - 1);
    ((void **)aligned)[-1] = raw;
    return (void *)aligned;
}

static inline void fc_aligned_free(void *p)
{
    if (p != NULL) std::free(((void **)p)[-1]);
}

/* ------------------------------------------------------------------------ */
/* Per-thread scratch kept from one call to the next.                       */
/* Scratch freed at the end of a call goes back to the OS (glibc trims the  */
/* heap or unmaps the block), and the next call pays a page fault per 4 KiB */
/* page again: measured, 28% of a one-thread F(4x4) call on a 256-channel   */
/* 56x56 image. So each thread keeps its buffers, one per slot, for its     */
/* next call, up to FC_SCRATCH_KEEP_BYTES in all; beyond that a buffer is   */
/* freed when released. A thread's buffers are freed when the thread ends.  */
/* Each thread runs one parallel region at a time, so a slot is never in    */
/* use twice; a call site uses distinct slots for buffers it holds at once. */

#define FC_SCRATCH_SLOTS 4
#define FC_SCRATCH_KEEP_BYTES ((size_t)32 << 20)

struct fc_scratch_slots {
    void *ptr[FC_SCRATCH_SLOTS];
    size_t size[FC_SCRATCH_SLOTS];
    size_t in_use[FC_SCRATCH_SLOTS]; /* bytes asked for since the slot's acquire */
    ~fc_scratch_slots()
    {
        for (int i = 0; i < FC_SCRATCH_SLOTS; ++i) fc_aligned_free(ptr[i]);
    }
};

static inline fc_scratch_slots &fc_thread_scratch(void)
{
    static thread_local fc_scratch_slots slots = {};
    return slots;
}

/* The most scratch one thread asked to hold at once since the last reset,
 * in bytes (kept buffers not counted): what the tests hold each driver's
 * documented budget to, since a budget miscomputed there costs memory and
 * speed but gives the right result. */
static std::atomic<size_t> fc_scratch_peak(0);

static inline void fc_scratch_note_use(const fc_scratch_slots &s)
{
    size_t held = 0;
    for (int i = 0; i < FC_SCRATCH_SLOTS; ++i) held += s.in_use[i];
    size_t peak = fc_scratch_peak.load(std::memory_order_relaxed);
    while (held > peak && !fc_scratch_peak.compare_exchange_weak(
                              peak, held, std::memory_order_relaxed)) {
    }
}

/* fc_scratch_peak, then zero if `reset`. */
static inline size_t fc_scratch_peak_bytes(int reset)
{
    return reset ? fc_scratch_peak.exchange(0) : fc_scratch_peak.load();
}

/* At least `nbytes` (64-byte aligned) in slot `slot`, or NULL. */
static inline void *fc_scratch_acquire(int slot, size_t nbytes)
{
    fc_scratch_slots &s = fc_thread_scratch();
    s.in_use[slot] = nbytes;
    fc_scratch_note_use(s);
    if (s.size[slot] < nbytes || s.ptr[slot] == NULL) {
        fc_aligned_free(s.ptr[slot]);
        s.ptr[slot] = fc_aligned_malloc(nbytes > 0 ? nbytes : 1);
        s.size[slot] = s.ptr[slot] != NULL ? nbytes : 0;
    }
    return s.ptr[slot];
}

/* Done with slot `slot` for this call. */
static inline void fc_scratch_release(int slot)
{
    fc_scratch_slots &s = fc_thread_scratch();
    s.in_use[slot] = 0;
    size_t kept = 0;
    for (int i = 0; i < FC_SCRATCH_SLOTS; ++i) kept += s.size[i];
    if (kept > FC_SCRATCH_KEEP_BYTES) {
        fc_aligned_free(s.ptr[slot]);
        s.ptr[slot] = NULL;
        s.size[slot] = 0;
    }
}

/* ------------------------------------------------------------------------ */
/* The generic tiles.                                                       */

/* Where A(k, m), the weight of the tile's output channel m for reduction
 * step k, is: the direct convolution reads the weight rows in place, `lda`
 * apart (no packing, so a one-off call never copies its weights); Winograd's
 * transformed weights are packed panels [kc][MR]. Both read as fast:
 * each broadcast is one load, and MR row streams prefetch as well as one. */
template <typename T>
struct fc_strided_a {
    const T *a;
    fc_index lda;
    FC_ALWAYS_INLINE T at(fc_index k, int m) const { return a[m * lda + k]; }
};

template <typename T, int MR>
struct fc_packed_a {
    const T *a;
    FC_ALWAYS_INLINE T at(fc_index k, int m) const { return a[k * MR + m]; }
};

/* Where row k of a tile's B panel starts: rows of a packed panel are NR
 * apart; in place (rows.hpp), row k is the input row segment of kernel tap
 * k, at base + offsets[k], so the input is never copied once per tap. */
template <typename T, int NR>
struct fc_packed_rows {
    const T *b;
    FC_ALWAYS_INLINE const T *row(fc_index k) const { return b + k * NR; }
};

/* The channel-lanes tile (output channels in the vector lanes, pixels
 * broadcast) reads A(k, m), the input value that reduction step k (an input
 * channel and kernel tap, at k_offsets[k]) multiplies for output pixel m (at
 * pixel_offsets[m]) of a zero-padded image. */
template <typename T>
struct fc_pixel_a {
    const T *base;
    const fc_index *k_offsets;
    const fc_index *pixel_offsets;
    FC_ALWAYS_INLINE T at(fc_index k, int m) const
    {
        return base[k_offsets[k] + pixel_offsets[m]];
    }
};

template <typename T>
struct fc_offset_rows {
    const T *base;
    const fc_index *offsets;
    FC_ALWAYS_INLINE const T *row(fc_index k) const { return base + offsets[k]; }
};

#if FC_HAVE_VECTOR_EXTENSIONS
/* LANES elements of T in one vector register; NV vectors span NR = NV*LANES
 * output pixels. `accumulate` = 0 starts from bias[m] (first reduction chunk),
 * 1 adds to what C already holds (later chunks). */
template <typename T, int MR, int NV, int LANES, typename A, typename Rows>
static FC_ALWAYS_INLINE void fc_tile_vec(fc_index kc, A a, Rows b, T *c, fc_index ldc,
                                         int accumulate, const T *bias)
{
    typedef T vec __attribute__((vector_size(LANES * sizeof(T))));
    /* Output rows and packed panels need not be vector-aligned. */
    typedef T uvec __attribute__((vector_size(LANES * sizeof(T)), aligned(sizeof(T))));
    vec acc[MR][NV];
    if (accumulate) {
        for (int m = 0; m < MR; ++m)
            for (int v = 0; v < NV; ++v)
                acc[m][v] = *(const uvec *)(c + m * ldc + v * LANES);
    } else {
        for (int m = 0; m < MR; ++m)
            for (int v = 0; v < NV; ++v)
                acc[m][v] = (vec){} + bias[m];
    }
    for (fc_index k = 0; k < kc; ++k) {
        const T *row = b.row(k);
        vec bv[NV];
        for (int v = 0; v < NV; ++v)
            bv[v] = *(const uvec *)(row + v * LANES);
        for (int m = 0; m < MR; ++m) {
            const T w = a.at(k, m);
            for (int v = 0; v < NV; ++v)
                acc[m][v] += w * bv[v];
        }
    }
    for (int m = 0; m < MR; ++m)
        for (int v = 0; v < NV; ++v)
            *(uvec *)(c + m * ldc + v * LANES) = acc[m][v];
}
#endif

/* Scalar fallback, also the exact int64 kernel. */
template <typename T, int MR, int NR, typename A, typename Rows>
static FC_ALWAYS_INLINE void fc_tile_scalar(fc_index kc, A a, Rows b, T *c, fc_index ldc,
                                            int accumulate, const T *bias)
{
    T acc[MR][NR];
    for (int m = 0; m < MR; ++m)
        for (int n = 0; n < NR; ++n)
            acc[m][n] = accumulate ? c[m * ldc + n] : bias[m];
    for (fc_index k = 0; k < kc; ++k) {
        const T *row = b.row(k);
        for (int m = 0; m < MR; ++m) {
            const T w = a.at(k, m);
            for (int n = 0; n < NR; ++n)
                acc[m][n] += w * row[n];
        }
    }
    for (int m = 0; m < MR; ++m)
        for (int n = 0; n < NR; ++n)
            c[m * ldc + n] = acc[m][n];
}

/* ------------------------------------------------------------------------ */
/* Three functions per (instruction set, dtype): the direct convolution's    */
/* tile on a packed B panel (fc_tile) and on B rows in place                 */
/* (fc_tile_indirect), both with the weights in place, and the GEMM tile on  */
/* packed A and B panels (fc_gemm_tile, for Winograd). Tile shapes leave     */
/* room in the register file: 16 (8 x 32) or 24 (12 x 32) of 32 zmm          */
/* accumulators for AVX-512, 12 of 16 ymm for AVX2.                          */

#define FC_TILE_ARGS(T)                                                        \
    fc_index kc, const T *a, fc_index lda, const T *b, T *c, fc_index ldc,    \
        int accumulate, const T *bias
#define FC_TILE_INDIRECT_ARGS(T)                                               \
    fc_index kc, const T *a, fc_index lda, const T *base,                     \
        const fc_index *offsets, T *c, fc_index ldc, int accumulate,          \
        const T *bias
#define FC_GEMM_ARGS(T)                                                        \
    fc_index kc, const T *a, const T *b, T *c, fc_index ldc, int accumulate,  \
        const T *bias
#define FC_TILE_REST c, ldc, accumulate, bias
/* The channel-lanes tile adds FC_LANES_MR pixels x KB output channels of
 * weight rows w[kc][KB] into c[FC_LANES_MR][KB]. */
#define FC_LANES_ARGS(T)                                                       \
    fc_index kc, const T *base, const fc_index *k_offsets,                     \
        const fc_index *pixel_offsets, const T *w, T *c
#define FC_LANES_MR 7

typedef void (*fc_tile_f32_fn)(FC_TILE_ARGS(float));
typedef void (*fc_tile_f64_fn)(FC_TILE_ARGS(double));
typedef void (*fc_tile_indirect_f32_fn)(FC_TILE_INDIRECT_ARGS(float));
typedef void (*fc_tile_indirect_f64_fn)(FC_TILE_INDIRECT_ARGS(double));
typedef void (*fc_gemm_f32_fn)(FC_GEMM_ARGS(float));
typedef void (*fc_gemm_f64_fn)(FC_GEMM_ARGS(double));

/* `KERNEL` is fc_tile_vec<T, MR, NV, LANES> or fc_tile_scalar<T, MR, NR>.
 * Winograd's GEMM also has a tile of half the width (NARROW, on the same A
 * panels), for batches of few tiles: 16 tiles fill half of a 32-wide panel. */
#define FC_DEFINE_GEMM_TILE(SUFFIX, ATTR, T, MR, NR, KERNEL, NARROW)           \
    ATTR static void fc_gemm_##SUFFIX(FC_GEMM_ARGS(T))                         \
    { KERNEL(kc, (fc_packed_a<T, MR>{a}), (fc_packed_rows<T, NR>{b}), FC_TILE_REST); } \
    ATTR static void fc_gemm_narrow_##SUFFIX(FC_GEMM_ARGS(T))                  \
    { NARROW(kc, (fc_packed_a<T, MR>{a}), (fc_packed_rows<T, NR / 2>{b}), FC_TILE_REST); }
/* `KB` output channels in NV vectors: the channel-lanes tile is
 * fc_tile_vec<T, FC_LANES_MR, NV, LANES> on fc_pixel_a (7 pixels: every
 * ResNet/VGG image side is a multiple of 7). */
#define FC_DEFINE_LANES_TILE(SUFFIX, ATTR, T, KB, KERNEL)                      \
    ATTR static void fc_lanes_tile_##SUFFIX(FC_LANES_ARGS(T))                  \
    { KERNEL(kc, (fc_pixel_a<T>{base, k_offsets, pixel_offsets}),               \
             (fc_packed_rows<T, KB>{w}), c, KB, 1, (const T *)NULL); }
#define FC_DEFINE_DIRECT_TILES(SUFFIX, ATTR, T, NR, KERNEL)                    \
    ATTR static void fc_tile_##SUFFIX(FC_TILE_ARGS(T))                         \
    { KERNEL(kc, (fc_strided_a<T>{a, lda}), (fc_packed_rows<T, NR>{b}), FC_TILE_REST); } \
    ATTR static void fc_tile_indirect_##SUFFIX(FC_TILE_INDIRECT_ARGS(T))       \
    { KERNEL(kc, (fc_strided_a<T>{a, lda}), (fc_offset_rows<T>{base, offsets}),          \
             FC_TILE_REST); }
#define FC_DEFINE_TILE_SET(SUFFIX, ATTR, T, MR, NR, KERNEL, NARROW)            \
    FC_DEFINE_DIRECT_TILES(SUFFIX, ATTR, T, NR, KERNEL)                        \
    FC_DEFINE_GEMM_TILE(SUFFIX, ATTR, T, MR, NR, KERNEL, NARROW)
/* NV even: the narrow GEMM tile is NV / 2 vectors wide. */
#define FC_DEFINE_TILES(SUFFIX, ATTR, T, MR, NV, LANES)                        \
    FC_DEFINE_TILE_SET(SUFFIX, ATTR, T, MR, NV * LANES, (fc_tile_vec<T, MR, NV, LANES>), \
                       (fc_tile_vec<T, MR, NV / 2, LANES>))

#if FC_HAVE_VECTOR_EXTENSIONS
#define FC_BASELINE_F32_MR 4
#define FC_BASELINE_F32_NR 16
#define FC_BASELINE_F64_MR 4
#define FC_BASELINE_F64_NR 8
FC_DEFINE_TILES(f32_baseline, , float, 4, 4, 4)
FC_DEFINE_TILES(f64_baseline, , double, 4, 4, 2)
#else
#define FC_BASELINE_F32_MR 4
#define FC_BASELINE_F32_NR 8
#define FC_BASELINE_F64_MR 4
#define FC_BASELINE_F64_NR 8
FC_DEFINE_TILE_SET(f32_baseline, , float, 4, 8, (fc_tile_scalar<float, 4, 8>),
                   (fc_tile_scalar<float, 4, 4>))
FC_DEFINE_TILE_SET(f64_baseline, , double, 4, 8, (fc_tile_scalar<double, 4, 8>),
                   (fc_tile_scalar<double, 4, 4>))
#endif

#if FC_HAVE_X86_DISPATCH
FC_DEFINE_TILES(f32_avx2, __attribute__((target("avx2,fma"))), float, 6, 2, 8)
FC_DEFINE_TILES(f64_avx2, __attribute__((target("avx2,fma"))), double, 6, 2, 4)
/* AVX-512 float32 has two tile heights. The direct convolution runs 8 x 32:
 * measured in place, it was 5-20% faster than 12 x 32 on six of the eight
 * README direct layers timed and equal on the other two (and 8 divides the
 * usual channel counts, where 12 pads 64 to 72). Winograd's GEMMs keep
 * 12 x 32: 8 x 32 was up to 30% slower there in one run, 8 and 16 x 32
 * within +-7% in another, so there was no case for a change. */
FC_DEFINE_DIRECT_TILES(f32_avx512, __attribute__((target("avx512f,avx2,fma"))), float, 32,
                       (fc_tile_vec<float, 8, 2, 16>))
FC_DEFINE_GEMM_TILE(f32_avx512_12, __attribute__((target("avx512f,avx2,fma"))), float, 12,
                    32, (fc_tile_vec<float, 12, 2, 16>), (fc_tile_vec<float, 12, 1, 16>))
FC_DEFINE_TILES(f64_avx512, __attribute__((target("avx512f,avx2,fma"))), double, 12, 2, 8)
/* Channel-lanes tiles, 7 pixels x 4 vectors (28 of 32 zmm). AVX-512 only:
 * with 16 registers AVX2 fits 7 x 1, which ran 0.7-1.06x the pixel panels. */
FC_DEFINE_LANES_TILE(f32_avx512, __attribute__((target("avx512f,avx2,fma"))), float, 64,
                     (fc_tile_vec<float, FC_LANES_MR, 4, 16>))
FC_DEFINE_LANES_TILE(f64_avx512, __attribute__((target("avx512f,avx2,fma"))), double, 32,
                     (fc_tile_vec<double, FC_LANES_MR, 4, 8>))
#endif

/* The channel-lanes tile of the active level: KB (output channels per tile)
 * and the function, per dtype; KB = 0 where the level has none. */
struct fc_lanes_table {
    int kb_f32, kb_f64;
    void (*tile_f32)(FC_LANES_ARGS(float));
    void (*tile_f64)(FC_LANES_ARGS(double));
};
static fc_lanes_table fc_lanes_active = {0, 0, NULL, NULL};

/* ------------------------------------------------------------------------ */
/* Run-time selection.                                                      */

struct fc_dispatch_table {
    int isa;
    int mr_f32, nr_f32, mr_f64, nr_f64;
    fc_tile_f32_fn tile_f32;
    fc_tile_f64_fn tile_f64;
    fc_tile_indirect_f32_fn tile_indirect_f32;
    fc_tile_indirect_f64_fn tile_indirect_f64;
    /* Winograd's GEMM tiles (same NR as the direct ones). */
    int gemm_mr_f32, gemm_mr_f64;
    fc_gemm_f32_fn gemm_f32;
    fc_gemm_f64_fn gemm_f64;
    fc_gemm_f32_fn gemm_narrow_f32;
    fc_gemm_f64_fn gemm_narrow_f64;
};

#define FC_TABLE(ISA, MR32, NR32, MR64, NR64, S32, S64)                        \
    FC_TABLE_GEMM(ISA, MR32, NR32, MR64, NR64, S32, S64, MR32, S32)
#define FC_TABLE_GEMM(ISA, MR32, NR32, MR64, NR64, S32, S64, GEMM_MR32, GEMM32) \
    {ISA, MR32, NR32, MR64, NR64, fc_tile_##S32, fc_tile_##S64,                \
     fc_tile_indirect_##S32, fc_tile_indirect_##S64, GEMM_MR32, MR64,          \
     fc_gemm_##GEMM32, fc_gemm_##S64, fc_gemm_narrow_##GEMM32, fc_gemm_narrow_##S64}

static fc_dispatch_table fc_active =
    FC_TABLE(FC_ISA_BASELINE, FC_BASELINE_F32_MR, FC_BASELINE_F32_NR, FC_BASELINE_F64_MR,
             FC_BASELINE_F64_NR, f32_baseline, f64_baseline);

/* Highest level the running CPU and OS support (the OS check matters: a
 * kernel may disable AVX-512 state; __builtin_cpu_supports reads XCR0). */
static int fc_cpu_isa(void)
{
#if FC_HAVE_X86_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return FC_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return FC_ISA_AVX2;
#endif
    return FC_ISA_BASELINE;
}

/* Use `requested` capped at what the CPU can run; returns the level in use. */
static int fc_select_isa(int requested)
{
    int level = fc_cpu_isa();
    if (requested < level) level = requested;
    fc_dispatch_table t =
        FC_TABLE(FC_ISA_BASELINE, FC_BASELINE_F32_MR, FC_BASELINE_F32_NR,
                 FC_BASELINE_F64_MR, FC_BASELINE_F64_NR, f32_baseline, f64_baseline);
#if FC_HAVE_X86_DISPATCH
    if (level == FC_ISA_AVX512) {
        fc_dispatch_table t512 = FC_TABLE_GEMM(FC_ISA_AVX512, 8, 32, 12, 16, f32_avx512,
                                               f64_avx512, 12, f32_avx512_12);
        t = t512;
    } else if (level == FC_ISA_AVX2) {
        fc_dispatch_table t2 = FC_TABLE(FC_ISA_AVX2, 6, 16, 6, 8, f32_avx2, f64_avx2);
        t = t2;
    }
#endif
    fc_active = t;
    fc_lanes_table lanes = {0, 0, NULL, NULL};
#if FC_HAVE_X86_DISPATCH
    if (t.isa == FC_ISA_AVX512) {
        fc_lanes_table l512 = {64, 32, fc_lanes_tile_f32_avx512, fc_lanes_tile_f64_avx512};
        lanes = l512;
    }
#endif
    fc_lanes_active = lanes;
    return t.isa;
}

/* Overloads so that Cython fused-type code calls one name for every dtype;
 * int64 (exact integer convolution) always runs the scalar tile. */
FC_DEFINE_DIRECT_TILES(i64, , int64_t, 8, (fc_tile_scalar<int64_t, 4, 8>))

static inline void fc_tile(FC_TILE_ARGS(float))
{ fc_active.tile_f32(kc, a, lda, b, FC_TILE_REST); }
static inline void fc_tile(FC_TILE_ARGS(double))
{ fc_active.tile_f64(kc, a, lda, b, FC_TILE_REST); }
static inline void fc_tile(FC_TILE_ARGS(int64_t)) { fc_tile_i64(kc, a, lda, b, FC_TILE_REST); }
static inline void fc_tile_indirect(FC_TILE_INDIRECT_ARGS(float))
{ fc_active.tile_indirect_f32(kc, a, lda, base, offsets, FC_TILE_REST); }
static inline void fc_tile_indirect(FC_TILE_INDIRECT_ARGS(double))
{ fc_active.tile_indirect_f64(kc, a, lda, base, offsets, FC_TILE_REST); }
static inline void fc_tile_indirect(FC_TILE_INDIRECT_ARGS(int64_t))
{ fc_tile_indirect_i64(kc, a, lda, base, offsets, FC_TILE_REST); }

static inline void fc_tile_shape(const float *, int *mr, int *nr)
{ *mr = fc_active.mr_f32; *nr = fc_active.nr_f32; }
static inline void fc_tile_shape(const double *, int *mr, int *nr)
{ *mr = fc_active.mr_f64; *nr = fc_active.nr_f64; }
static inline void fc_tile_shape(const int64_t *, int *mr, int *nr)
{ *mr = 4; *nr = 8; }

/* Winograd's GEMM tile on the A panels of fc_gemm_tile_shape, for B panels
 * of its nr or of nr / 2 (the narrow tile) tiles; ldc is that width. */
static inline void fc_gemm_tile(FC_GEMM_ARGS(float))
{
    if (ldc == fc_active.nr_f32) fc_active.gemm_f32(kc, a, b, FC_TILE_REST);
    else fc_active.gemm_narrow_f32(kc, a, b, FC_TILE_REST);
}
static inline void fc_gemm_tile(FC_GEMM_ARGS(double))
{
    if (ldc == fc_active.nr_f64) fc_active.gemm_f64(kc, a, b, FC_TILE_REST);
    else fc_active.gemm_narrow_f64(kc, a, b, FC_TILE_REST);
}
static inline void fc_gemm_tile_shape(const float *, int *mr, int *nr)
{ *mr = fc_active.gemm_mr_f32; *nr = fc_active.nr_f32; }
static inline void fc_gemm_tile_shape(const double *, int *mr, int *nr)
{ *mr = fc_active.gemm_mr_f64; *nr = fc_active.nr_f64; }

static inline void fc_lanes_tile(FC_LANES_ARGS(float))
{ fc_lanes_active.tile_f32(kc, base, k_offsets, pixel_offsets, w, c); }
static inline void fc_lanes_tile(FC_LANES_ARGS(double))
{ fc_lanes_active.tile_f64(kc, base, k_offsets, pixel_offsets, w, c); }
/* 0: no channel-lanes tile at this level (fc_lanes_tile must not be called). */
static inline int fc_lanes_width(const float *) { return fc_lanes_active.kb_f32; }
static inline int fc_lanes_width(const double *) { return fc_lanes_active.kb_f64; }

#endif /* FASTCONV_MICROKERNEL_HPP */
