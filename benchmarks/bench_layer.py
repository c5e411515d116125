"""A prepared ``fastconv.Conv2d`` layer called repeatedly against the
functional ``fastconv.conv2d`` with the same weights each call.

``conv2d`` validates the weights and packs (direct) or transforms (Winograd
``U = G g G^T``) them on every call; a ``Conv2d`` layer does it once and
reuses the result, which is what an inference pipeline wants. On Winograd
layers the weight transform is a visible share of a call.

* asv: ``LayerVsFunctional`` times both (``time_layer``, ``time_conv2d``)
  and tracks the ratio (``track_speedup``, interleaved best-of-7).
* Script: ``python benchmarks/bench_layer.py [--threads T] [--repeats R]``
  prints the same comparison as a Markdown table.

Independent of the rest of the suite (it imports nothing from it). On a
fastconv without ``Conv2d`` the benchmarks are skipped.
"""

import argparse
import time

import numpy as np

import fastconv

#: (N, C, K, H): 3x3, stride 1, padding 1 layers, Winograd under "auto".
LAYERS = {
    "resnet50 conv3_x (1,128,128,28)": (1, 128, 128, 28),
    "resnet50 conv4_x (1,256,256,14)": (1, 256, 256, 14),
    "resnet50 conv5_x (1,512,512,7)": (1, 512, 512, 7),
    "vgg16 conv4 (1,512,512,28)": (1, 512, 512, 28),
}
ALGORITHMS = ["auto", "winograd4"]


def layer_data(shape, dtype=np.float32, seed=0):
    """Standard-normal input (N, C, H, H) and weight (K, C, 3, 3)."""
    n, c, k, size = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, size, size)).astype(dtype)
    w = rng.standard_normal((k, c, 3, 3)).astype(dtype)
    return x, w


def compare(shape, algorithm="auto", num_threads=None, repeats=7):
    """Best-of-``repeats`` seconds of (layer call, conv2d call with the
    layer's algorithm, conv2d call with ``algorithm``), interleaved, and the
    algorithm the layer ran.

    With ``algorithm="auto"`` the functional call may pick another tile than
    the layer (its rule counts the weight transform it pays each call); the
    third time is what a user of ``conv2d(..., algorithm="auto")`` gets.
    """
    x, w = layer_data(shape)
    layer = fastconv.Conv2d(w, padding=1, algorithm=algorithm, num_threads=num_threads)
    chosen = layer.algorithm_for(x.shape)
    # The same algorithm for both, so that only the weight handling differs.
    calls = (lambda: layer(x),
             lambda: fastconv.conv2d(x, w, padding=1, algorithm=chosen,
                                     num_threads=num_threads),
             lambda: fastconv.conv2d(x, w, padding=1, algorithm=algorithm,
                                     num_threads=num_threads))
    for call in calls:  # warm-up: page faults, thread start, the layer's transform
        call()
    best = [float("inf")] * len(calls)
    for _ in range(repeats):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            call()
            best[i] = min(best[i], time.perf_counter() - start)
    return best[0], best[1], best[2], chosen


class LayerVsFunctional:
    """``Conv2d`` (weights transformed once) against ``conv2d`` (every call)."""

    params = [list(LAYERS), ALGORITHMS]
    param_names = ["layer", "algorithm"]
    timeout = 120

    def setup(self, name, algorithm):
        if not hasattr(fastconv, "Conv2d"):
            raise NotImplementedError("this fastconv has no Conv2d layer")
        self.shape = LAYERS[name]
        self.x, self.w = layer_data(self.shape)
        self.layer = fastconv.Conv2d(self.w, padding=1, algorithm=algorithm)
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
        layer_s, functional_s, _, _ = compare(self.shape, algorithm)
        return functional_s / layer_s

    track_speedup.unit = "x (conv2d time / Conv2d time)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="num_threads of both (default: fastconv's default)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="auto")
    args = parser.parse_args(argv)
    threads = args.threads or fastconv.get_num_threads()
    print(f"fastconv {fastconv.__version__}, num_threads={threads}, float32, "
          f"best of {args.repeats} interleaved")
    print(f"| layer | algorithm | conv2d, same algorithm (ms) | Conv2d layer (ms) | speedup "
          f"| conv2d, algorithm={args.algorithm!r} (ms) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, shape in LAYERS.items():
        layer_s, functional_s, own_s, chosen = compare(shape, args.algorithm, args.threads,
                                                       args.repeats)
        print(f"| {name} | {chosen} | {functional_s * 1e3:.2f} | {layer_s * 1e3:.2f} | "
              f"{functional_s / layer_s:.2f}x | {own_s * 1e3:.2f} |")


if __name__ == "__main__":
    main()
