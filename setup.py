"""Build the compiled extensions of fastconv.

OpenMP is detected per compiler by compiling *and running* a tiny program
with each candidate flag set. Without a working OpenMP the build warns and
produces serial modules, unless FASTCONV_FAIL_NO_OPENMP=1 makes that an error.

Optimisation is -O3 (/O2 on MSVC) for a generic target: no -march=native and
no -ffast-math. The micro-kernels carry their own AVX2/AVX-512 variants, chosen
at run time (see src/fastconv/_kernels/microkernel.hpp).
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
                ([f"-Xpreprocessor", "-fopenmp", f"-I{prefix}/include"],
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
    return ["-O3"]


class BuildExt(build_ext):
    """build_ext that adds OpenMP and optimisation flags to every extension."""

    def build_extensions(self):
        openmp = probe_openmp(self.compiler)
        if openmp is None:
            message = (
                "fastconv: the compiler has no working OpenMP support; building "
                "serial (single-threaded) kernels. Install an OpenMP runtime "
                "(libgomp for gcc, libomp for clang) for multithreading."
            )
            if os.environ.get("FASTCONV_FAIL_NO_OPENMP", "0") not in ("", "0"):
                raise RuntimeError(message + " (FASTCONV_FAIL_NO_OPENMP is set)")
            warnings.warn(message)
            compile_args, link_args = [], []
        else:
            compile_args, link_args = openmp
        flags = optimisation_args(self.compiler) + compile_args
        compiler_name = os.path.basename(self.compiler.compiler_so[0]) if hasattr(
            self.compiler, "compiler_so") else self.compiler.compiler_type
        for ext in self.extensions:
            ext.extra_compile_args = flags + list(ext.extra_compile_args)
            ext.extra_link_args = link_args + list(ext.extra_link_args)
            ext.define_macros = list(ext.define_macros) + [
                ("FASTCONV_BUILD_FLAGS", c_string(" ".join(flags))),
                ("FASTCONV_BUILD_COMPILER", c_string(compiler_name)),
            ]
        super().build_extensions()


def c_string(text):
    """A macro value that expands to the C string literal ``text``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


KERNEL_DIR = os.path.join("src", "fastconv", "_kernels")
extensions = [
    Extension(
        "fastconv._openmp_helpers",
        ["src/fastconv/_openmp_helpers.pyx"],
    ),
    Extension(
        "fastconv._direct",
        ["src/fastconv/_direct.pyx"],
        include_dirs=[KERNEL_DIR, numpy.get_include()],
        depends=[os.path.join(KERNEL_DIR, "microkernel.hpp")],
        language="c++",
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3},
    ),
    cmdclass={"build_ext": BuildExt},
)
