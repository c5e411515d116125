# Stopping a long call when a signal arrives (Ctrl-C): the C side and why
# are in _kernels/interrupt.hpp. A driver calls start_interrupt_checks
# before its parallel region, skips work items once fc_interrupted says so,
# and calls raise_if_interrupted after the region.

cdef extern from "interrupt.hpp" nogil:
    ctypedef struct fc_interrupt:
        pass
    void fc_interrupt_init(fc_interrupt *s, int armed)
    int fc_interrupted(fc_interrupt *s)
    int fc_interrupt_stopped(const fc_interrupt *s)


cdef inline int start_interrupt_checks(fc_interrupt *s) except -1:
    """Arm the checks where signal handlers can run: Python's main thread."""
    import threading
    fc_interrupt_init(s, threading.get_ident() == threading.main_thread().ident)
    return 0


cdef inline int raise_if_interrupted(const fc_interrupt *s) except -1:
    """Raise the exception of the signal handler that stopped the call."""
    if fc_interrupt_stopped(s):
        return -1  # the handler's exception is set
    return 0
