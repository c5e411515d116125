# The one ISA state of fastconv (see _cpu.pyx): other extensions cimport
# these to reach the one kernel table.

from ._kernels cimport fc_kernel_table

cdef const fc_kernel_table *kernel_table() noexcept nogil
cdef int isa_level() noexcept nogil
