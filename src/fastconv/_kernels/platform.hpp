/*
 * What the compiler and target offer the kernels: the index type, GNU vector
 * extensions, x86 run-time dispatch, and the instruction-set levels.
 *
 * Every kernel header includes this one. The kernels are generic templates
 * compiled once per level through GCC/Clang `target` attributes
 * (FC_TARGET_AVX2, FC_TARGET_AVX512), so the default build needs no -march
 * flag and a wheel runs on any x86-64 CPU; cpu_dispatch.hpp chooses the level
 * at run time. Compilers without GNU vector extensions (MSVC) get portable
 * scalar kernels only; FASTCONV_NO_VECTOR_EXTENSIONS selects those on GCC and
 * Clang too (CXXFLAGS=-DFASTCONV_NO_VECTOR_EXTENSIONS), to test that path.
 */
#ifndef FASTCONV_PLATFORM_HPP
#define FASTCONV_PLATFORM_HPP

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

typedef std::ptrdiff_t fc_index;

/* Instruction-set levels, in the order of fastconv._cpu.ISA_LEVELS. */
enum fc_isa { FC_ISA_BASELINE = 0, FC_ISA_AVX2 = 1, FC_ISA_AVX512 = 2 };

#if (defined(__GNUC__) || defined(__clang__)) && !defined(FASTCONV_NO_VECTOR_EXTENSIONS)
#define FC_HAVE_VECTOR_EXTENSIONS 1
#define FC_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define FC_HAVE_VECTOR_EXTENSIONS 0
#define FC_ALWAYS_INLINE inline
#endif

/* A function GCC must not auto-vectorise (where its gathers lose to scalar
 * code); Clang and MSVC take the function as it is. */
#if defined(__GNUC__) && !defined(__clang__)
#define FC_SCALAR_LOOPS __attribute__((optimize("no-tree-vectorize")))
#else
#define FC_SCALAR_LOOPS
#endif

#if FC_HAVE_VECTOR_EXTENSIONS && (defined(__x86_64__) || defined(_M_X64))
#define FC_HAVE_X86_DISPATCH 1
#define FC_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define FC_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
#define FC_HAVE_X86_DISPATCH 0
#endif

#endif /* FASTCONV_PLATFORM_HPP */
