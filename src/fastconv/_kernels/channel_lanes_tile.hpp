/*
 * The channel-lanes tile: output channels in the vector lanes, pixels
 * broadcast (the other way round from gemm_tile.hpp's pixel panels).
 *
 * On a small image the pixel panels are mostly empty (49 pixels of a 7x7
 * image fill 64 lanes) while the weights stream from memory. This tile adds
 * FC_CHANNEL_LANES_PIXELS pixels x KB output channels: KB (the tile's
 * channel-lanes width) output channels of weight rows w[kc][KB] into
 * c[FC_CHANNEL_LANES_PIXELS][KB], with the pixels read from a zero-padded
 * image. It is fc_tile_vec (gemm_tile.hpp) on the fc_pixel_a accessor.
 * AVX-512 only (cpu_kernels.hpp): with 16 registers AVX2 fits 7 x 1, which
 * ran 0.7-1.06x the pixel panels.
 */
#ifndef FASTCONV_CHANNEL_LANES_TILE_HPP
#define FASTCONV_CHANNEL_LANES_TILE_HPP

#include "gemm_tile.hpp"

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

/* Pixels per channel-lanes tile: every ResNet/VGG image side is a multiple
 * of 7. */
#define FC_CHANNEL_LANES_PIXELS 7
#define FC_CHANNEL_LANES_ARGS(T)                                               \
    fc_index kc, const T *base, const fc_index *k_offsets,                     \
        const fc_index *pixel_offsets, const T *w, T *c

typedef void (*fc_channel_lanes_f32_fn)(FC_CHANNEL_LANES_ARGS(float));
typedef void (*fc_channel_lanes_f64_fn)(FC_CHANNEL_LANES_ARGS(double));

/* `KB` output channels in NV vectors of VLEN: KERNEL is
 * fc_tile_vec<T, FC_CHANNEL_LANES_PIXELS, NV, VLEN>. */
#define FC_DEFINE_CHANNEL_LANES_TILE(SUFFIX, ATTR, T, KB, KERNEL)              \
    ATTR static void fc_channel_lanes_tile_##SUFFIX(FC_CHANNEL_LANES_ARGS(T))  \
    { KERNEL(kc, (fc_pixel_a<T>{base, k_offsets, pixel_offsets}),               \
             (fc_packed_rows<T, KB>{w}), c, KB, 1, (const T *)NULL); }

#endif /* FASTCONV_CHANNEL_LANES_TILE_HPP */
