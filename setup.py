"""Build minirnn's compiled kernels, ``minirnn._kernels``, with OpenMP where the compiler has it.

Metadata lives in pyproject.toml; this file only describes the extension and how to compile it.

Environment switches (read at build time):

    MINIRNN_NO_OPENMP=1       build serial kernels (no OpenMP probe, no -fopenmp)
    MINIRNN_REQUIRE_OPENMP=1  fail the build when OpenMP is missing instead of falling back
                              to serial (CI sets it, so a lost OpenMP cannot pass unnoticed);
                              implies MINIRNN_REQUIRE_KERNELS
    MINIRNN_REQUIRE_KERNELS=1 fail the build when there is no working C compiler instead of
                              installing minirnn without its kernels (NumPy path only)
    MINIRNN_NATIVE=1          add -march=native: faster, but the binary then runs only on
                              CPUs like the build machine's. Off by default.
    MINIRNN_DEBUG=1           keep debug information (-g, not stripped) for gdb/perf; the
                              default build has none (-g0, stripped: ~1 MB instead of ~5 MB)
    MINIRNN_OPT=-O1           the optimisation level (-O0, -O1, -O2, -O3 or -Os; default -O3).
                              The sanitizer build of .ci/sanitize uses -O1: it compiles in
                              less than half the time (measured: 314 s against 748 s)

What was decided is printed ("minirnn: building WITH OpenMP" or a loud warning). pip hides a
build's output unless run with -v; afterwards the extension itself reports it:

    python -c "import minirnn._kernels as k; print(k.build_info())"

Without a working C compiler the build says so ("no C compiler ...") and installs minirnn
without its kernels: ``import minirnn`` then warns, and everything runs on the NumPy path.

Flags: -O3 and -fno-trapping-math (the value-safe part of fast-math: it lets gcc vectorise
loops with branches, as clang does by default; results are unchanged). Never -ffast-math or
-Ofast: they change results (and broke llm.c's backward).
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _opt_level():
    """MINIRNN_OPT (default -O3): one of -O0, -O1, -O2, -O3, -Os."""
    level = os.environ.get("MINIRNN_OPT", "").strip() or "-O3"
    if level not in ("-O0", "-O1", "-O2", "-O3", "-Os"):
        raise SystemExit(f"minirnn: MINIRNN_OPT must be one of -O0, -O1, -O2, -O3, -Os; "
                         f"got {level!r}")
    return level


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _say(msg):
    print(msg, flush=True)


def _loud_warning(msg):
    bar = "!" * 78
    text = "\n".join([bar, "minirnn: WARNING: " + msg, bar])
    print(text, file=sys.stderr, flush=True)


# A program that needs the OpenMP header, the pragma, and the runtime library at link and run time.
OPENMP_TEST_PROGRAM = textwrap.dedent(
    r"""
    #include <omp.h>
    #include <stdio.h>
    #ifndef _OPENMP
    #error "_OPENMP is not defined: the compiler ignored the OpenMP flag"
    #endif
    int main(void) {
        int n = 0;
        #pragma omp parallel num_threads(2) reduction(+:n)
        n += 1;
        printf("threads=%d max=%d version=%d\n", n, omp_get_max_threads(), (int)_OPENMP);
        return n >= 1 ? 0 : 1;
    }
    """
)


def _openmp_flag_candidates(compiler):
    """(compile args, link args) to try, in order, for this compiler."""
    if compiler.compiler_type == "msvc":
        return [(["/openmp"], [])]
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":
        # Apple clang has no -fopenmp; with Homebrew's libomp this form works.
        candidates.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    return candidates


def _try_openmp(compiler, cflags, ldflags):
    """Compile, link and run OPENMP_TEST_PROGRAM with the configured compiler. Returns the
    program's output line, or None when any step fails."""
    tmpdir = tempfile.mkdtemp(prefix="minirnn_openmp_probe_")
    cwd = os.getcwd()
    try:
        os.chdir(tmpdir)
        with open("test_openmp.c", "w") as f:
            f.write(OPENMP_TEST_PROGRAM)
        objects = compiler.compile(["test_openmp.c"], extra_postargs=cflags)
        compiler.link_executable(objects, "test_openmp", extra_postargs=ldflags)
        exe = os.path.join(tmpdir, "test_openmp" + (compiler.exe_extension or ""))
        out = subprocess.run([exe], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            return None
        return out.stdout.strip()
    except Exception as e:  # CompileError, LinkError, OSError, TimeoutExpired
        _say("minirnn: OpenMP probe with %s failed (%s)" % (" ".join(cflags), type(e).__name__))
        return None
    finally:
        os.chdir(cwd)
        shutil.rmtree(tmpdir, ignore_errors=True)


def decide_openmp(compiler):
    """Return (compile args, link args) for OpenMP, or None for a serial build; say which."""
    if _env_flag("MINIRNN_NO_OPENMP"):
        if _env_flag("MINIRNN_REQUIRE_OPENMP"):
            raise SystemExit("minirnn: MINIRNN_NO_OPENMP and MINIRNN_REQUIRE_OPENMP are both set")
        _loud_warning(
            "MINIRNN_NO_OPENMP is set: building WITHOUT OpenMP. The kernels will run on one "
            "thread (results are the same, only slower)."
        )
        return None
    for cflags, ldflags in _openmp_flag_candidates(compiler):
        out = _try_openmp(compiler, cflags, ldflags)
        if out is not None:
            _say("minirnn: building WITH OpenMP (%s; probe: %s)" % (" ".join(cflags), out))
            return cflags, ldflags
    why = (
        "the compiler could not build an OpenMP program (see the probe above). "
        "On macOS install libomp (brew install libomp); with gcc make sure libgomp is there."
    )
    if _env_flag("MINIRNN_REQUIRE_OPENMP"):
        raise SystemExit("minirnn: MINIRNN_REQUIRE_OPENMP is set and " + why)
    _loud_warning(
        "building WITHOUT OpenMP: the kernels will run on ONE thread (same results, slower): "
        + why + " Set MINIRNN_NO_OPENMP=1 to build serial on purpose, MINIRNN_REQUIRE_OPENMP=1 "
        "to make this an error."
    )
    return None


COMPILER_TEST_PROGRAM = textwrap.dedent(
    r"""
    #include <Python.h>
    int main(void) { return 0; }
    """
)


def compiler_problem(compiler):
    """None when the configured compiler builds a C file that includes Python.h, else a
    sentence saying why not ("no C compiler ..." when there is none)."""
    if compiler.compiler_type == "msvc":
        return None                     # setuptools already explains a missing MSVC
    exe = (getattr(compiler, "compiler_so", None) or ["cc"])[0]
    if shutil.which(exe) is None:
        return (f"no C compiler: {exe!r} (the C compiler this Python was built with, or $CC) "
                "is not installed or not on PATH")
    tmpdir = tempfile.mkdtemp(prefix="minirnn_cc_probe_")
    try:
        src = os.path.join(tmpdir, "test_cc.c")
        with open(src, "w") as f:
            f.write(COMPILER_TEST_PROGRAM)
        compiler.compile([src], output_dir=tmpdir,
                         include_dirs=[sysconfig.get_paths()["include"]])
    except Exception as e:              # CompileError
        return (f"the C compiler {exe!r} cannot compile a file that includes Python.h ({e}); "
                "are Python's headers installed (Debian/Ubuntu: apt install python3-dev)?")
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return None


HOW_TO_GET_A_COMPILER = (
    "Linux: install gcc (Debian/Ubuntu: apt install build-essential python3-dev; Fedora: "
    "dnf install gcc python3-devel); macOS: xcode-select --install; then reinstall minirnn."
)


class BuildExt(build_ext):
    """build_ext that checks for a C compiler, probes OpenMP with it and sets the flags."""

    def build_extensions(self):
        problem = compiler_problem(self.compiler)
        if problem is not None:
            if _env_flag("MINIRNN_REQUIRE_KERNELS") or _env_flag("MINIRNN_REQUIRE_OPENMP"):
                raise SystemExit(f"minirnn: cannot build the compiled kernels: {problem}. "
                                 + HOW_TO_GET_A_COMPILER)
            _loud_warning(
                f"{problem}. Installing minirnn WITHOUT its compiled kernels: it runs on the "
                "pure-NumPy path (same results, much slower) and `import minirnn` warns. "
                + HOW_TO_GET_A_COMPILER + " Set MINIRNN_REQUIRE_KERNELS=1 to make this an error."
            )
            self.extensions = []
            return
        debug = _env_flag("MINIRNN_DEBUG")
        if self.compiler.compiler_type == "msvc":
            cflags = ["/O2"]
            ldflags = []
        else:
            # -g0 after Python's own CFLAGS (which often hold -g) drops the debug information,
            # and the linker strips the symbol table: the extension shrinks about 5x. The
            # dynamic symbols Python needs (PyInit__kernels) stay.
            cflags = [_opt_level(), "-fno-trapping-math", "-g" if debug else "-g0"]
            if _env_flag("MINIRNN_NATIVE"):
                cflags.append("-march=native")
            ldflags = [] if debug or sys.platform == "darwin" else ["-Wl,--strip-all"]
        _say("minirnn: building %s debug information%s" % (
            "WITH" if debug else "without", " (MINIRNN_DEBUG=1)" if debug else
            " (MINIRNN_DEBUG=1 keeps it)"))
        openmp = decide_openmp(self.compiler)
        if openmp is not None:
            cflags = cflags + openmp[0]
            ldflags = ldflags + openmp[1]
        for ext in self.extensions:
            ext.extra_compile_args = list(ext.extra_compile_args or []) + cflags
            ext.extra_link_args = list(ext.extra_link_args or []) + ldflags
            # The decision, recorded for minirnn._kernels.build_info(). The .pyx checks that it
            # agrees with the compiler's own _OPENMP macro.
            ext.define_macros = list(ext.define_macros or []) + [
                ("MINIRNN_BUILT_WITH_OPENMP", "1" if openmp is not None else "0"),
                ("MINIRNN_COMPILE_ARGS", '"%s"' % " ".join(cflags)),
            ]
        # The flags are decided per build, so never reuse objects compiled with other flags.
        self.force = True
        super().build_extensions()


extensions = [
    Extension(
        "minirnn._kernels",
        sources=["minirnn/_kernels.pyx"],
        include_dirs=[numpy.get_include(), "csrc"],
        depends=sorted(glob.glob(os.path.join("csrc", "*.h"))),
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
]

setup(
    ext_modules=cythonize(extensions, compiler_directives={"language_level": 3}),
    cmdclass={"build_ext": BuildExt},
)
