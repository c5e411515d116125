/*
 * Stopping a long call when a signal arrives (Ctrl-C).
 *
 * The kernels run without the GIL, so Python's signal handlers (the one that
 * raises KeyboardInterrupt included) would only run when the call returns,
 * seconds later for a large batch. Between work items, the calling thread
 * (OpenMP thread 0 of its team) looks for signals every
 * FC_INTERRUPT_INTERVAL seconds, taking the GIL for that moment only; if a
 * handler raised, every thread skips its remaining items, the output is left
 * partly written, and the driver raises the handler's exception. Only a call
 * from Python's main thread looks, since no other thread runs handlers
 * (PyErr_CheckSignals does nothing there), and taking the GIL from a thread
 * that cannot use it would only wait for other Python threads.
 * Cost: thread 0 reads the clock about once a millisecond (every `stride`
 * work items, adapted as it goes: items last from a tenth of a microsecond,
 * a small depthwise plane, to milliseconds, and a clock read per item took
 * 17% of a 512-channel 14x14 depthwise call), and a GIL round trip per
 * interval.
 */
#ifndef FASTCONV_INTERRUPT_HPP
#define FASTCONV_INTERRUPT_HPP

#include <Python.h>

#include <atomic>
#include <chrono>
#ifdef _OPENMP
#include <omp.h>
#endif

#define FC_INTERRUPT_INTERVAL 0.1

struct fc_interrupt {
    std::atomic<int> stop;  /* a handler raised: the call ends */
    int armed;              /* the caller is Python's main thread */
    /* Thread 0's alone: */
    long stride;            /* work items between clock reads */
    long countdown;         /* items to the next clock read */
    double last_read;       /* steady clock seconds */
    double next_check;      /* when it looks for signals next */
};

static inline double fc_steady_seconds(void)
{
    return std::chrono::duration<double>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}

/* Before the parallel region, by the calling thread. */
static inline void fc_interrupt_init(fc_interrupt *s, int armed)
{
    s->stop.store(0, std::memory_order_relaxed);
    s->armed = armed;
    s->stride = s->countdown = 1;
    s->last_read = fc_steady_seconds();
    s->next_check = s->last_read + FC_INTERRUPT_INTERVAL;
}

/* Between work items, by any thread of the region, without the GIL:
 * whether the call is to stop. A handler's exception stays set in the
 * calling thread's state until the driver raises it. */
static inline int fc_interrupted(fc_interrupt *s)
{
    if (s->stop.load(std::memory_order_relaxed)) return 1;
#ifdef _OPENMP
    if (omp_get_thread_num() != 0) return 0;
#endif
    if (!s->armed || --s->countdown > 0) return 0;
    const double now = fc_steady_seconds();
    if (now - s->last_read < 1e-3 && s->stride < (1L << 20))
        s->stride *= 2;
    else if (now - s->last_read > 1e-2 && s->stride > 1)
        s->stride /= 2;
    s->countdown = s->stride;
    s->last_read = now;
    if (now < s->next_check) return 0;
    s->next_check = now + FC_INTERRUPT_INTERVAL;
    PyGILState_STATE gil = PyGILState_Ensure();
    const int raised = PyErr_CheckSignals() < 0;
    PyGILState_Release(gil);
    if (raised) s->stop.store(1, std::memory_order_relaxed);
    return raised;
}

/* After the region: whether a handler raised (its exception is set). */
static inline int fc_interrupt_stopped(const fc_interrupt *s)
{
    return s->stop.load(std::memory_order_relaxed);
}

#endif
