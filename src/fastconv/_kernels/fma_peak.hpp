/*
 * The machine's multiply-add peak, measured: the physical limit the kernels'
 * GFLOP/s are reported against (fastconv._cpu.fma_peak, the bench command).
 *
 * A loop of multiply-adds written with intrinsics or vector extensions does
 * not measure it: the compiler sees identical accumulator chains and merges
 * them into one, so "peak" comes out several times too high. These loops are
 * inline assembly, which the compiler cannot fold: 12 independent
 * accumulators (enough to cover the FMA latency of every x86 core with two
 * FMA pipes), 12 multiply-add instructions per iteration, the count checked
 * in the built module by tests/test_peak.py (objdump).
 *
 * Per level, in float32 lanes:
 *   avx512    vfmadd231ps on zmm (16 lanes, 2 FLOP each)
 *   avx2      vfmadd231ps on ymm (8 lanes, 2 FLOP each)
 *   baseline  SSE2 has no FMA: mulps and addps on xmm, 6 + 6 independent
 *             chains (4 lanes, 1 FLOP each)
 * Only x86-64 with GCC or Clang has them; elsewhere fc_fma_peak_flop returns
 * 0 (not measured).
 */
#ifndef FASTCONV_FMA_PEAK_HPP
#define FASTCONV_FMA_PEAK_HPP

#include "platform.hpp"

#if FC_HAVE_X86_DISPATCH

/* The FMA loop on R ("zmm" or "ymm") registers: 12 accumulators from zero,
 * each iteration one vfmadd231ps into each of them. */
#define FC_ZERO(R, N) "vxorps %%" R #N ",%%" R #N ",%%" R #N "\n"
#define FC_FMA(R, N) "vfmadd231ps %%" R "14,%%" R "15,%%" R #N "\n"
#define FC_FMA_LOOP_ASM(R)                                                         \
    FC_ZERO(R, 0) FC_ZERO(R, 1) FC_ZERO(R, 2) FC_ZERO(R, 3) FC_ZERO(R, 4)          \
    FC_ZERO(R, 5) FC_ZERO(R, 6) FC_ZERO(R, 7) FC_ZERO(R, 8) FC_ZERO(R, 9)          \
    FC_ZERO(R, 10) FC_ZERO(R, 11) FC_ZERO(R, 14) FC_ZERO(R, 15)                    \
    "1:\n"                                                                        \
    FC_FMA(R, 0) FC_FMA(R, 1) FC_FMA(R, 2) FC_FMA(R, 3) FC_FMA(R, 4) FC_FMA(R, 5)  \
    FC_FMA(R, 6) FC_FMA(R, 7) FC_FMA(R, 8) FC_FMA(R, 9) FC_FMA(R, 10)              \
    FC_FMA(R, 11)                                                                  \
    "dec %0\n jnz 1b\n vzeroupper\n"
#define FC_FMA_CLOBBERS                                                            \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",   \
        "xmm10", "xmm11", "xmm14", "xmm15", "cc"

FC_TARGET_AVX512 __attribute__((noinline)) static void fc_fma_loop_avx512(long iterations)
{
    __asm__ volatile(FC_FMA_LOOP_ASM("zmm") : "+r"(iterations) : : FC_FMA_CLOBBERS);
}

FC_TARGET_AVX2 __attribute__((noinline)) static void fc_fma_loop_avx2(long iterations)
{
    __asm__ volatile(FC_FMA_LOOP_ASM("ymm") : "+r"(iterations) : : FC_FMA_CLOBBERS);
}

__attribute__((noinline)) static void fc_fma_loop_baseline(long iterations)
{
    __asm__ volatile(
        "xorps %%xmm0,%%xmm0\n xorps %%xmm1,%%xmm1\n xorps %%xmm2,%%xmm2\n"
        "xorps %%xmm3,%%xmm3\n xorps %%xmm4,%%xmm4\n xorps %%xmm5,%%xmm5\n"
        "xorps %%xmm6,%%xmm6\n xorps %%xmm7,%%xmm7\n xorps %%xmm8,%%xmm8\n"
        "xorps %%xmm9,%%xmm9\n xorps %%xmm10,%%xmm10\n xorps %%xmm11,%%xmm11\n"
        "xorps %%xmm14,%%xmm14\n"
        "1:\n"
        "mulps %%xmm14,%%xmm0\n addps %%xmm14,%%xmm1\n mulps %%xmm14,%%xmm2\n"
        "addps %%xmm14,%%xmm3\n mulps %%xmm14,%%xmm4\n addps %%xmm14,%%xmm5\n"
        "mulps %%xmm14,%%xmm6\n addps %%xmm14,%%xmm7\n mulps %%xmm14,%%xmm8\n"
        "addps %%xmm14,%%xmm9\n mulps %%xmm14,%%xmm10\n addps %%xmm14,%%xmm11\n"
        "dec %0\n jnz 1b\n"
        : "+r"(iterations)
        :
        : FC_FMA_CLOBBERS);
}

/* FLOP of one loop iteration at `level`. */
static inline double fc_fma_peak_flop(int level)
{
    return level == FC_ISA_AVX512 ? 12.0 * 16 * 2 : level == FC_ISA_AVX2 ? 12.0 * 8 * 2 : 12.0 * 4;
}

/* Run `iterations` of the loop of `level` (which the CPU must support). */
static inline void fc_fma_loop(int level, long iterations)
{
    if (level == FC_ISA_AVX512) fc_fma_loop_avx512(iterations);
    else if (level == FC_ISA_AVX2) fc_fma_loop_avx2(iterations);
    else fc_fma_loop_baseline(iterations);
}

#else

static inline double fc_fma_peak_flop(int) { return 0.0; }
static inline void fc_fma_loop(int, long) {}

#endif /* FC_HAVE_X86_DISPATCH */

#endif /* FASTCONV_FMA_PEAK_HPP */
