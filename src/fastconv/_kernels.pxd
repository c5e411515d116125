# The C++ kernels (src/fastconv/_kernels/*.hpp) as Cython sees them: every
# `cdef extern` declaration of the compiled modules, in one place. The
# headers say what each function does; cpu_dispatch.hpp how the level in
# use is chosen (one table, owned by fastconv._cpu).

from libc.stdint cimport int64_t


# The one per-thread scratch pool (scratch.hpp, held by fastconv._cpu).
cdef extern from "cpu_dispatch.hpp" nogil:
    void *fc_scratch_acquire(int slot, size_t nbytes)
    void fc_scratch_release(int slot)
    size_t fc_scratch_peak_bytes(int reset)


cdef extern from "geometry.hpp" nogil:
    ctypedef struct fc_geometry:
        Py_ssize_t channels, height, width
        Py_ssize_t out_channels, out_h, out_w
        Py_ssize_t kernel_h, kernel_w
        Py_ssize_t stride_h, stride_w, pad_top, pad_left, dil_h, dil_w
        Py_ssize_t groups, group_in, group_out
        bint relu
    fc_geometry fc_geometry_of(Py_ssize_t channels, Py_ssize_t height, Py_ssize_t width,
                               Py_ssize_t out_channels, Py_ssize_t out_h, Py_ssize_t out_w,
                               Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                               Py_ssize_t stride_h, Py_ssize_t stride_w,
                               Py_ssize_t pad_top, Py_ssize_t pad_left,
                               Py_ssize_t dil_h, Py_ssize_t dil_w, Py_ssize_t groups,
                               int relu)


cdef extern from "planes.hpp" nogil:
    int FC_PLANE_SLACK
    Py_ssize_t fc_plane_scratch(const fc_geometry *geo, Py_ssize_t rows)


cdef extern from "rows.hpp" nogil:
    ctypedef struct fc_rows_layout:
        Py_ssize_t phase_len, channel_stride
        bint dense
    fc_rows_layout fc_rows_plan(const fc_geometry *g, Py_ssize_t out_rows,
                                Py_ssize_t out_w_padded)
    void fc_rows_fill[T](const fc_rows_layout *l, const fc_geometry *g, const T *x,
                         Py_ssize_t oh0, T *dst)
    void fc_rows_offsets(const fc_rows_layout *l, const fc_geometry *g, Py_ssize_t tap0,
                         Py_ssize_t kc, Py_ssize_t *offsets)


cdef extern from "winograd_transforms.hpp" nogil:
    int fc_wino_matrix(int m, int r, int which, double *dst)


# The entry points of the per-level kernels (through the one table).
cdef extern from "cpu_dispatch.hpp" nogil:
    ctypedef struct fc_kernel_table:
        int isa
    void fc_use_kernel_table(const fc_kernel_table *table)
    int fc_cpu_isa()

    # The direct convolution's tiles (gemm_tile.hpp).
    void fc_tile(Py_ssize_t kc, const float *a, Py_ssize_t lda, const float *b, float *c,
                 Py_ssize_t ldc, int accumulate, const float *bias)
    void fc_tile(Py_ssize_t kc, const double *a, Py_ssize_t lda, const double *b, double *c,
                 Py_ssize_t ldc, int accumulate, const double *bias)
    void fc_tile(Py_ssize_t kc, const int64_t *a, Py_ssize_t lda, const int64_t *b, int64_t *c,
                 Py_ssize_t ldc, int accumulate, const int64_t *bias)
    void fc_tile_indirect(Py_ssize_t kc, const float *a, Py_ssize_t lda, const float *base,
                          const Py_ssize_t *offsets, float *c, Py_ssize_t ldc,
                          int accumulate, const float *bias)
    void fc_tile_indirect(Py_ssize_t kc, const double *a, Py_ssize_t lda, const double *base,
                          const Py_ssize_t *offsets, double *c, Py_ssize_t ldc,
                          int accumulate, const double *bias)
    void fc_tile_indirect(Py_ssize_t kc, const int64_t *a, Py_ssize_t lda, const int64_t *base,
                          const Py_ssize_t *offsets, int64_t *c, Py_ssize_t ldc,
                          int accumulate, const int64_t *bias)
    void fc_tile_indirect_wide(Py_ssize_t kc, const float *a, Py_ssize_t lda,
                               const float *base, const Py_ssize_t *offsets, float *c,
                               Py_ssize_t ldc, int accumulate, const float *bias)
    void fc_tile_indirect_wide(Py_ssize_t kc, const double *a, Py_ssize_t lda,
                               const double *base, const Py_ssize_t *offsets, double *c,
                               Py_ssize_t ldc, int accumulate, const double *bias)
    void fc_tile_indirect_wide(Py_ssize_t kc, const int64_t *a, Py_ssize_t lda,
                               const int64_t *base, const Py_ssize_t *offsets, int64_t *c,
                               Py_ssize_t ldc, int accumulate, const int64_t *bias)
    int fc_wide_nr(const float *dtype_tag)
    int fc_wide_nr(const double *dtype_tag)
    int fc_wide_nr(const int64_t *dtype_tag)
    void fc_tile_shape(const float *dtype_tag, int *mr, int *nr)
    void fc_tile_shape(const double *dtype_tag, int *mr, int *nr)
    void fc_tile_shape(const int64_t *dtype_tag, int *mr, int *nr)

    # Winograd's GEMM tile (gemm_tile.hpp).
    void fc_gemm_tile(Py_ssize_t kc, const float *a, const float *b, float *c,
                      Py_ssize_t ldc, int accumulate, const float *bias)
    void fc_gemm_tile(Py_ssize_t kc, const double *a, const double *b, double *c,
                      Py_ssize_t ldc, int accumulate, const double *bias)
    void fc_gemm_tile_shape(const float *dtype_tag, int *mr, int *nr)
    void fc_gemm_tile_shape(const double *dtype_tag, int *mr, int *nr)

    # The channel-lanes tile (channel_lanes_tile.hpp).
    int FC_CHANNEL_LANES_PIXELS
    void fc_channel_lanes_tile(Py_ssize_t kc, const float *base, const Py_ssize_t *k_offsets,
                               const Py_ssize_t *pixel_offsets, const float *w, float *c)
    void fc_channel_lanes_tile(Py_ssize_t kc, const double *base, const Py_ssize_t *k_offsets,
                               const Py_ssize_t *pixel_offsets, const double *w, double *c)
    int fc_channel_lanes_width(const float *dtype_tag)
    int fc_channel_lanes_width(const double *dtype_tag)

    # Packing (pack.hpp) and the plane kernel (planes.hpp).
    void fc_pack_input(const fc_geometry *g, Py_ssize_t nr, const float *image,
                       Py_ssize_t tap0, Py_ssize_t kc, Py_ssize_t r0, Py_ssize_t r1,
                       Py_ssize_t pixel0, Py_ssize_t n_pixels, float *dst)
    void fc_pack_input(const fc_geometry *g, Py_ssize_t nr, const double *image,
                       Py_ssize_t tap0, Py_ssize_t kc, Py_ssize_t r0, Py_ssize_t r1,
                       Py_ssize_t pixel0, Py_ssize_t n_pixels, double *dst)
    void fc_pack_input(const fc_geometry *g, Py_ssize_t nr, const int64_t *image,
                       Py_ssize_t tap0, Py_ssize_t kc, Py_ssize_t r0, Py_ssize_t r1,
                       Py_ssize_t pixel0, Py_ssize_t n_pixels, int64_t *dst)
    void fc_plane_rows(const fc_geometry *geo, const float *x, const float *w,
                       float bias, float *out, Py_ssize_t row0, Py_ssize_t row1,
                       float *padded, int borders_ready)
    void fc_plane_rows(const fc_geometry *geo, const double *x, const double *w,
                       double bias, double *out, Py_ssize_t row0, Py_ssize_t row1,
                       double *padded, int borders_ready)
    void fc_plane_rows(const fc_geometry *geo, const int64_t *x, const int64_t *w,
                       int64_t bias, int64_t *out, Py_ssize_t row0, Py_ssize_t row1,
                       int64_t *padded, int borders_ready)

    # Winograd (winograd_transforms.hpp, winograd_gather.hpp), for tile size m
    # and filter size r.
    void fc_wino_pack_panel_m(int m, int r, const float *weight, Py_ssize_t out_channels,
                              Py_ssize_t channels, int mr, Py_ssize_t panel,
                              float *u_packed, Py_ssize_t xi_stride)
    void fc_wino_pack_panel_m(int m, int r, const double *weight, Py_ssize_t out_channels,
                              Py_ssize_t channels, int mr, Py_ssize_t panel,
                              double *u_packed, Py_ssize_t xi_stride)
    void fc_wino_gather_m(int m, int r, const fc_geometry *g, const float *channel,
                          Py_ssize_t tiles_w, Py_ssize_t tile0, Py_ssize_t n_tiles,
                          Py_ssize_t lane0, Py_ssize_t nr, float *scratch)
    void fc_wino_gather_m(int m, int r, const fc_geometry *g, const double *channel,
                          Py_ssize_t tiles_w, Py_ssize_t tile0, Py_ssize_t n_tiles,
                          Py_ssize_t lane0, Py_ssize_t nr, double *scratch)
    void fc_wino_scatter_m(int m, int r, const fc_geometry *g, const float *y, float *out_channel,
                           Py_ssize_t tiles_w, Py_ssize_t tile0,
                           Py_ssize_t n_tiles, Py_ssize_t lane0, Py_ssize_t nr)
    void fc_wino_scatter_m(int m, int r, const fc_geometry *g, const double *y, double *out_channel,
                           Py_ssize_t tiles_w, Py_ssize_t tile0,
                           Py_ssize_t n_tiles, Py_ssize_t lane0, Py_ssize_t nr)
    void fc_wino_input(int m, int r, Py_ssize_t nr, float *scratch, float *v, Py_ssize_t xi_stride)
    void fc_wino_input(int m, int r, Py_ssize_t nr, double *scratch, double *v, Py_ssize_t xi_stride)
    int fc_wino_output(int m, int r, const float *m_k, Py_ssize_t xi_stride, float bias,
                       Py_ssize_t nr, float *scratch, int relu)
    int fc_wino_output(int m, int r, const double *m_k, Py_ssize_t xi_stride, double bias,
                       Py_ssize_t nr, double *scratch, int relu)
