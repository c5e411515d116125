"""asv benchmarks of ``fastconv.conv2d``: speed, memory and accuracy.

* ``Conv2d``: ``time_conv2d`` (the call) and ``track_gflops`` (effective
  GFLOP/s) over the ResNet-50 layers (3x3, strided 3x3, 1x1), each algorithm,
  dtype and thread count.
* ``Conv2dLong``: the same on the VGG-16 3x3 layers (3.7 GFLOP each), the
  long cases: fewer samples, one round. Leave them out of a quick check with
  ``asv run --quick -b '^(?!.*Long)'``.
* ``Conv2dLargeKernel``: the large-kernel layers (7x7 to 31x31, where the
  FFT path pays), direct, FFT and auto, float32.
* ``Memory``: ``peakmem_conv2d`` beside ``peakmem_reference``, which
  allocates only what every run holds (input, weight, the output): the
  difference is the algorithm's workspace and packed weights.
* ``Accuracy``: ``track_max_error``, the maximum error of each algorithm
  against a float64 reference, relative to ``max(conv(|x|, |w|))``.

Parameter combinations an algorithm or an older fastconv cannot run (Winograd
on a 1x1 or strided layer, Winograd before it existed) raise
NotImplementedError in ``setup``, asv's way of skipping them.
"""

import numpy as np

from .common import (ALGORITHMS, ALL_LAYERS, DTYPES, LARGE_KERNEL_ALGORITHMS,
                     LARGE_KERNEL_LAYERS, LAYERS, LONG_LAYERS, THREADS, convolve, data,
                     reference, require, timing)


class _Case:
    """Set-up shared by the classes: the layer's data, or a skip."""

    param_names = ["layer", "algorithm", "dtype"]
    timeout = 120

    def setup(self, layer, algorithm, dtype, *num_threads):
        self.layer = {**ALL_LAYERS, **LARGE_KERNEL_LAYERS}[layer]
        require(self.layer, algorithm)
        self.x, self.w = data(self.layer, dtype)


class _Speed(_Case):
    """Time and GFLOP/s of one ``conv2d`` call; subclasses set the layers."""

    param_names = _Case.param_names + ["num_threads"]

    def time_conv2d(self, layer, algorithm, dtype, num_threads):
        convolve(self.layer, self.x, self.w, algorithm, num_threads)

    def track_gflops(self, layer, algorithm, dtype, num_threads):
        seconds = timing.best_time(lambda: convolve(self.layer, self.x, self.w, algorithm,
                                                    num_threads))
        return self.layer.flops / seconds / 1e9

    track_gflops.unit = "GFLOP/s"


class Conv2d(_Speed):
    """ResNet-50 layers: a few milliseconds a call."""

    params = [list(LAYERS), ALGORITHMS, DTYPES, THREADS]
    repeat = (5, 20, 4.0)


class Conv2dLong(_Speed):
    """VGG-16 layers, the long cases (up to ~0.2 s a call): fewer samples."""

    params = [list(LONG_LAYERS), ALGORITHMS, DTYPES, THREADS]
    rounds = 1
    repeat = (3, 6, 5.0)


class Conv2dLargeKernel(_Speed):
    """7x7 to 31x31 kernels, float32: the direct kernel against the FFT."""

    params = [list(LARGE_KERNEL_LAYERS), LARGE_KERNEL_ALGORITHMS, ["float32"], THREADS]
    rounds = 1
    repeat = (3, 6, 5.0)


class Memory(_Case):
    """Peak memory of a process running one ``conv2d`` call, against a
    baseline that holds only the input, weight and output."""

    params = [list(ALL_LAYERS), ALGORITHMS, DTYPES]

    def peakmem_conv2d(self, layer, algorithm, dtype):
        convolve(self.layer, self.x, self.w, algorithm)

    def peakmem_reference(self, layer, algorithm, dtype):
        np.ones(self.layer.output_shape, dtype)


class Accuracy(_Case):
    """Maximum error of each algorithm against float64 (independent of the
    thread count: fastconv's results are bit-identical for any)."""

    params = [list(ALL_LAYERS), ALGORITHMS, DTYPES]

    def track_max_error(self, layer, algorithm, dtype):
        result = convolve(self.layer, self.x, self.w, algorithm)
        exact = reference.reference_conv2d(self.layer, self.x, self.w)
        scale = reference.error_scale(self.layer, self.x, self.w)
        return reference.relative_error(result, exact, scale)

    track_max_error.unit = "relative error"
