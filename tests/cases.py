"""Generators of valid conv2d cases shared by the test modules.

``random_case(seed)`` gives a reproducible case from a NumPy seed (used for
parametrized tests with readable ids); ``conv_cases()`` is the hypothesis
strategy for property tests.  Both only produce cases that torch accepts.
"""

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from reference import output_size, pair, resolve_padding

__all__ = ["Case", "random_case", "big_cases", "conv_cases", "make_arrays"]


@dataclass
class Case:
    """Shapes and hyper-parameters of one conv2d call (arrays made lazily)."""

    batch: object  # int >= 0, or None for unbatched (C, H, W) input
    in_channels: int
    out_channels: int
    hw: tuple
    kernel: tuple
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    groups: int = 1
    bias: bool = True
    dtype: object = np.float64
    seed: int = 0
    values: str = "normal"  # "normal" or "int" (small integers, exact sums)
    label: str = field(default="", compare=False)

    @property
    def id(self):
        n = "u" if self.batch is None else self.batch
        s = (f"N{n}-C{self.in_channels}-K{self.out_channels}-"
             f"{self.hw[0]}x{self.hw[1]}-k{self.kernel[0]}x{self.kernel[1]}-"
             f"s{_fmt(self.stride)}-p{_fmt(self.padding)}-"
             f"d{_fmt(self.dilation)}-g{self.groups}"
             f"{'-b' if self.bias else ''}-{np.dtype(self.dtype).name}")
        return f"{self.label}-{s}" if self.label else s

    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding,
                    dilation=self.dilation, groups=self.groups)

    def arrays(self):
        """``(input, weight, bias)`` for this case, deterministic in seed."""
        return make_arrays(self)


def _fmt(v):
    if isinstance(v, tuple):
        return f"{v[0]},{v[1]}"
    return str(v)


def make_arrays(case):
    rng = np.random.default_rng(case.seed)
    c, k = case.in_channels, case.out_channels
    xshape = (c, *case.hw) if case.batch is None else (case.batch, c, *case.hw)
    wshape = (k, c // case.groups, *case.kernel)

    def draw(shape):
        if case.values == "int":
            return rng.integers(-3, 4, size=shape).astype(case.dtype)
        return rng.standard_normal(shape).astype(case.dtype)

    x, w = draw(xshape), draw(wshape)
    b = draw((k,)) if case.bias else None
    return x, w, b


def _random_padding(rng, kernel, stride, dilation):
    kind = rng.integers(0, 5)
    if kind == 0:
        return int(rng.integers(0, 4))
    if kind == 1:
        return (int(rng.integers(0, 4)), int(rng.integers(0, 4)))
    if kind == 2:
        return "valid"
    if kind == 3 and pair(stride) == (1, 1):
        return "same"
    return 0


def _maybe_pair(rng, a, b):
    """Return an int when both values agree (sometimes), else a tuple."""
    if a == b and rng.random() < 0.5:
        return int(a)
    return (int(a), int(b))


def random_case(seed, dtype=None):
    """A valid case with random hyper-parameters, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    groups_kind = rng.integers(0, 4)
    if groups_kind == 0:  # depthwise (optionally with channel multiplier)
        groups = int(rng.integers(1, 9))
        cg, kg = 1, int(rng.integers(1, 3))
    elif groups_kind == 1:
        groups = int(rng.integers(2, 5))
        cg, kg = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    else:
        groups = 1
        cg, kg = int(rng.integers(1, 41)), int(rng.integers(1, 41))
    kernel = (int(rng.integers(1, 8)), int(rng.integers(1, 8)))
    # Stride/dilation > 1 only sometimes, so plenty of plain cases remain.
    s = [int(rng.integers(1, 4)) if rng.random() < 0.5 else 1 for _ in "hw"]
    d = [int(rng.integers(1, 4)) if rng.random() < 0.35 else 1 for _ in "hw"]
    stride, dilation = _maybe_pair(rng, *s), _maybe_pair(rng, *d)
    padding = _random_padding(rng, kernel, stride, dilation)
    (pt, pb), (pl, pr) = resolve_padding(padding, kernel, dilation, stride)
    eff = [dd * (kk - 1) + 1 for dd, kk in zip(d, kernel)]
    h = max(1, eff[0] - pt - pb) + int(rng.integers(0, 12))
    w = max(1, eff[1] - pl - pr) + int(rng.integers(0, 12))
    batch = int(rng.integers(0, 4)) if rng.random() < 0.85 else None
    if dtype is None:
        dtype = np.float32 if rng.random() < 0.5 else np.float64
    case = Case(batch, cg * groups, kg * groups, (h, w), kernel, stride,
                padding, dilation, groups, bias=bool(rng.random() < 0.6),
                dtype=dtype, seed=seed)
    assert min(output_size(case.hw, kernel, stride, padding, dilation)) >= 1
    return case


def big_cases():
    """Larger layers: long reductions (> 256), many output-channel panels."""
    f32, f64 = np.float32, np.float64
    return [
        Case(2, 64, 64, (20, 20), (3, 3), padding=1, dtype=f32,
             label="resnet-block"),
        Case(1, 96, 70, (13, 11), (3, 3), dtype=f32, label="reduce864"),
        Case(1, 96, 70, (13, 11), (3, 3), padding="same", dtype=f64,
             label="reduce864"),
        Case(1, 128, 66, (10, 10), (3, 3), padding=1, groups=2, dtype=f32,
             label="grouped-reduce576"),
        Case(2, 48, 48, (17, 17), (5, 5), padding=2, groups=48, dtype=f32,
             label="depthwise5x5"),
        Case(1, 300, 100, (8, 9), (1, 1), dtype=f32, label="pointwise300"),
        Case(1, 40, 50, (33, 33), (3, 3), stride=2, padding=1, dtype=f64,
             label="stride2"),
        Case(1, 3, 16, (64, 64), (7, 7), stride=2, padding=3, bias=False,
             dtype=f32, label="stem7x7"),
        Case(3, 33, 17, (15, 14), (4, 2), padding="same", dilation=(2, 3),
             dtype=f32, label="same-even-dilated"),
        Case(1, 64, 129, (9, 12), (3, 3), padding=1, dtype=f32,
             label="odd-panels"),
        Case(2, 300, 45, (9, 11), (3, 3), stride=(1, 2), padding=(1, 2),
             dtype=f64, label="reduce2700"),
        Case(1, 8, 517, (5, 37), (2, 3), dtype=f32, label="K517"),
        Case(1, 3, 5, (3, 1001), (3, 3), stride=(1, 3), dilation=(1, 2),
             dtype=f64, label="wide-image"),
    ]


def draw_padding(draw, stride, max_pad, instead_of_same):
    """An int, an (h, w) pair (each 0 .. max_pad), "valid" or "same"; "same"
    needs stride 1, so for other strides ``instead_of_same`` ("valid" or
    "int") is drawn in its place."""
    kind = draw(st.sampled_from(["int", "pair", "valid", "same"]))
    if kind == "same" and stride != (1, 1):
        kind = instead_of_same
    if kind == "int":
        return draw(st.integers(0, max_pad))
    if kind == "pair":
        return (draw(st.integers(0, max_pad)), draw(st.integers(0, max_pad)))
    return kind


@st.composite
def conv_cases(draw, dtypes=(np.float64, np.float32), values=("normal",)):
    """Hypothesis strategy of ``(input, weight, bias, stride, padding,
    dilation, groups)`` tuples, all valid.

    Covers unbatched input, batch 0..3, ``"valid"``/``"same"`` strings,
    non-square kernels 1..5, grouped and depthwise convolution.
    """
    kind = draw(st.sampled_from(["plain", "grouped", "depthwise"]))
    if kind == "plain":
        groups, cg, kg = 1, draw(st.integers(1, 6)), draw(st.integers(1, 6))
    elif kind == "grouped":
        groups = draw(st.integers(2, 3))
        cg, kg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    else:
        groups, cg, kg = draw(st.integers(1, 5)), 1, draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    as_int = st.booleans()
    stride = s[0] if s[0] == s[1] and draw(as_int) else s
    dilation = d[0] if d[0] == d[1] and draw(as_int) else d
    padding = draw_padding(draw, s, max_pad=3, instead_of_same="valid")
    (pt, pb), (pl, pr) = resolve_padding(padding, kernel, dilation, stride)
    eff = [dd * (kk - 1) + 1 for dd, kk in zip(d, kernel)]
    h = max(1, eff[0] - pt - pb) + draw(st.integers(0, 7))
    w = max(1, eff[1] - pl - pr) + draw(st.integers(0, 7))
    batch = draw(st.one_of(st.none(), st.integers(0, 3)))
    dtype = draw(st.sampled_from(list(dtypes)))
    case = Case(batch, cg * groups, kg * groups, (h, w), kernel, stride,
                padding, dilation, groups, bias=draw(st.booleans()),
                dtype=dtype, seed=draw(st.integers(0, 2**32 - 1)),
                values=draw(st.sampled_from(list(values))))
    x, wt, b = case.arrays()
    return x, wt, b, stride, padding, dilation, groups
