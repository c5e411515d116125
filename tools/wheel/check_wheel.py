"""Check a repaired fastconv wheel: its tag, size, contents and metadata.

    python tools/wheel/check_wheel.py dist/fastconv-*.whl

Run by tools/wheel/build_and_check.sh after ``auditwheel repair`` (it needs
pyelftools, which auditwheel installs). Prints what it measured; exits 1
with every failed check listed. The checks:

* the platform tag is a manylinux one (``auditwheel repair`` found every
  external library allowed or vendored), for this machine's architecture,
  in the file name and in WHEEL;
* the file is at most MAX_BYTES;
* it holds the compiled modules, the type stubs and py.typed, a vendored
  OpenMP runtime (``fastconv.libs/libgomp*``), and no source: no .pyx, .pxd,
  .hpp/.h, .c/.cpp;
* no ELF file in it carries debug information (.debug_* sections);
* fastconv's own modules need no glibc symbol newer than OWN_GLIBC_MAX (the
  manylinux2014 baseline), so that cibuildwheel's manylinux2014 image builds
  the same code (this machine's tag is set by the vendored libgomp);
* METADATA has project URLs, classifiers (Development Status, Operating
  System, Python versions) and a Markdown long description without
  relative links.
"""

import argparse
import io
import platform
import re
import sys
import zipfile

from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

MAX_BYTES = 2_000_000
OWN_GLIBC_MAX = (2, 17)
MODULES = ["_cpu", "_direct", "_direct_gemm", "_winograd", "_spectral", "_openmp_helpers"]
SOURCE_SUFFIXES = (".pyx", ".pxd", ".hpp", ".h", ".c", ".cpp")
TAG = re.compile(r"^manylinux_(\d+)_(\d+)_(\w+)$|^manylinux(1|2010|2014)_(\w+)$")
LEGACY_GLIBC = {"1": (2, 5), "2010": (2, 12), "2014": (2, 17)}


def platform_tags(name):
    """The platform tags of a wheel file name (compressed tag sets split)."""
    stem = name[:-len(".whl")]
    return stem.split("-")[-1].split(".")


def glibc_versions_needed(data):
    """The GLIBC_x.y versions an ELF file's symbols need, as tuples."""
    elf = ELFFile(io.BytesIO(data))
    needed = set()
    for section in elf.iter_sections():
        if isinstance(section, GNUVerNeedSection):
            for _, auxiliaries in section.iter_versions():
                for aux in auxiliaries:
                    match = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", aux.name)
                    if match:
                        needed.add((int(match.group(1)), int(match.group(2))))
    return needed


def debug_sections(data):
    elf = ELFFile(io.BytesIO(data))
    return [s.name for s in elf.iter_sections() if s.name.startswith((".debug_", ".zdebug_"))]


def check(path):
    failures = []

    def expect(ok, message):
        if not ok:
            failures.append(message)

    name = path.rsplit("/", 1)[-1]
    machine = platform.machine()
    with open(path, "rb") as f:
        size = len(f.read())
    print(f"wheel: {name}, {size} bytes ({size / 1e6:.2f} MB; limit {MAX_BYTES / 1e6:.1f} MB)")
    expect(size <= MAX_BYTES, f"{size} bytes, more than {MAX_BYTES}")

    # The tag: manylinux for this machine's architecture.
    for tag in platform_tags(name):
        match = TAG.match(tag)
        expect(match is not None, f"platform tag {tag} is not a manylinux tag")
        if match:
            arch = match.group(3) or match.group(5)
            glibc = ((int(match.group(1)), int(match.group(2))) if match.group(1)
                     else LEGACY_GLIBC[match.group(4)])
            print(f"tag: {tag} (glibc >= {glibc[0]}.{glibc[1]}, {arch})")
            expect(arch == machine, f"tag {tag} is not for this machine ({machine})")

    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        info = [n for n in names if n.endswith(".dist-info/WHEEL")]
        expect(len(info) == 1, "no single .dist-info/WHEEL")
        wheel_text = wheel.read(info[0]).decode() if info else ""
        for tag in platform_tags(name):
            expect(re.search(rf"^Tag: .*-{re.escape(tag)}$", wheel_text, re.M) is not None,
                   f"WHEEL has no Tag line for {tag}")

        # Contents: compiled modules, stubs, the vendored OpenMP runtime; no sources.
        for module in MODULES:
            found = [n for n in names if re.fullmatch(rf"fastconv/{module}\.[^/]*\.so", n)]
            expect(len(found) == 1, f"no compiled fastconv/{module} module")
            expect(f"fastconv/{module}.pyi" in names, f"no fastconv/{module}.pyi stub")
        expect("fastconv/py.typed" in names, "no fastconv/py.typed")
        openmp = [n for n in names if re.match(r"fastconv\.libs/lib(gomp|omp|iomp5)[-.]", n)]
        print(f"vendored OpenMP runtime: {', '.join(openmp) or 'none'}")
        expect(bool(openmp), "no vendored OpenMP runtime in fastconv.libs/")
        sources = [n for n in names if n.endswith(SOURCE_SUFFIXES)]
        expect(not sources, f"source files in the wheel: {sources}")

        # ELF files: no debug information; our own modules on the 2.17 baseline.
        own_glibc = set()
        for n in names:
            if not re.search(r"\.so(\.[\d.]+)?$", n):
                continue
            data = wheel.read(n)
            debug = debug_sections(data)
            expect(not debug, f"{n} has debug sections {debug}")
            print(f"  {n}: {len(data)} bytes, debug sections: {len(debug)}")
            if n.startswith("fastconv/"):
                own_glibc |= glibc_versions_needed(data)
        newest = max(own_glibc, default=(0, 0))
        print(f"fastconv's own modules need glibc symbols up to {newest[0]}.{newest[1]}")
        expect(newest <= OWN_GLIBC_MAX,
               f"fastconv's modules need GLIBC_{newest[0]}.{newest[1]}, newer than "
               f"manylinux2014's {OWN_GLIBC_MAX[0]}.{OWN_GLIBC_MAX[1]}")

        # Metadata: URLs, classifiers, a long description that renders elsewhere.
        meta = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = wheel.read(meta[0]).decode() if meta else ""
    headers, _, description = metadata.partition("\n\n")
    for field in ("Project-URL: Source", "Project-URL: Issues",
                  "Classifier: Development Status", "Classifier: Operating System",
                  "Classifier: Programming Language :: Python :: 3.",
                  "Description-Content-Type: text/markdown", "Requires-Python"):
        expect(field in headers, f"METADATA has no {field!r}")
    expect(len(description) > 1000, "METADATA has no long description")
    links = re.findall(r"\]\(([^)\s]+)\)", re.sub(r"```.*?```", "", description, flags=re.S))
    relative = [link for link in links
                if not re.match(r"[a-z][a-z0-9+.-]*:", link) and not link.startswith("#")]
    expect(not relative, f"relative links in the long description: {relative}")
    print(f"metadata: {headers.count('Classifier:')} classifiers, "
          f"{headers.count('Project-URL:')} project URLs, {len(links)} links in the "
          f"description, {len(relative)} relative")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel")
    failures = check(parser.parse_args().wheel)
    if failures:
        print("\nwheel check FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print("wheel check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
