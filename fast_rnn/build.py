"""Compiles the C++ kernels (``recurrent_sequences.cc``, ``sparse_adam.cc``) into one library and
finds it.

The library is compiled against the TensorFlow headers of the installed wheel, with the
machine's C++ compiler (``$CXX``, else ``g++``), in about 20 s, and kept in the user's cache
(``~/.cache/fast-rnn/kernels/``, or under ``$XDG_CACHE_HOME``), where every copy of a project
finds it. It is rebuilt whenever the source, TensorFlow, the compiler or the CPU changes, since
each goes into the folder's name: code built for one instruction set must not run on a CPU
without it.

Build it ahead of time, at set-up, so that a machine without a compiler says so before any work
starts::

    python -m fast_rnn.build

Otherwise the first layer that needs the kernels builds them.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from filelock import FileLock

_CACHE_HOME = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
BUILD_DIR = _CACHE_HOME / "fast-rnn" / "kernels"
SOURCES = tuple(
    Path(__file__).with_name(name) for name in ("recurrent_sequences.cc", "sparse_adam.cc")
)
LIBRARY_NAME = "kernels.so"
# What a user of the layers can do without the kernels: Keras' own layer computes the same.
WITHOUT_KERNELS = "or use Keras' own recurrent layers (the same function, slower)"


class KernelBuildError(RuntimeError):
    """The C++ kernels could not be compiled or loaded; the message names the fix."""


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


# The x86-64 microarchitecture levels, newest first, and the CPU flags each needs (as
# /proc/cpuinfo spells them).
_X86_LEVELS = (
    ("x86-64-v4", {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}),
    ("x86-64-v3", {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "xsave"}),
    ("x86-64-v2", {"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"}),
)


def target_architecture(cpu_flags: str) -> str:
    """The ``-march`` to build for: the newest x86-64 level this CPU has, or ``native``
    elsewhere. Not ``native`` on x86-64: a CPU with AVX512-FP16 (Sapphire Rapids and later)
    makes g++ 12 compile Eigen's FP16 packet header, which fails, and the kernels use nothing
    past AVX-512's base."""
    flags = set(cpu_flags.split())
    if "sse2" not in flags:
        return "native"
    for level, needed in _X86_LEVELS:
        if needed <= flags:
            return level
    return "x86-64"


# Builds for this x86-64 level instead of the newest the CPU has (an older one: to check on one
# machine that results do not depend on the instruction set, or to run what an older CPU runs).
MARCH_VARIABLE = "FAST_RNN_MARCH"


def chosen_architecture(cpu_flags: str) -> str:
    """The ``-march`` to build for: ``$FAST_RNN_MARCH`` if set, else :func:`target_architecture`.

    Raises:
        KernelBuildError: ``$FAST_RNN_MARCH`` names a level this CPU lacks, or no x86-64 level.
    """
    wanted = os.environ.get(MARCH_VARIABLE)
    if not wanted:
        return target_architecture(cpu_flags)
    needed: set[str] = set()
    for level, flags in reversed(_X86_LEVELS):  # Each level needs the flags of those before it.
        needed |= flags
        if level == wanted:
            missing = needed - set(cpu_flags.split())
            if missing:
                raise KernelBuildError(
                    f"{MARCH_VARIABLE}={wanted}, but this CPU lacks {', '.join(sorted(missing))}:"
                    f" unset {MARCH_VARIABLE}, or set an older level"
                )
            return wanted
    if wanted == "x86-64":
        return wanted
    levels = ", ".join(["x86-64", *(level for level, _ in reversed(_X86_LEVELS))])
    raise KernelBuildError(f"{MARCH_VARIABLE}={wanted} is not one of {levels}")


def _compile_command(compiler: str, sources: tuple[Path, ...], output: Path) -> list[str]:
    import tensorflow as tf

    return [
        compiler,
        "-shared",
        "-fPIC",
        "-O3",
        f"-march={chosen_architecture(_cpu_flags())}",
        "-mtune=generic",
        # The kernels' results must not depend on the compiler's choices: no fused multiply-add
        # but those written out. The sources say so in GCC's pragmas too; clang ignores those.
        "-ffp-contract=off",
        # TensorFlow's headers warn about their own deprecations by the hundred.
        "-w",
        *tf.sysconfig.get_compile_flags(),
        *map(str, sources),
        "-o",
        str(output),
        *tf.sysconfig.get_link_flags(),
    ]


def _compiler_version(compiler: str) -> str:
    result = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.splitlines()[0] if result.stdout else ""


def _build_key(compiler: str) -> str:
    import tensorflow as tf

    key = hashlib.sha256()
    for part in (
        *(source.read_bytes() for source in SOURCES),
        tf.__version__.encode(),
        # The flags, not where this copy of the source is: every copy shares one build.
        " ".join(_compile_command(compiler, (Path("source.cc"),), Path("out.so"))).encode(),
        _compiler_version(compiler).encode(),
        _cpu_flags().encode(),
    ):
        key.update(part)
    return key.hexdigest()[:16]


def _compile(compiler: str, library: Path) -> None:
    """Compiles beside ``library`` and renames: a half-written library is never loaded."""
    handle, partial = tempfile.mkstemp(dir=library.parent, prefix=".partial-", suffix=".so")
    os.close(handle)
    try:
        result = subprocess.run(
            _compile_command(compiler, SOURCES, Path(partial)),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise KernelBuildError(
                f"compiling {', '.join(map(str, SOURCES))} failed "
                f"({compiler} exited with {result.returncode}):\n"
                f"{result.stderr[-3000:]}\nFix the compiler setup, {WITHOUT_KERNELS}"
            )
        os.replace(partial, library)
    finally:
        Path(partial).unlink(missing_ok=True)


def library_path(build_dir: Path = BUILD_DIR) -> Path:
    """The compiled library, built first if it is missing. Safe to call from several processes
    at once: one builds while the others wait for it.

    Raises:
        KernelBuildError: There is no compiler, or the build failed; nothing is left behind.
    """
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise KernelBuildError(
            f"the C++ recurrent kernels need a C++ compiler and {compiler!r} was not found: "
            "install one (Debian/Ubuntu: apt-get install g++; or point $CXX at one), "
            f"{WITHOUT_KERNELS}"
        )
    folder = build_dir / _build_key(compiler)
    library = folder / LIBRARY_NAME
    if library.exists():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / ".lock"):
        if not library.exists():
            _compile(compiler, library)
    return library


def _import_tensorflow_without_its_banner() -> None:
    """TensorFlow's C++ side prints two oneDNN lines when it loads, past any log setting: a
    set-up command should print its result only."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def main() -> int:
    _import_tensorflow_without_its_banner()
    try:
        library = library_path()
    except KernelBuildError as error:
        sys.stderr.write(f"fast_rnn: {error}\n")
        return 1
    sys.stdout.write(f"fast_rnn: C++ kernels ready in {library.parent}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
