# cython: language_level=3
"""The instruction-set level of the kernels: one state for the whole package
(private).

The compiled kernels exist for several instruction-set levels (baseline,
AVX2, AVX-512). This module holds all of them and the one dispatch table
through which every extension calls them (``_kernels/cpu_kernels.hpp``);
:mod:`fastconv._direct` and :mod:`fastconv._winograd` point at that table
when they are imported (``kernel_table``, cimported from ``_cpu.pxd``), so
:func:`select_isa` switches what both run, at once. :mod:`fastconv._isa`
selects the level once, at import.
"""

from ._kernels cimport fc_cpu_isa, fc_kernel_table


cdef extern from "cpu_kernels.hpp" nogil:
    fc_kernel_table fc_kernel_table_active
    int fc_select_kernels(int requested)


ISA_LEVELS = ("baseline", "avx2", "avx512")


cdef const fc_kernel_table *kernel_table() noexcept nogil:
    """The one table of the kernels of the level in use."""
    return &fc_kernel_table_active


cdef int isa_level() noexcept nogil:
    """The level in use, an index into ISA_LEVELS."""
    return fc_kernel_table_active.isa


def cpu_isa():
    """Highest instruction-set level the running CPU (and OS) supports."""
    return ISA_LEVELS[fc_cpu_isa()]


def active_isa():
    """The instruction-set level of the kernels in use."""
    return ISA_LEVELS[isa_level()]


def select_isa(str name):
    """Use the kernels of level ``name`` (capped at :func:`cpu_isa`) in every
    extension. Returns the level now in use."""
    return ISA_LEVELS[fc_select_kernels(ISA_LEVELS.index(name))]
