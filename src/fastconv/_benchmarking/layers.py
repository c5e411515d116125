"""Convolution layers to benchmark: :class:`Layer`, the named tables and the
``--layers`` parser.

Imports nothing from fastconv (see the package docstring): the asv suite
loads this file from the source tree.
"""

import dataclasses
import itertools
from typing import Optional

import numpy as np

__all__ = ["Layer", "LAYER_SYNTAX", "parse_layers", "RESNET50_3X3", "RESNET50_STRIDED",
           "RESNET50_1X1", "VGG16_3X3", "DEFAULT_LAYERS", "THREAD_SCALING_LAYERS",
           "CHANNEL_LANES_LAYERS", "SMALL_CALL_LAYERS", "LARGE_KERNEL_LAYERS",
           "RESNET50_LAYERS", "LAYER_SETS", "distinct_layers", "auto_rule_grid"]

LAYER_SYNTAX = "N,C,K,H[,k[,stride[,pad[,groups[,dilation]]]]]"


@dataclasses.dataclass(frozen=True)
class Layer:
    """A square convolution layer: ``N x C x H x H`` input, ``K`` filters of
    ``kernel x kernel``.

    Parameters
    ----------
    batch, in_channels, out_channels, size : int
        ``N``, ``C``, ``K`` and the input height = width ``H``.
    kernel, stride : int, default=3, 1
    padding : int, optional
        Zero padding on each side; default ``kernel // 2``.
    groups : int, default=1
        Must divide ``C`` and ``K``.
    dilation : int, default=1
    name : str, optional
        A human-readable name (e.g. ``"ResNet-50 conv3_x"``).
    """

    batch: int
    in_channels: int
    out_channels: int
    size: int
    kernel: int = 3
    stride: int = 1
    padding: Optional[int] = None
    groups: int = 1
    dilation: int = 1
    name: str = ""

    def __post_init__(self):
        if self.padding is None:
            object.__setattr__(self, "padding", self.kernel // 2)
        self._validate()

    def _validate(self):
        fields = dataclasses.asdict(self)
        low = {name: value for name, value in fields.items()
               if name != "name" and value < (0 if name == "padding" else 1)}
        if low:
            raise ValueError(f"layer {self.spec}: {', '.join(low)} must be >= 1 "
                             "(padding >= 0)")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"layer {self.spec}: groups={self.groups} must divide C and K")
        if self.output_size < 1:
            raise ValueError(f"layer {self.spec}: the kernel is larger than the padded input")

    @property
    def output_size(self):
        """Output height = width."""
        span = self.dilation * (self.kernel - 1) + 1
        return (self.size + 2 * self.padding - span) // self.stride + 1

    @property
    def macs(self):
        """Multiply-adds of one forward pass."""
        return (self.batch * self.out_channels * (self.in_channels // self.groups)
                * self.kernel ** 2 * self.output_size ** 2)

    @property
    def flops(self):
        """Effective FLOP: ``2 * N * K * (C/groups) * kH * kW * Ho * Wo``."""
        return 2 * self.macs

    @property
    def input_shape(self):
        """(N, C, H, H)."""
        return (self.batch, self.in_channels, self.size, self.size)

    @property
    def weight_shape(self):
        """(K, C // groups, k, k)."""
        return (self.out_channels, self.in_channels // self.groups, self.kernel, self.kernel)

    @property
    def output_shape(self):
        """(N, K, Ho, Ho)."""
        return (self.batch, self.out_channels, self.output_size, self.output_size)

    @property
    def spec(self):
        """The layer in ``--layers`` syntax, trailing defaults left out."""
        values = [self.batch, self.in_channels, self.out_channels, self.size,
                  self.kernel, self.stride, self.padding, self.groups, self.dilation]
        defaults = [None] * 4 + [3, 1, self.kernel // 2, 1, 1]
        while len(values) > 4 and values[-1] == defaults[len(values) - 1]:
            values.pop()
        return ",".join(map(str, values))

    @property
    def label(self):
        """``name (spec)``, or the spec alone."""
        return f"{self.name} ({self.spec})" if self.name else self.spec

    def conv_kwargs(self):
        """stride, padding, groups and dilation as keyword arguments of a conv2d."""
        return {"stride": self.stride, "padding": self.padding, "groups": self.groups,
                "dilation": self.dilation}

    def with_batch(self, batch):
        """This layer with ``N = batch``."""
        return dataclasses.replace(self, batch=batch)

    def data(self, dtype, seed=0):
        """Standard-normal ``(input, weight)`` of ``dtype`` (fixed seed), drawn
        in ``dtype`` (no float64 temporary)."""
        rng = np.random.default_rng(seed)
        return (rng.standard_normal(self.input_shape, dtype=dtype),
                rng.standard_normal(self.weight_shape, dtype=dtype))


def parse_layers(text):
    """Layers from ``--layers`` text.

    Parameters
    ----------
    text : str
        Layers as ``N,C,K,H[,k[,stride[,pad[,groups[,dilation]]]]]`` separated by spaces
        or semicolons, e.g. ``"1,64,64,56; 8,3,64,224,7,2,3"``, or the name of
        a table of :data:`LAYER_SETS`.

    Returns
    -------
    tuple of Layer

    Raises
    ------
    ValueError
        For a malformed or inconsistent layer; the message names it.
    """
    if text.strip() in LAYER_SETS:
        return LAYER_SETS[text.strip()]
    layers = []
    for item in text.replace(";", " ").split():
        fields = item.split(",")
        if not 4 <= len(fields) <= 9:
            raise ValueError(f"layer {item!r}: expected {LAYER_SYNTAX}")
        try:
            values = [int(v) for v in fields]
        except ValueError:
            raise ValueError(f"layer {item!r}: values must be integers ({LAYER_SYNTAX})") from None
        layers.append(Layer(*values))
    if not layers:
        raise ValueError(f"no layer given; expected {LAYER_SYNTAX}")
    return tuple(layers)


# -- the named tables ------------------------------------------------------------

#: ResNet-50's 3x3 layers at batch 1 (stride 1, padding 1).
RESNET50_3X3 = (
    Layer(1, 64, 64, 56, name="ResNet-50 conv2_x"),
    Layer(1, 128, 128, 28, name="ResNet-50 conv3_x"),
    Layer(1, 256, 256, 14, name="ResNet-50 conv4_x"),
    Layer(1, 512, 512, 7, name="ResNet-50 conv5_x"),
)
#: ResNet-50's strided 3x3 (the first of conv3_x) and a 1x1 bottleneck.
RESNET50_STRIDED = Layer(1, 128, 128, 56, stride=2, name="ResNet-50 conv3_x stride 2")
RESNET50_1X1 = Layer(1, 256, 64, 56, kernel=1, name="ResNet-50 1x1")
#: VGG-16's 3x3 layers at batch 1: 3.7 GFLOP each (8x a ResNet layer).
VGG16_3X3 = (
    Layer(1, 128, 128, 112, name="VGG-16 conv2"),
    Layer(1, 256, 256, 56, name="VGG-16 conv3"),
    Layer(1, 512, 512, 28, name="VGG-16 conv4"),
)
#: ``python -m fastconv bench`` without ``--layers``.
DEFAULT_LAYERS = RESNET50_3X3 + VGG16_3X3

#: The README's direct-kernel table (tools/tuning/thread_scaling.py).
THREAD_SCALING_LAYERS = (
    Layer(1, 64, 256, 56, kernel=1),
    Layer(1, 1024, 256, 14, kernel=1),
    Layer(1, 128, 128, 56, stride=2),
    Layer(1, 256, 256, 28, stride=2),
    Layer(1, 3, 64, 224, kernel=7, stride=2),
    Layer(1, 32, 64, 28, kernel=5),
    Layer(1, 256, 256, 33, padding=2, dilation=2),
    Layer(1, 32, 32, 112, groups=32),
    Layer(1, 512, 512, 14, groups=512),
    Layer(8, 64, 64, 56),
)
#: Small images for the channel-lanes kernel (tools/tuning/channel_lanes.py).
CHANNEL_LANES_LAYERS = (
    Layer(1, 1024, 256, 14, kernel=1),
    Layer(1, 128, 128, 56, stride=2),
    Layer(1, 256, 256, 28, stride=2),
    Layer(1, 32, 64, 28, kernel=5),
    Layer(1, 512, 512, 7),
    Layer(1, 256, 256, 14),
    Layer(1, 64, 64, 28),
    Layer(1, 2048, 512, 7, kernel=1),
    Layer(1, 512, 2048, 7, kernel=1),
    Layer(1, 64, 128, 28),
    Layer(1, 16, 16, 28),
)
#: 3x3 layers without padding, 0.1 to 140 million multiply-adds
#: (tools/tuning/small_calls.py).
SMALL_CALL_LAYERS = tuple(Layer(n, c, c, size, padding=0) for n, c, size in (
    (2, 8, 12), (1, 16, 16), (1, 16, 32), (1, 32, 32), (1, 32, 64), (1, 64, 64)))


#: Large kernels, "same" padding: where the FFT path pays (issue 15). Single
#: channel 1024 x 1024 images as SciPy users filter them, and multi-channel
#: layers with 7x7 to 21x21 kernels on 64x64 to 512x512 images.
LARGE_KERNEL_LAYERS = (
    Layer(1, 1, 1, 1024, kernel=15, name="image 15x15"),
    Layer(1, 1, 1, 1024, kernel=31, name="image 31x31"),
    Layer(1, 16, 16, 256, kernel=11),
    Layer(1, 32, 32, 128, kernel=15),
    Layer(1, 8, 8, 512, kernel=21),
    Layer(1, 64, 64, 64, kernel=7),
    Layer(1, 3, 64, 224, kernel=11),
)



def _resnet50_layers():
    """The 53 convolutions of torchvision's ``resnet50`` at batch 1, 224 x 224,
    in the order of the forward pass, named as its modules are.

    The stem (7x7, stride 2, 224 -> 112; a max pool then halves to 56), then
    the stages ``layer1`` to ``layer4`` of 3, 4, 6 and 3 bottleneck blocks:
    1x1 ``conv1`` (to the stage's width), 3x3 ``conv2`` (stride 2 in the
    first block of stages 2 to 4: torchvision's "v1.5"), 1x1 ``conv3`` (to 4x
    the width). The first block of each stage has a 1x1 ``downsample``
    projection of its input (stride 1 in ``layer1``, 2 in the others).
    """
    table = [Layer(1, 3, 64, 224, kernel=7, stride=2, name="conv1")]
    channels, size = 64, 56
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), 1):
        stride = 1 if stage == 1 else 2
        for block in range(blocks):
            prefix = f"layer{stage}.{block}"
            step = stride if block == 0 else 1
            out = size // step
            table += [Layer(1, channels, width, size, kernel=1, name=f"{prefix}.conv1"),
                      Layer(1, width, width, size, stride=step, name=f"{prefix}.conv2"),
                      Layer(1, width, 4 * width, out, kernel=1, name=f"{prefix}.conv3")]
            if block == 0:
                table.append(Layer(1, channels, 4 * width, size, kernel=1, stride=step,
                                   name=f"{prefix}.downsample.0"))
            channels, size = 4 * width, out
    return tuple(table)


#: All 53 convolutions of ResNet-50 (torchvision, batch 1, 224 x 224): 23
#: distinct layers, the others repeats of them (see :func:`distinct_layers`).
RESNET50_LAYERS = _resnet50_layers()

#: The tables ``--layers`` takes by name.
LAYER_SETS = {"default": DEFAULT_LAYERS, "large-kernel": LARGE_KERNEL_LAYERS,
              "resnet50": RESNET50_LAYERS}


def distinct_layers(layers):
    """The layers of ``layers`` that differ in more than the name, each
    with how often it occurs, in order of first occurrence.

    Returns
    -------
    list of (Layer, int)
        The first layer of each geometry and its count.
    """
    counts = {}
    for layer in layers:
        key = dataclasses.replace(layer, name="")
        first, count = counts.get(key, (layer, 0))
        counts[key] = (first, count + 1)
    return list(counts.values())


def auto_rule_grid(max_flops=6e9):
    """The 3x3, C = K layers behind the ``algorithm="auto"`` rule
    (tools/tuning/tune_auto.py): N in (1, 8), C in 16..512, H in 7..112, those
    of at most ``max_flops``."""
    grid = itertools.product((1, 8), (16, 32, 64, 128, 256, 512), (7, 14, 28, 56, 112))
    layers = (Layer(n, c, c, size) for n, c, size in grid)
    return tuple(layer for layer in layers if layer.flops <= max_flops)
