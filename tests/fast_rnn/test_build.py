"""Building the C++ kernels: cached, rebuilt when what went into them changes, and a clear
error that names the fix when they cannot be built. A stand-in compiler keeps these fast; the
real build is what test_layers.py loads."""

import stat
from pathlib import Path

import pytest

from fast_rnn import build, ops

FAKE_COMPILER = """#!/bin/sh
# Stands in for g++: answers --version, records each build, writes the -o file.
[ "$1" = "--version" ] && {{ echo "fake-c++ 1.0"; exit 0; }}
echo build >> "{log}"
{body}
"""


def _compiler(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-c++"
    log = tmp_path / "builds.log"
    script.write_text(FAKE_COMPILER.format(log=log, body=body))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


WRITES_OUTPUT = 'while [ "$1" != "-o" ]; do shift; done; echo library > "$2"'


def _builds(tmp_path: Path) -> int:
    log = tmp_path / "builds.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_a_built_library_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", str(_compiler(tmp_path, WRITES_OUTPUT)))
    first = build.library_path(tmp_path / "build")
    assert first.read_text() == "library\n"
    assert build.library_path(tmp_path / "build") == first
    assert _builds(tmp_path) == 1


def test_copies_of_the_project_share_one_build(tmp_path, monkeypatch):
    # The end-to-end tests and `dvc exp run --temp` run copies of stages/ from other folders.
    monkeypatch.setenv("CXX", str(_compiler(tmp_path, WRITES_OUTPUT)))
    first = build.library_path(tmp_path / "build")
    copies = []
    for source in build.SOURCES:
        copy = tmp_path / "copy" / source.name
        copy.parent.mkdir(exist_ok=True)
        copy.write_bytes(source.read_bytes())
        copies.append(copy)
    monkeypatch.setattr(build, "SOURCES", tuple(copies))
    assert build.library_path(tmp_path / "build") == first
    copies[-1].write_text(copies[-1].read_text() + "// changed\n")
    assert build.library_path(tmp_path / "build") != first
    assert _builds(tmp_path) == 2


def test_a_changed_cpu_gets_its_own_build(tmp_path, monkeypatch):
    # -march=native code must not be loaded on another CPU from a shared project folder.
    monkeypatch.setenv("CXX", str(_compiler(tmp_path, WRITES_OUTPUT)))
    first = build.library_path(tmp_path / "build")
    monkeypatch.setattr(build, "_cpu_flags", lambda: "flags: fpu sse2")
    second = build.library_path(tmp_path / "build")
    assert second != first
    assert _builds(tmp_path) == 2


def test_a_missing_compiler_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-c++-compiler")
    with pytest.raises(build.KernelBuildError) as error:
        build.library_path(tmp_path / "build")
    message = str(error.value)
    assert "no-such-c++-compiler" in message
    assert "apt-get install g++" in message
    assert "Keras' own recurrent layers" in message
    assert not (tmp_path / "build").exists()


def test_a_failed_build_reports_the_compiler_and_leaves_no_library(tmp_path, monkeypatch):
    # Writes half an output, then fails: nothing half-written may be loaded later.
    failing = WRITES_OUTPUT + '\necho "recurrent_sequences.cc:1: error: broken" >&2\nexit 1'
    monkeypatch.setenv("CXX", str(_compiler(tmp_path, failing)))
    with pytest.raises(build.KernelBuildError) as error:
        build.library_path(tmp_path / "build")
    assert "error: broken" in str(error.value)
    assert "Keras' own recurrent layers" in str(error.value)
    assert not list((tmp_path / "build").rglob(build.LIBRARY_NAME))
    # The next call tries again, and succeeds once the compiler does.
    monkeypatch.setenv("CXX", str(_compiler(tmp_path, WRITES_OUTPUT)))
    assert build.library_path(tmp_path / "build").exists()


def test_the_real_kernels_load():
    kernels = ops.load_kernels()
    for cell in ("simple_rnn", "lstm", "gru"):
        assert callable(getattr(kernels, f"fast_rnn_{cell}_sequence"))
        assert callable(getattr(kernels, f"fast_rnn_{cell}_sequence_grad"))
    assert build.library_path().is_relative_to(build.BUILD_DIR)


def test_the_build_command_reports_a_missing_compiler(monkeypatch, capsys):
    monkeypatch.setenv("CXX", "no-such-c++-compiler")
    assert build.main() == 1
    assert "apt-get install g++" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "level"),
    [
        # This project's machines: an AVX512-FP16 Xeon (where -march=native broke Eigen's
        # headers under g++ 12) and Zen 4 both get the AVX-512 level, no further.
        (
            "fpu sse2 ssse3 sse4_1 sse4_2 popcnt cx16 lahf_lm avx avx2 bmi1 bmi2 f16c fma movbe "
            "xsave avx512f avx512bw avx512cd avx512dq avx512vl avx512_fp16 amx_tile",
            "x86-64-v4",
        ),
        (
            "fpu sse2 ssse3 sse4_1 sse4_2 popcnt cx16 lahf_lm avx avx2 bmi1 bmi2 f16c fma movbe "
            "xsave",
            "x86-64-v3",
        ),
        ("fpu sse2 ssse3 sse4_1 sse4_2 popcnt cx16 lahf_lm", "x86-64-v2"),
        ("fpu sse2", "x86-64"),
        ("Features: fp asimd evtstrm aes pmull sha1 sha2 crc32", "native"),
    ],
)
def test_the_kernels_are_built_for_the_newest_x86_level_the_cpu_has(flags, level):
    assert build.target_architecture(f"flags\t\t: {flags}") == level


AVX2_CPU = (
    "flags\t\t: fpu sse2 ssse3 sse4_1 sse4_2 popcnt cx16 lahf_lm avx avx2 bmi1 bmi2 f16c fma "
    "movbe xsave"
)


def test_an_older_level_may_be_chosen_and_one_the_cpu_lacks_is_refused(monkeypatch):
    monkeypatch.setenv(build.MARCH_VARIABLE, "x86-64-v2")
    assert build.chosen_architecture(AVX2_CPU) == "x86-64-v2"
    monkeypatch.setenv(build.MARCH_VARIABLE, "x86-64-v4")
    with pytest.raises(build.KernelBuildError, match="lacks avx512bw, .*unset FAST_RNN_MARCH"):
        build.chosen_architecture(AVX2_CPU)
    monkeypatch.setenv(build.MARCH_VARIABLE, "skylake")
    with pytest.raises(build.KernelBuildError, match="not one of x86-64, x86-64-v2"):
        build.chosen_architecture(AVX2_CPU)
    monkeypatch.delenv(build.MARCH_VARIABLE)
    assert build.chosen_architecture(AVX2_CPU) == "x86-64-v3"


def test_a_chosen_level_gets_a_build_of_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", str(_compiler(tmp_path, WRITES_OUTPUT)))
    monkeypatch.setattr(build, "_cpu_flags", lambda: AVX2_CPU)
    newest = build.library_path(tmp_path / "kernels")
    monkeypatch.setenv(build.MARCH_VARIABLE, "x86-64-v2")
    older = build.library_path(tmp_path / "kernels")
    assert older != newest and _builds(tmp_path) == 2
