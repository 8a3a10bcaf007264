"""Builds and loads the C++ recurrent kernels (``stages/kernels/recurrent_sequences.cc``).

The library is compiled on first use against the TensorFlow headers in the installed wheel, with
the machine's C++ compiler (``$CXX``, else ``g++``), in about 20 s, and kept in the user's
cache (``~/.cache/imdb-rnn-pipeline/kernels/``, or under ``$XDG_CACHE_HOME``), where every
clone and test workspace finds it. It is rebuilt whenever the source, TensorFlow, the compiler
or the CPU changes, since each goes into the folder's name: ``-march=native`` code must not run
on a CPU without the instructions it was built for.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
from pathlib import Path

from filelock import FileLock

from stages.files import atomic_path

_CACHE_HOME = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
BUILD_DIR = _CACHE_HOME / "imdb-rnn-pipeline" / "kernels"
SOURCE = Path(__file__).parent / "kernels" / "recurrent_sequences.cc"
LIBRARY_NAME = "recurrent_sequences.so"
# What a user can do when the kernels cannot be built: the same function, computed in TensorFlow.
FALLBACK = "or set train.recurrent_implementation: projected in params.yaml (same model, slower)"

logger = logging.getLogger(__name__)


class KernelBuildError(RuntimeError):
    """The C++ kernels could not be compiled or loaded."""


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _compile_command(compiler: str, source: Path, output: Path) -> list[str]:
    import tensorflow as tf

    return [
        compiler,
        "-shared",
        "-fPIC",
        "-O3",
        "-march=native",
        # TensorFlow's headers warn about their own deprecations by the hundred.
        "-w",
        *tf.sysconfig.get_compile_flags(),
        str(source),
        "-o",
        str(output),
        *tf.sysconfig.get_link_flags(),
    ]


def _compiler_version(compiler: str) -> str:
    result = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.splitlines()[0] if result.stdout else ""


def library_path(build_dir: Path = BUILD_DIR) -> Path:
    """The compiled library, built first if it is missing. Safe to call from several processes
    at once: one builds while the others wait for it."""
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise KernelBuildError(
            f"the C++ recurrent kernels need a C++ compiler and {compiler!r} was not found: "
            f"install one (Debian/Ubuntu: apt-get install g++; or point $CXX at one), {FALLBACK}"
        )
    import tensorflow as tf

    key = hashlib.sha256()
    for part in (
        SOURCE.read_bytes(),
        tf.__version__.encode(),
        # The flags, not where this copy of the project is: every copy shares one build.
        " ".join(_compile_command(compiler, Path("source.cc"), Path("out.so"))).encode(),
        _compiler_version(compiler).encode(),
        _cpu_flags().encode(),
    ):
        key.update(part)
    folder = build_dir / key.hexdigest()[:16]
    library = folder / LIBRARY_NAME
    if library.exists():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / ".lock"):
        if library.exists():
            return library
        # Compiled beside its final name and renamed: a half-written library is never loaded.
        with atomic_path(library) as partial:
            result = subprocess.run(
                _compile_command(compiler, SOURCE, partial),
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise KernelBuildError(
                    f"compiling {SOURCE} failed ({compiler} exited with {result.returncode}):\n"
                    f"{result.stderr[-3000:]}\nFix the compiler setup, {FALLBACK}"
                )
    return library


@functools.cache
def recurrent_ops():
    """The loaded ops: ``imdb_{simple_rnn,lstm,gru}_sequence`` and their ``_grad``."""
    import tensorflow as tf

    library = library_path()
    try:
        return tf.load_op_library(str(library))
    except (tf.errors.NotFoundError, OSError) as error:
        raise KernelBuildError(
            f"loading {library} failed ({error}); delete {library.parent} to rebuild it, {FALLBACK}"
        ) from error


def recurrent_ops_or_none():
    """The loaded ops, or None where they cannot be built, with a warning once per process: for
    running a model trained with them on a machine without a compiler, in TensorFlow instead."""
    try:
        return recurrent_ops()
    except KernelBuildError as error:
        _warn_about_fallback(str(error))
        return None


@functools.cache
def _warn_about_fallback(reason: str) -> None:
    logger.warning(
        "the recurrent layers run in TensorFlow ops instead of the C++ kernels (the same "
        "function, slower): %s",
        reason,
    )
