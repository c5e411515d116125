/*
 * The geometry of one convolution call, shared by every path (packing, row
 * panels, the plane kernel, Winograd): the shapes and hyperparameters that
 * PyTorch's conv2d takes, per image. Blocking (tile widths, block sizes) is
 * each path's own and is not here.
 *
 * Padding is given by its top and left sizes; the bottom and right ones
 * follow from the output size. Declared for Cython in fastconv/_kernels.pxd.
 */
#ifndef FASTCONV_GEOMETRY_HPP
#define FASTCONV_GEOMETRY_HPP

#include "platform.hpp"

struct fc_geometry {
    fc_index channels, height, width;       /* input C, H, W */
    fc_index out_channels, out_h, out_w;    /* output K, H_out, W_out */
    fc_index kernel_h, kernel_w;
    fc_index stride_h, stride_w, pad_top, pad_left, dil_h, dil_w;
    fc_index groups, group_in, group_out;   /* C / groups, K / groups */
    int relu;                               /* max(y, 0) on the result */
};

/* The geometry of a call on (N, C, H, W) input and (N, K, H_out, W_out)
 * output; the group sizes follow from C, K and groups. */
static inline fc_geometry fc_geometry_of(fc_index channels, fc_index height, fc_index width,
                                         fc_index out_channels, fc_index out_h, fc_index out_w,
                                         fc_index kernel_h, fc_index kernel_w,
                                         fc_index stride_h, fc_index stride_w,
                                         fc_index pad_top, fc_index pad_left,
                                         fc_index dil_h, fc_index dil_w, fc_index groups,
                                         int relu)
{
    fc_geometry g;
    g.channels = channels, g.height = height, g.width = width;
    g.out_channels = out_channels, g.out_h = out_h, g.out_w = out_w;
    g.kernel_h = kernel_h, g.kernel_w = kernel_w;
    g.stride_h = stride_h, g.stride_w = stride_w;
    g.pad_top = pad_top, g.pad_left = pad_left;
    g.dil_h = dil_h, g.dil_w = dil_w;
    g.groups = groups;
    g.group_in = channels / groups, g.group_out = out_channels / groups;
    g.relu = relu;
    return g;
}

#endif /* FASTCONV_GEOMETRY_HPP */
