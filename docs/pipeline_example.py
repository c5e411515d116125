"""A small inference pipeline on NumPy images with fastconv, checked against PyTorch.

Run it from a checkout (PyTorch is needed only for the comparison; without
it the layers get random NumPy weights and the comparison is skipped)::

    python docs/pipeline_example.py

The images are made with NumPy (no downloads): 8-bit RGB pictures in the
(height, width, channel) layout an image decoder gives, saved to an ``.npy``
file and loaded back with :func:`numpy.load`, as a pipeline would load them.
A two-layer network (3x3 convolution with reflect padding, ReLU, 3x3
convolution) is built from ``torch.nn`` modules and copied into
``fastconv.Conv2d`` layers with ``Conv2d.from_torch``; the ReLU is fused into
the first layer. Both networks run on the same batch and the largest
difference is printed.
"""

import os
import tempfile

import numpy as np

import fastconv


def make_images(count=8, size=96, seed=0):
    """``count`` synthetic 8-bit RGB images of shape (size, size, 3):
    colour gradients, a ring and a little noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size] / (size - 1)
    images = []
    for _ in range(count):
        cy, cx, radius = rng.uniform(0.3, 0.7, 3) * (1, 1, 0.5)
        ring = np.exp(-((np.hypot(rows - cy, cols - cx) - radius) / 0.05) ** 2)
        red, green = rows * rng.uniform(0.5, 1), cols * rng.uniform(0.5, 1)
        blue = ring + 0.1 * rng.standard_normal((size, size))
        image = np.stack([red, green, blue], axis=-1)
        images.append(np.clip(image * 255, 0, 255).astype(np.uint8))
    return np.stack(images)  # (N, H, W, 3) uint8


def load_batch(path):
    """Images saved as (N, H, W, 3) uint8 -> float32 (N, 3, H, W) in [0, 1]."""
    images = np.load(path)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255


def fastconv_network(torch_network):
    """The fastconv layers of ``Sequential(Conv2d, ReLU, Conv2d)``, the ReLU fused."""
    first, _, second = torch_network
    return [fastconv.Conv2d.from_torch(first, activation="relu"),
            fastconv.Conv2d.from_torch(second)]


def forward(layers, x):
    """Run ``x`` through the fastconv layers one after the other."""
    for layer in layers:
        x = layer(x)
    return x


def numpy_network(seed=0):
    """The same two layers with random NumPy weights, for a machine without PyTorch."""
    rng = np.random.default_rng(seed)
    w1 = (rng.uniform(-1, 1, (32, 3, 3, 3)) / np.sqrt(27)).astype(np.float32)
    w2 = (rng.uniform(-1, 1, (16, 32, 3, 3)) / np.sqrt(288)).astype(np.float32)
    b1 = rng.uniform(-0.1, 0.1, 32).astype(np.float32)
    b2 = rng.uniform(-0.1, 0.1, 16).astype(np.float32)
    return [fastconv.Conv2d(w1, b1, padding=1, padding_mode="reflect", activation="relu"),
            fastconv.Conv2d(w2, b2, padding=1)]


def main():
    try:
        import torch
    except ImportError:  # PyTorch is only needed for the comparison
        torch = None

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "images.npy")
        np.save(path, make_images())
        x = load_batch(path)
    print(f"input batch: {x.shape} {x.dtype}")

    if torch is None:
        print("PyTorch is not installed: random NumPy weights, no comparison with torch")
        torch_network = None
        layers = numpy_network()
    else:
        torch.manual_seed(0)
        torch_network = torch.nn.Sequential(
            torch.nn.Conv2d(3, 32, 3, padding=1, padding_mode="reflect"),
            torch.nn.ReLU(),
            torch.nn.Conv2d(32, 16, 3, padding=1),
        ).eval()
        layers = fastconv_network(torch_network)
    for layer in layers:
        plan = layer.plan(x.shape[:1] + (layer.in_channels,) + x.shape[2:])
        tile = f" F({plan.tile}x{plan.tile})" if plan.tile else ""
        print(layer, "->", f"{plan.algorithm}{tile}, path {plan.path}")

    y = forward(layers, x)
    print(f"output: {y.shape} {y.dtype}")
    difference = None
    if torch_network is not None:
        with torch.no_grad():
            y_torch = torch_network(torch.from_numpy(x)).numpy()
        difference = float(np.abs(y - y_torch).max())
        print(f"max |fastconv - torch| = {difference:.2e} "
              f"(outputs up to {np.abs(y_torch).max():.2f})")

    # The same network on channels-last data: no transpose in user code.
    nhwc_layers = [fastconv.Conv2d(layer.weight, layer.bias, padding=layer.padding,
                                   padding_mode=layer.padding_mode,
                                   activation=layer.activation, layout="NHWC")
                   for layer in layers]
    y_nhwc = forward(nhwc_layers, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    print(f"NHWC pipeline: {y_nhwc.shape}, max |NHWC - NCHW| = "
          f"{np.abs(y_nhwc.transpose(0, 3, 1, 2) - y).max():.2e}")

    # Threads: a block sets fastconv's default; results do not depend on it.
    with fastconv.threads(1):
        y_one_thread = forward(layers, x)
    print(f"1 thread == {fastconv.get_num_threads()} threads: "
          f"{np.array_equal(y_one_thread, y)}")
    return difference


if __name__ == "__main__":
    main()
