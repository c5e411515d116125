"""A prepared ``fastconv.Conv2d`` layer called repeatedly against the
functional ``fastconv.conv2d`` with the same weights each call.

``conv2d`` validates the weights and packs (direct) or transforms (Winograd
``U = G g G^T``) them on every call; a ``Conv2d`` layer does it once and
reuses the result, which is what an inference pipeline wants. On Winograd
layers the weight transform is a visible share of a call.

``LayerVsFunctional`` times both (``time_layer``, ``time_conv2d``) and tracks
the ratio (``track_speedup``, interleaved best-of-7). The same comparison as
a Markdown table: ``python tools/tuning/prepared_layer.py``. On a fastconv
without ``Conv2d.plan`` (or the ``algorithm_for`` that came before it) the
benchmarks are skipped.
"""

import numpy as np

import fastconv

from .common import layers, timing

#: 3x3, stride 1, padding 1 layers, Winograd under "auto". The keys are asv's
#: parameter values: renaming one starts its history anew.
LAYERS = dict(zip(
    ["resnet50 conv3_x (1,128,128,28)", "resnet50 conv4_x (1,256,256,14)",
     "resnet50 conv5_x (1,512,512,7)", "vgg16 conv4 (1,512,512,28)"],
    layers.RESNET50_3X3[1:] + layers.VGG16_3X3[2:], strict=True))
ALGORITHMS = ["auto", "winograd4"]


class LayerVsFunctional:
    """``Conv2d`` (weights transformed once) against ``conv2d`` (every call)."""

    params = [list(LAYERS), ALGORITHMS]
    param_names = ["layer", "algorithm"]
    timeout = 120

    def setup(self, name, algorithm):
        layer_class = getattr(fastconv, "Conv2d", None)
        if not hasattr(layer_class, "plan") and not hasattr(layer_class, "algorithm_for"):
            raise NotImplementedError("this fastconv has no Conv2d layer that says what it runs")
        self.x, self.w = LAYERS[name].data(np.float32)
        self.layer = fastconv.Conv2d(self.w, padding=1, algorithm=algorithm)
        if hasattr(layer_class, "plan"):
            plan = self.layer.plan(self.x.shape)
            self.algorithm = f"winograd{plan.tile}" if plan.tile else plan.algorithm
        else:  # commits before fastconv.plan
            self.algorithm = self.layer.algorithm_for(self.x.shape)
        self.layer(self.x)  # transform the weights outside the timing

    def time_layer(self, name, algorithm):
        self.layer(self.x)

    def time_conv2d(self, name, algorithm):
        """The functional call with the algorithm the layer runs."""
        fastconv.conv2d(self.x, self.w, padding=1, algorithm=self.algorithm)

    def time_conv2d_own_choice(self, name, algorithm):
        """The functional call choosing for itself (``"auto"`` may differ)."""
        fastconv.conv2d(self.x, self.w, padding=1, algorithm=algorithm)

    def track_speedup(self, name, algorithm):
        """conv2d time / Conv2d time, the same algorithm, best of 7 interleaved."""
        best = timing.interleaved_best({"layer": lambda: self.time_layer(name, algorithm),
                                        "conv2d": lambda: self.time_conv2d(name, algorithm)},
                                       7)
        return best["conv2d"] / best["layer"]

    track_speedup.unit = "x (conv2d time / Conv2d time)"
