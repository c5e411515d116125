"""Layer shapes, test data and the float64 reference shared by the asv suite.

The layer tables, the timing and the reference come from
``src/fastconv/_benchmarking/`` of this source tree, loaded by file path, not
imported from the installed fastconv: asv runs this (current) suite against
older commits too, whose fastconv has no ``_benchmarking``. Those three files
import nothing from fastconv, and nothing here may depend on the fastconv
version beyond ``fastconv.conv2d``.
"""

import functools
import importlib.util
import pathlib
import sys

import numpy as np

import fastconv

_SHARED = pathlib.Path(__file__).resolve().parents[1] / "src" / "fastconv" / "_benchmarking"


def _load_shared(name):
    """``src/fastconv/_benchmarking/<name>.py`` of this tree, as a module."""
    module_name = f"_fastconv_benchmarking_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, _SHARED / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # before running it: dataclasses look it up
        spec.loader.exec_module(module)
    return sys.modules[module_name]


layers = _load_shared("layers")
timing = _load_shared("timing")
reference = _load_shared("reference")

#: Layers of a few milliseconds each: ResNet-50's 3x3 layers, its strided
#: 3x3 (the first of conv3_x) and a 1x1 bottleneck. The keys are asv's
#: parameter values: renaming one starts its history anew.
LAYERS = dict(zip(
    ["resnet50 conv2_x 3x3 (1,64,64,56)", "resnet50 conv3_x 3x3 (1,128,128,28)",
     "resnet50 conv4_x 3x3 (1,256,256,14)", "resnet50 conv5_x 3x3 (1,512,512,7)",
     "resnet50 3x3 stride 2 (1,128,128,56)", "resnet50 1x1 (1,256,64,56)"],
    layers.RESNET50_3X3 + (layers.RESNET50_STRIDED, layers.RESNET50_1X1), strict=True))
#: The long cases: VGG-16's 3x3 layers, 3.7 GFLOP each (8x a ResNet layer).
LONG_LAYERS = dict(zip(
    ["vgg16 conv2 3x3 (1,128,128,112)", "vgg16 conv3 3x3 (1,256,256,56)",
     "vgg16 conv4 3x3 (1,512,512,28)"], layers.VGG16_3X3, strict=True))
#: Large kernels, where the FFT path pays (the bench's --layers large-kernel).
LARGE_KERNEL_LAYERS = {layer.label: layer for layer in getattr(layers, "LARGE_KERNEL_LAYERS", ())}
ALL_LAYERS = {**LAYERS, **LONG_LAYERS}

#: The algorithms tracked: the direct kernel, each Winograd tile, and "auto".
ALGORITHMS = ["direct", "winograd2", "winograd4", "winograd6", "auto"]
#: On the large kernels: the direct kernel, the FFT and "auto".
LARGE_KERNEL_ALGORITHMS = ["direct", "fft", "auto"]
DTYPES = ["float32", "float64"]
THREADS = [1, 2]


@functools.lru_cache(maxsize=4)
def data(layer, dtype):
    """``layer.data(dtype)``, cached: asv re-runs ``setup`` before every
    timing sample."""
    return layer.data(dtype)


def convolve(layer, x, w, algorithm="auto", num_threads=None):
    """``fastconv.conv2d`` of ``x`` and ``w`` with the geometry of ``layer``
    (stride and padding only: an older fastconv may lack the others)."""
    return fastconv.conv2d(x, w, stride=layer.stride, padding=layer.padding,
                           algorithm=algorithm, num_threads=num_threads)


@functools.lru_cache(maxsize=None)
def _unsupported(kernel, stride, padding, algorithm):
    tiny = np.zeros((1, 1, kernel + 2, kernel + 2))
    try:
        fastconv.conv2d(tiny, np.zeros((1, 1, kernel, kernel)), stride=stride,
                        padding=padding, algorithm=algorithm)
    except (ValueError, TypeError) as exc:
        return f"{algorithm!r} cannot run this layer with this fastconv: {exc}"
    return None


def require(layer, algorithm):
    """Raise NotImplementedError (asv: skip) when the installed fastconv
    cannot run ``algorithm`` on ``layer`` (Winograd on a 1x1 or strided
    layer, or an algorithm an older commit lacks)."""
    reason = _unsupported(layer.kernel, layer.stride, layer.padding, algorithm)
    if reason:
        raise NotImplementedError(reason)
