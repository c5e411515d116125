"""Build the compiled extensions of fastconv.

OpenMP is detected per compiler by compiling *and running* a tiny program
with each candidate flag set. Without a working OpenMP the build warns and
produces serial modules. Two environment variables change that:

* FASTCONV_FAIL_NO_OPENMP=1 makes a missing OpenMP an error (release builds);
* FASTCONV_DISABLE_OPENMP=1 skips OpenMP on purpose: a serial build, with a
  warning (combined with FASTCONV_FAIL_NO_OPENMP=1 the build fails).

On macOS, LIBOMP_PREFIX names a libomp installation outside Homebrew's.

Optimisation is -O3 (/O2 on MSVC) for a generic target: no -march=native and
no -ffast-math. The kernels carry their own AVX2/AVX-512 variants, compiled
into fastconv._cpu and chosen at run time (see
src/fastconv/_kernels/cpu_dispatch.hpp).

Debug information: Python's own compile flags (sysconfig CFLAGS) carry -g,
which makes a kernel module about 2 MB instead of 0.4-0.7 MB (gcc 12). The
build adds -g0 after them, unless CFLAGS or CXXFLAGS in the environment ask
for debug information themselves (-g, -g3, -ggdb, ...; e.g. the sanitizer
recipe of CONTRIBUTING.md), which then stays.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import warnings

import numpy
import setuptools
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_PROBE = textwrap.dedent(
    """\
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d %d\\n", n, omp_get_max_threads());
        return n >= 1 ? 0 : 1;
    }
    """
)


def env_flag(name):
    """True when the environment variable ``name`` is set to a true value."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def openmp_flag_candidates(compiler):
    """Compile and link flag pairs to try, most likely first, for ``compiler``."""
    if compiler.compiler_type == "msvc":
        return [(["/openmp"], []), (["/openmp:llvm"], [])]
    cc = " ".join(getattr(compiler, "compiler_so", None) or ["cc"])
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":
        # Apple clang has no driver support: libomp (e.g. Homebrew) provides
        # omp.h and the runtime.
        prefixes = [os.environ.get("LIBOMP_PREFIX", ""), "/opt/homebrew/opt/libomp",
                    "/usr/local/opt/libomp"]
        for prefix in filter(None, prefixes):
            candidates.append(
                (["-Xpreprocessor", "-fopenmp", f"-I{prefix}/include"],
                 [f"-L{prefix}/lib", "-lomp", f"-Wl,-rpath,{prefix}/lib"])
            )
        candidates.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    elif "icx" in cc or "icc" in cc:
        candidates.insert(0, (["-qopenmp"], ["-qopenmp"]))
    return candidates


def probe_openmp(compiler):
    """Return (compile_args, link_args) of a working OpenMP, or None."""
    for compile_args, link_args in openmp_flag_candidates(compiler):
        with tempfile.TemporaryDirectory() as tmp:
            source = os.path.join(tmp, "probe_openmp.c")
            with open(source, "w") as f:
                f.write(OPENMP_PROBE)
            try:
                objects = compiler.compile([source], output_dir=tmp,
                                           extra_postargs=compile_args)
                exe = os.path.join(tmp, "probe_openmp")
                compiler.link_executable(objects, exe, extra_postargs=link_args)
                if compiler.compiler_type == "msvc":
                    exe += ".exe"
                run = subprocess.run([exe], capture_output=True, text=True, timeout=60)
            except Exception:  # noqa: BLE001 - any failure means "not this flag"
                continue
            if run.returncode == 0:
                return compile_args, link_args
    return None


def optimisation_args(compiler):
    if compiler.compiler_type == "msvc":
        return ["/O2"]
    return ["-O3"] + ([] if debug_info_requested() else ["-g0"])


def cxx_standard_args(compiler):
    """The C++ modules are C++17, said explicitly: gcc >= 11 defaults to it,
    but clang before 16 (14 here) to C++14, where the Winograd matrices'
    static constexpr members are not inline and clang's build failed to load
    (undefined symbol fc_winograd_matrices<4>::AT)."""
    if compiler.compiler_type == "msvc":
        return ["/std:c++17"]
    return ["-std=gnu++17"]


def debug_info_requested():
    """True when CFLAGS or CXXFLAGS in the environment ask for debug
    information (a -g flag other than -g0)."""
    flags = (os.environ.get("CFLAGS", "") + " " + os.environ.get("CXXFLAGS", "")).split()
    return any(f.startswith("-g") and f != "-g0" for f in flags)


class BuildExt(build_ext):
    """build_ext that adds OpenMP and optimisation flags to every extension."""

    def build_extensions(self):
        compile_args, link_args = self.openmp_args()
        flags = optimisation_args(self.compiler) + compile_args
        compiler_name = os.path.basename(self.compiler.compiler_so[0]) if hasattr(
            self.compiler, "compiler_so") else self.compiler.compiler_type
        cxx_flags = cxx_standard_args(self.compiler)
        for ext in self.extensions:
            language = ext.language or self.compiler.detect_language(ext.sources)
            ext.extra_compile_args = (flags + (cxx_flags if language == "c++" else [])
                                      + list(ext.extra_compile_args))
            ext.extra_link_args = link_args + list(ext.extra_link_args)
            ext.define_macros = list(ext.define_macros) + [
                ("FASTCONV_BUILD_FLAGS", c_string(" ".join(flags))),
                ("FASTCONV_BUILD_COMPILER", c_string(compiler_name)),
            ]
        # build_ext only compares timestamps: rebuild everything when the flags
        # differ from the last successful build in this build directory, so that
        # e.g. switching FASTCONV_DISABLE_OPENMP never keeps the old modules.
        stamp = os.path.join(self.build_temp, "fastconv-build-flags.txt")
        stamp_text = "\n".join([compiler_name] + flags + cxx_flags + ["|"] + link_args) + "\n"
        if read_text(stamp) != stamp_text:
            self.force = True
            if os.path.exists(stamp):
                os.remove(stamp)
        # pip shows this only with -v (it hides a build's output unless the
        # build fails); `python -m build` and setup.py show it.
        print(f"fastconv: building {len(self.extensions)} extension modules; compiling "
              "them all (kernels for several SIMD levels) takes about 1-2 minutes "
              "on 2 cores", flush=True)
        super().build_extensions()
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w") as f:
            f.write(stamp_text)

    def openmp_args(self):
        """(compile_args, link_args) for OpenMP; empty for a serial build."""
        fail = env_flag("FASTCONV_FAIL_NO_OPENMP")
        if env_flag("FASTCONV_DISABLE_OPENMP"):
            message = ("fastconv: FASTCONV_DISABLE_OPENMP is set; building serial "
                       "(single-threaded) kernels without OpenMP.")
            if fail:
                raise RuntimeError(
                    message + " FASTCONV_FAIL_NO_OPENMP is set too, so this is an error.")
            warnings.warn(message)
            return [], []
        openmp = probe_openmp(self.compiler)
        if openmp is None:
            message = (
                "fastconv: the compiler has no working OpenMP support; building "
                "serial (single-threaded) kernels. Install an OpenMP runtime "
                "(libgomp for gcc, libomp for clang; on macOS `brew install "
                "libomp`, or set LIBOMP_PREFIX) for multithreading."
            )
            if fail:
                raise RuntimeError(message + " (FASTCONV_FAIL_NO_OPENMP is set)")
            warnings.warn(message)
            return [], []
        print(f"fastconv: OpenMP flags: compile {' '.join(openmp[0])}, "
              f"link {' '.join(openmp[1]) or '(none)'}")
        return openmp


def read_text(path):
    """The contents of ``path``, or None if it cannot be read."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def c_string(text):
    """A macro value that expands to the C string literal ``text``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


KERNEL_DIR = os.path.join("src", "fastconv", "_kernels")
KERNEL_HEADERS = sorted(os.path.join(KERNEL_DIR, name) for name in os.listdir(KERNEL_DIR)
                        if name.endswith(".hpp"))
PXD_FILES = [os.path.join("src", "fastconv", name)
             for name in ("_kernels.pxd", "_cpu.pxd", "_interrupt.pxd", "_openmp_helpers.pxd",
                          "_parallel.pxd")]


def kernel_extension(name):
    """fastconv.<name>, C++ on the kernel headers (every one a dependency)."""
    return Extension(
        f"fastconv.{name}",
        [f"src/fastconv/{name}.pyx"],
        include_dirs=[KERNEL_DIR, numpy.get_include()],
        depends=KERNEL_HEADERS + PXD_FILES,
        language="c++",
    )


extensions = [
    Extension(
        "fastconv._openmp_helpers",
        ["src/fastconv/_openmp_helpers.pyx"],
    ),
    # The kernels of every instruction-set level and the one ISA state.
    kernel_extension("_cpu"),
    # The drivers: each executes a plan's path (fastconv._plan).
    kernel_extension("_direct"),
    kernel_extension("_direct_gemm"),
    kernel_extension("_winograd"),
    kernel_extension("_spectral"),
]


def license_metadata():
    """The license for setup(): pyproject.toml lists "license" as dynamic so
    that setuptools >= 77 gets an SPDX License-Expression (the TOML table form
    and License classifiers are deprecated there) while older setuptools,
    which reject the string form in pyproject.toml, get a plain License."""
    major = int(setuptools.__version__.split(".")[0])
    if major >= 77:
        return {"license_expression": "BSD-3-Clause", "license_files": ["LICENSE"]}
    return {"license": "BSD-3-Clause", "license_files": ["LICENSE"]}


setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3},
    ),
    cmdclass={"build_ext": BuildExt},
    **license_metadata(),
)
