"""Winograd F(m, r) transform matrices with exact fractions, and their float32
error on random data for candidate interpolation points.

The C++ matrices of ``src/fastconv/_kernels/winograd_transforms.hpp`` were
printed by this script; tests/test_winograd.py re-derives them another way
(as products of linear factors) and checks that they compute correlation
exactly.

Construction (Toom-Cook over finite points p_0 .. p_{n-1} and infinity,
alpha = m + r - 1 = n + 1): let W be the alpha x alpha matrix that evaluates a
polynomial of degree alpha - 1 at the points (row j: p_j^0 .. p_j^(alpha-1);
the last row, infinity, picks the leading coefficient). A linear convolution
is W^-1 [(W_m a) (.) (W_r g)]; its transpose, the correlation
``y = A^T [(G g) (.) (B^T d)]``, has A^T = W_m^T, G = W_r and B^T = W^-T.
Row j of B^T is then the Lagrange polynomial of p_j, prod_{l != j} (x - p_l)
/ N_j with N_j = prod_{l != j} (p_j - p_l); it is scaled by N_j (and row j of G
by 1 / N_j) so that the data transforms have small dyadic entries and the
divisions land in the weight transform, computed once in float64.

The error estimate runs the three transforms in float32 with NumPy on
|N(0, 1)| tiles and N(0, 1) filters over ``--channels`` input channels and
reports the largest error relative to conv(|x|, |w|) of the tile, as the
tests measure it; it is a guide for choosing points, the library's own error
is measured by tools/tuning/winograd_accuracy.py and bounded by the tests.

Usage::

    python tools/winograd_matrices.py --print 4 5     # C++ of F(4x4, 5x5)
    python tools/winograd_matrices.py --errors        # candidate points
"""

import argparse
from fractions import Fraction

import numpy as np

INF = None

#: The points compiled into the library per (m, r) (infinity is added last).
CHOSEN = {
    (2, 3): [0, 1, -1],
    (4, 3): [0, 1, -1, 2, -2],
    (6, 3): [0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2)],
    (2, 5): [0, 1, -1, 2, -2],
    (4, 5): [0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2)],
    (2, 7): [0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2)],
}

#: Alternatives tried for the tiles of alpha 8 (7 finite points).
CANDIDATES_8 = [
    [0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2)],
    [0, 1, -1, 2, -2, 3, -3],
    [0, 1, -1, Fraction(1, 2), Fraction(-1, 2), Fraction(3, 2), Fraction(-3, 2)],
    [0, 1, -1, 2, -2, Fraction(3, 2), Fraction(-3, 2)],
    [0, 1, -1, Fraction(1, 2), Fraction(-1, 2), Fraction(1, 4), Fraction(-1, 4)],
]


def _inverse(a):
    """Exact inverse of a square matrix of Fractions (Gauss-Jordan)."""
    n = len(a)
    rows = [list(row) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(a)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if rows[r][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        lead = rows[col][col]
        rows[col] = [v / lead for v in rows[col]]
        for r in range(n):
            if r != col and rows[r][col] != 0:
                factor = rows[r][col]
                rows[r] = [v - factor * p for v, p in zip(rows[r], rows[col])]
    return [row[n:] for row in rows]


def matrices(m, r, points):
    """Exact ``(B^T, G, A^T)`` of F(m, r) over ``points`` and infinity."""
    points = [Fraction(p) for p in points]
    alpha = m + r - 1
    if len(points) != alpha - 1 or len(set(points)) != len(points):
        raise ValueError(f"F({m}, {r}) needs {alpha - 1} distinct finite points")

    def evaluation(degree):
        # Rows: the points, then infinity (the coefficient of x^(degree - 1)).
        return ([[p ** k for k in range(degree)] for p in points]
                + [[Fraction(int(k == degree - 1)) for k in range(degree)]])

    w_inv = _inverse(evaluation(alpha))
    bt = [[w_inv[i][j] for i in range(alpha)] for j in range(alpha)]  # W^-T
    g = evaluation(r)
    at = [list(col) for col in zip(*evaluation(m))]
    for j, p in enumerate(points):
        scale = Fraction(1)
        for q in points:
            if q != p:
                scale *= p - q
        bt[j] = [v * scale for v in bt[j]]
        g[j] = [v / scale for v in g[j]]
    return bt, g, at


def _cxx_number(v):
    if v.denominator == 1:
        return f"{v.numerator}.0"
    return f"{v.numerator}.0 / {v.denominator}.0"


def _cxx_rows(name, a):
    lines = [f"    static constexpr double {name}[{len(a)}][{len(a[0])}] = {{"]
    body = [",".join(" " + _cxx_number(v) for v in row).strip() for row in a]
    lines.append(",\n".join(f"        {{{row}}}" for row in body) + "};")
    return lines


def cxx(m, r, points, with_input=True):
    """The C++ of fc_winograd_matrices<m, r>, after the B^T of its points
    (fc_winograd_input<alpha>, shared by the (m, r) of one alpha) if
    ``with_input``."""
    bt, g, at = matrices(m, r, points)
    alpha = m + r - 1
    names = ", ".join(str(p) for p in points)
    lines = []
    if with_input:
        lines += [f"/* B^T over the points {names}, inf. */",
                  f"template <> struct fc_winograd_input<{alpha}> {{",
                  f"    static constexpr int alpha = {alpha};"]
        lines += _cxx_rows("BT", bt) + ["};", ""]
    lines += [f"/* F({m}x{m}, {r}x{r}), interpolation points {names}, inf. */",
              f"template <> struct fc_winograd_matrices<{m}, {r}> : fc_winograd_input<{alpha}> {{"]
    lines += _cxx_rows("G", g) + _cxx_rows("AT", at) + ["};"]
    return "\n".join(lines)


def float32_error(m, r, points, channels=64, tiles=4096, seed=0):
    """Largest error of F(m x m, r x r) in float32 over random tiles, relative
    to the tile's largest conv(|x|, |w|)."""
    bt, g, at = (np.array(a, dtype=np.float64) for a in matrices(m, r, points))
    alpha = m + r - 1
    rng = np.random.default_rng(seed)
    d = np.abs(rng.standard_normal((tiles, channels, alpha, alpha)))
    f = rng.standard_normal((channels, r, r))
    u = (g @ f @ g.T).astype(np.float32)  # float64, rounded once, as the library
    d32 = d.astype(np.float32)
    bt32, at32 = bt.astype(np.float32), at.astype(np.float32)
    v = bt32 @ d32 @ bt32.T
    y = at32 @ (u * v).sum(axis=1, dtype=np.float32) @ at32.T
    windows = np.lib.stride_tricks.sliding_window_view(d, (r, r), axis=(2, 3))
    exact = np.einsum("tcijab,cab->tij", windows, f)
    scale = np.einsum("tcijab,cab->tij", windows, np.abs(f)).max(axis=(1, 2))
    return float((np.abs(y - exact).max(axis=(1, 2)) / scale).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--print", nargs=2, type=int, metavar=("M", "R"),
                        help="print the C++ matrices of the chosen points")
    parser.add_argument("--errors", action="store_true",
                        help="float32 error of the chosen and candidate points")
    args = parser.parse_args()
    if args.print:
        m, r = args.print
        print(cxx(m, r, CHOSEN[(m, r)]))
    if args.errors:
        for (m, r), points in CHOSEN.items():
            tried = CANDIDATES_8 if m + r - 1 == 8 else [points]
            for candidate in tried:
                mark = "*" if candidate == points else " "
                names = ", ".join(str(p) for p in candidate)
                print(f"{mark} F({m},{r}) {float32_error(m, r, candidate):9.2e}  {names}")


if __name__ == "__main__":
    main()
