"""Check minirnn's sdist and wheel: the file lists, and that the extension carries no debug
information. Run by .ci/run from the repo root:

    python .ci/check_dist.py dist/minirnn-X.tar.gz dist/minirnn-X-*.whl

The sdist must hold exactly what builds and installs minirnn (every tracked file of minirnn/
and csrc/, the build files, LICENSE, CHANGELOG.md, README.md) and no tests (MANIFEST.in says
why); the wheel every tracked file of minirnn/ but the Cython source, and the compiled
extension, stripped (MINIRNN_DEBUG=1 builds keep debug information on purpose: pass
--debug-ok then). Exits 1 with the list of problems."""
import argparse
import os
import struct
import subprocess
import sys
import tarfile
import zipfile

TOP = {"pyproject.toml", "setup.py", "LICENSE", "CHANGELOG.md", "README.md", "MANIFEST.in"}
# what setuptools adds to every sdist
GENERATED = {"PKG-INFO", "setup.cfg"}
NOT_IN_WHEEL = (".pyx", ".pxd", ".pxi", ".c", ".h")


def tracked(*paths):
    out = subprocess.run(["git", "ls-files", *paths], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def elf_sections(data):
    """Section names of a 64-bit little-endian ELF file (None for any other format)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    def header(i):
        return struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
    str_off = header(shstrndx)[4]
    names = []
    for i in range(shnum):
        name_off = header(i)[0]
        end = data.index(b"\0", str_off + name_off)
        names.append(data[str_off + name_off:end].decode())
    return names


def check_sdist(path, problems):
    with tarfile.open(path) as t:
        names = [m.name for m in t.getmembers() if m.isfile()]
    root = names[0].split("/")[0]
    files = {n[len(root) + 1:] for n in names}
    files = {f for f in files if not f.startswith("minirnn.egg-info/")} - GENERATED
    expected = tracked("minirnn", "csrc") | TOP
    for f in sorted(expected - files):
        problems.append(f"sdist: missing {f}")
    for f in sorted(files - expected):
        problems.append(f"sdist: unexpected {f}")
    print(f"sdist {os.path.basename(path)}: {len(files)} files, "
          f"{os.path.getsize(path) / 1e6:.2f} MB")


def check_wheel(path, problems, debug_ok):
    with zipfile.ZipFile(path) as z:
        infos = {i.filename: i for i in z.infolist()}
        ext = [n for n in infos if n.startswith("minirnn/_kernels") and
               n.endswith((".so", ".pyd"))]
        ext_data = z.read(ext[0]) if ext else b""
    files = {n for n in infos if not n.startswith("minirnn-")}
    expected = {f for f in tracked("minirnn") if not f.endswith(NOT_IN_WHEEL)}
    for f in sorted(expected - files):
        problems.append(f"wheel: missing {f}")
    for f in sorted(files - expected - set(ext)):
        problems.append(f"wheel: unexpected {f}")
    if len(ext) != 1:
        problems.append(f"wheel: expected one compiled extension minirnn/_kernels*, got {ext}")
    sections = elf_sections(ext_data) if ext else None
    debug = [s for s in sections or () if s.startswith((".debug", ".zdebug")) or s == ".symtab"]
    if debug and not debug_ok:
        problems.append(f"wheel: the extension carries debug information or symbols {debug} "
                        "(build without MINIRNN_DEBUG)")
    print(f"wheel {os.path.basename(path)}: {len(files)} files, "
          f"{os.path.getsize(path) / 1e6:.2f} MB; extension {ext[0] if ext else '-'} "
          f"{len(ext_data) / 1e6:.2f} MB"
          + ("" if sections is None else f", {'with' if debug else 'no'} debug sections"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sdist")
    p.add_argument("wheel")
    p.add_argument("--debug-ok", action="store_true", help="a MINIRNN_DEBUG=1 wheel")
    args = p.parse_args()
    problems = []
    check_sdist(args.sdist, problems)
    check_wheel(args.wheel, problems, args.debug_ok)
    for line in problems:
        print("PROBLEM:", line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
