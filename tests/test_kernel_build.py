"""slimnorm.kernels.build: the compile-on-first-use cache, and the fallback
when there is no working compiler.

A fake compiler (a shell script) stands in for g++ where what is tested is
the cache's behaviour, not the kernels: it records each compile and writes
the output file, so the tests take seconds.
"""
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from slimnorm.kernels import build

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fake_compiler(directory, body):
    path = os.path.join(str(directory), "fake-cxx")
    with open(path, "w") as script:
        script.write("#!/bin/sh\n"
                     'if [ "$1" = "--version" ]; then echo "fake-cxx 1.0"; exit 0; fi\n'
                     + body)
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return path


# Logs the call, takes a second (so two processes overlap), writes the file after -o.
SLOW_COMPILE = textwrap.dedent("""\
    echo compile >> "$FAKE_LOG"
    sleep 1
    while [ $# -gt 0 ]; do
      if [ "$1" = "-o" ]; then echo library > "$2"; fi
      shift
    done
    """)


def _env(tmp_path, compiler, **extra):
    env = dict(os.environ, PYTHONPATH=ROOT, SLIMNORM_KERNEL_CACHE=str(tmp_path / "cache"),
               CXX=compiler, FAKE_LOG=str(tmp_path / "log"), TF_CPP_MIN_LOG_LEVEL="2")
    env.update(extra)
    return env


def test_parallel_first_uses_compile_once(tmp_path):
    compiler = _fake_compiler(tmp_path, SLOW_COMPILE)
    code = "from slimnorm.kernels import build; print(build.build())"
    env = _env(tmp_path, compiler)
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err[-2000:]
            outs.append(out.strip().splitlines()[-1])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert outs[0] == outs[1]
    with open(tmp_path / "log") as log:
        assert log.read().split() == ["compile"]
    with open(outs[0]) as library:
        assert library.read().strip() == "library"
    # nothing half-written is left behind
    assert sorted(os.listdir(tmp_path / "cache")) == [".build.lock", os.path.basename(outs[0])]


def test_cached_library_is_not_compiled_again(tmp_path, monkeypatch):
    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", _fake_compiler(tmp_path, SLOW_COMPILE))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "log"))
    assert build.build() == build.build()
    with open(tmp_path / "log") as log:
        assert log.read().split() == ["compile"]


def test_cache_key_follows_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", _fake_compiler(tmp_path, SLOW_COMPILE))
    first, _ = build.library_path()
    copy = tmp_path / "group_norm.cc"
    with open(build.SOURCE) as source:
        copy.write_text(source.read() + "\n// changed\n")
    monkeypatch.setattr(build, "SOURCE", str(copy))
    second, command = build.library_path()
    assert first != second and str(copy) in command


def test_cache_directory_defaults(monkeypatch):
    monkeypatch.delenv(build.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere")
    assert build.cache_dir() == "/somewhere/slimnorm"
    monkeypatch.setenv(build.CACHE_ENV, "/elsewhere")
    assert build.cache_dir() == "/elsewhere"


def test_missing_compiler_is_a_build_error(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-slimnorm")
    with pytest.raises(build.BuildError, match="no-such-compiler-slimnorm.*not on PATH"):
        build.build()


def test_failing_compile_is_a_build_error_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", _fake_compiler(
        tmp_path, 'echo "group_norm.cc:1:1: error: broken header" >&2\nexit 1\n'))
    with pytest.raises(build.BuildError, match="exit 1.*error: broken header"):
        build.build()
    assert os.listdir(tmp_path / "cache") == [".build.lock"]


def test_without_a_compiler_the_layers_fall_back(tmp_path):
    # A fresh process, an empty cache and no compiler: kernels_available()
    # says why, and group_norm runs on the TF-ops path with the right values.
    code = textwrap.dedent("""\
        import numpy as np, tensorflow as tf, slimnorm
        from slimnorm import reference
        print(slimnorm.kernels_available())
        x = np.random.default_rng(0).normal(size=(2, 3, 3, 8)).astype(np.float32)
        with tf.Graph().as_default() as graph:
            y = slimnorm.group_norm(tf.constant(x), groups=4)
            types = {op.type for op in graph.get_operations()}
            with tf.compat.v1.Session() as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                out = sess.run(y)
        print("kernel op" if "SlimnormGroupNorm" in types else "tf ops",
              np.abs(out - reference.group_norm(x, 4)).max() < 1e-5)
        """)
    env = _env(tmp_path, "no-such-compiler-slimnorm")
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-2].startswith("(False, ") and "no C++ compiler" in lines[-2]
    assert lines[-1] == "tf ops True"
