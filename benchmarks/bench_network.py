"""asv benchmark of a whole network: the 53 convolutions of ResNet-50
(torchvision's shapes, batch 1, 224 x 224), run layer by layer.

``ResNet50.time_network`` times one pass over all 53 layers in the order of
the network, float32, each on an input of its own shape (the layers are
independent calls, not chained), with ``algorithm="auto"``:

* ``call="conv2d"``: the functional ``fastconv.conv2d`` (weights packed or
  transformed in every call);
* ``call="Conv2d"``: prepared ``fastconv.Conv2d`` layers, made and called
  once in ``setup`` (weights packed or transformed once).

The same network in the bench command, with the per-layer table and the
total against the peers: ``python -m fastconv bench --layers resnet50``.
A commit whose fastconv cannot run it (no ``Conv2d``, no ``num_threads``) or
whose source tree has no ``RESNET50_LAYERS`` table skips it.
"""

import dataclasses
import functools

import numpy as np

import fastconv

from .common import THREADS, layers

#: The 53 layers, in the order of the forward pass.
NETWORK = getattr(layers, "RESNET50_LAYERS", ())


def _data(layer):
    """Input and weights of ``layer`` in float32; repeated layers (equal but
    for the name) share them."""
    return _geometry_data(dataclasses.replace(layer, name=""))


@functools.lru_cache(maxsize=None)
def _geometry_data(layer):
    return layer.data(np.float32)


class ResNet50:
    """All 53 convolutions of ResNet-50, one after the other."""

    params = [["conv2d", "Conv2d"], THREADS]
    param_names = ["call", "num_threads"]
    timeout = 300
    rounds = 1
    repeat = (3, 6, 10.0)

    def setup(self, call, num_threads):
        if not NETWORK:
            raise NotImplementedError("this source tree has no RESNET50_LAYERS table")
        self.calls = []
        try:
            for layer in NETWORK:
                x, w = _data(layer)
                if call == "conv2d":
                    self.calls.append(functools.partial(
                        fastconv.conv2d, x, w, stride=layer.stride, padding=layer.padding,
                        num_threads=num_threads))
                else:
                    prepared = fastconv.Conv2d(w, stride=layer.stride, padding=layer.padding,
                                               num_threads=num_threads)
                    self.calls.append(functools.partial(prepared, x))
                self.calls[-1]()  # weights packed, memory touched outside the timing
        except (AttributeError, TypeError) as exc:
            raise NotImplementedError(f"this fastconv cannot run the network: {exc}") from None

    def time_network(self, call, num_threads):
        for run in self.calls:
            run()
