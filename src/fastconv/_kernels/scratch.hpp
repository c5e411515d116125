/*
 * Scratch memory of the kernels: 64-byte aligned allocation (portable: no
 * aligned_alloc on MSVC) and the per-thread scratch pool that keeps each
 * thread's buffers from one call to the next.
 *
 * The pool is one for the package: only fastconv._cpu compiles it (through
 * cpu_kernels.hpp), and every extension reaches it through the kernel
 * table's fc_scratch_acquire / fc_scratch_release (cpu_dispatch.hpp), so a
 * thread's buffers serve every driver and one peak counts them all.
 */
#ifndef FASTCONV_SCRATCH_HPP
#define FASTCONV_SCRATCH_HPP

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

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
static size_t fc_scratch_pool_peak_bytes(int reset)
{
    return reset ? fc_scratch_peak.exchange(0) : fc_scratch_peak.load();
}

/* At least `nbytes` (64-byte aligned) in slot `slot`, or NULL. */
static void *fc_scratch_pool_acquire(int slot, size_t nbytes)
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
static void fc_scratch_pool_release(int slot)
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

#endif /* FASTCONV_SCRATCH_HPP */
