"""``python -m fastconv bench --set unet-decoder|resnet-backward``: the
transposed convolution and the gradients against PyTorch, in one process,
interleaved, best of the repeats (see :mod:`.timing`)."""

import numpy as np

from .timing import interleaved_best

__all__ = ["SETS", "run_set"]

#: (label, input shape, weight shape (C_in, C_out, k, k), stride, padding)
UNET_DECODER = (
    ("(1,256,28,28) -> 128 k2 s2", (1, 256, 28, 28), (256, 128, 2, 2), 2, 0),
    ("(1,256,28,28) -> 128 k4 s2 p1", (1, 256, 28, 28), (256, 128, 4, 4), 2, 1),
    ("(1,128,56,56) -> 64 3x3 s1 p1", (1, 128, 56, 56), (128, 64, 3, 3), 1, 1),
)
#: ResNet layers (N, C, K, H, stride), 3x3 padding 1: backward of conv2d.
RESNET_BACKWARD = (
    (1, 64, 64, 56, 1), (1, 128, 128, 28, 1), (1, 256, 256, 14, 1), (1, 512, 512, 7, 1),
    (1, 128, 128, 56, 2),
)
SETS = ("unet-decoder", "resnet-backward")


def _rows_unet(torch, threads, repeats, rng):
    import fastconv
    for label, x_shape, w_shape, stride, padding in UNET_DECODER:
        x = rng.standard_normal(x_shape, dtype=np.float32)
        w = rng.standard_normal(w_shape, dtype=np.float32)
        layer = fastconv.ConvTranspose2d(w, stride=stride, padding=padding)
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        calls = {
            "conv_transpose2d": lambda: fastconv.conv_transpose2d(
                x, w, stride=stride, padding=padding, num_threads=threads),
            "ConvTranspose2d": lambda: layer(x, num_threads=threads),
            "torch": lambda: torch.nn.functional.conv_transpose2d(
                tx, tw, stride=stride, padding=padding),
        }
        best = interleaved_best(calls, repeats, settle=True)
        yield label, best, ("conv_transpose2d", "ConvTranspose2d")


def _rows_backward(torch, threads, repeats, rng):
    import fastconv
    for n, c, k, size, stride in RESNET_BACKWARD:
        x = rng.standard_normal((n, c, size, size), dtype=np.float32)
        w = rng.standard_normal((k, c, 3, 3), dtype=np.float32)
        go = rng.standard_normal(fastconv.conv2d(x, w, stride=stride, padding=1).shape,
                                 dtype=np.float32)
        tx, tw, tg = map(torch.from_numpy, (x, w, go))
        calls = {
            "conv2d_input": lambda: fastconv.grad.conv2d_input(
                x.shape, w, go, stride, 1, num_threads=threads),
            "torch input": lambda: torch.nn.grad.conv2d_input(x.shape, tw, tg, stride, 1),
            "conv2d_weight": lambda: fastconv.grad.conv2d_weight(
                x, w.shape, go, stride, 1, num_threads=threads),
            "torch weight": lambda: torch.nn.grad.conv2d_weight(tx, w.shape, tg, stride, 1),
        }
        best = interleaved_best(calls, repeats, settle=True)
        yield f"ResNet ({n},{c},{size},{size}) -> {k} s{stride}", best, None


def run_set(name, threads, repeats, seed=0):
    """The Markdown table of set ``name`` at ``threads`` (fastconv and torch)."""
    import torch
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    lines = []
    if name == "unet-decoder":
        lines += ["| layer | conv_transpose2d ms | ConvTranspose2d ms | torch ms "
                  "| torch / function | torch / layer |", "|---|---|---|---|---|---|"]
        for label, best, _ in _rows_unet(torch, threads, repeats, rng):
            f, l, t = (best[k] * 1e3 for k in ("conv_transpose2d", "ConvTranspose2d", "torch"))
            lines.append(f"| {label} | {f:.2f} | {l:.2f} | {t:.2f} | {t / f:.2f}x "
                         f"| {t / l:.2f}x |")
    else:
        lines += ["| layer | conv2d_input ms | torch ms | torch / fastconv | conv2d_weight ms "
                  "| torch ms | torch / fastconv |", "|---|---|---|---|---|---|---|"]
        for label, best, _ in _rows_backward(torch, threads, repeats, rng):
            fi, ti, fw, tw = (best[k] * 1e3 for k in ("conv2d_input", "torch input",
                                                      "conv2d_weight", "torch weight"))
            lines.append(f"| {label} | {fi:.2f} | {ti:.2f} | {ti / fi:.2f}x | {fw:.2f} "
                         f"| {tw:.2f} | {tw / fw:.2f}x |")
    return "\n".join([f"{name}, {threads} thread(s), float32, best of {repeats}"] + lines)
