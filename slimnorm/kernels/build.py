"""Compiles the fused kernels (group_norm.cc) on first use, into a cache.

Why on first use, not at install time: the project installs as a pure
Python package (`pip install -e .`, no build step), and a machine without
a compiler must still work. The first process that needs the kernels
compiles group_norm.cc against the installed TensorFlow's headers
(`tf.sysconfig`), which takes seconds; every later process loads the
cached library.

The cache file's name is a hash of everything the binary depends on: the
source, TensorFlow's version and compile flags, our compiler flags (which
include the vector instruction sets, chosen from this CPU's flags) and the
compiler's version. A change to any of them compiles a new file instead of
loading a stale one. Parallel processes (pytest workers) do not race: the
compile holds an exclusive lock on a file next to the cache, writes to a
temporary name and renames it into place, so a reader sees either no
library or a complete one.

Cache directory: $SLIMNORM_KERNEL_CACHE, else $XDG_CACHE_HOME/slimnorm,
else ~/.cache/slimnorm.
"""

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "group_norm.cc")
CACHE_ENV = "SLIMNORM_KERNEL_CACHE"
COMPILER_ENV = "CXX"
# Portable optimisation; the vector extensions below only where this CPU has them.
BASE_FLAGS = ("-O3", "-shared", "-fPIC", "-w")
# (flag, the /proc/cpuinfo flags that must all be present)
ISA_FLAGS = (("-mavx2", ("avx2",)), ("-mfma", ("fma",)), ("-mf16c", ("f16c",)))
COMPILE_TIMEOUT = 300


class BuildError(RuntimeError):
    """The kernels could not be compiled; the message says why."""


def cache_dir():
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "slimnorm")


def compiler_flags():
    """Our flags: the portable base plus the vector extensions this CPU has."""
    from slimnorm import precision
    have = precision.cpu_info()[1]
    return list(BASE_FLAGS) + [flag for flag, needs in ISA_FLAGS if have.issuperset(needs)]


def _compiler():
    name = os.environ.get(COMPILER_ENV, "g++")
    path = shutil.which(name)
    if path is None:
        raise BuildError("no C++ compiler: %r is not on PATH (set $%s to choose one)" % (
            name, COMPILER_ENV))
    return path


def _compiler_version(compiler):
    try:
        out = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                             timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError("%s --version failed: %s" % (compiler, exc)) from exc
    return out.stdout.splitlines()[0] if out.stdout else ""


def library_path():
    """Where the library for this source, TensorFlow and CPU lives (built or not).

    Returns (path, compile command without the output file).
    """
    import tensorflow as tf

    compiler = _compiler()
    command = ([compiler] + compiler_flags() + list(tf.sysconfig.get_compile_flags())
               + [SOURCE] + list(tf.sysconfig.get_link_flags()))
    key = hashlib.sha256()
    try:
        with open(SOURCE, "rb") as source:
            key.update(source.read())
    except OSError as exc:
        raise BuildError("cannot read the kernels' source: %s" % exc) from exc
    for part in [tf.__version__, tf.sysconfig.get_lib(), _compiler_version(compiler)] + command:
        key.update(b"\0" + part.encode())
    name = "slimnorm_kernels-%s.so" % key.hexdigest()[:20]
    return os.path.join(cache_dir(), name), command


def build():
    """The path of the compiled library, compiling it if it is not cached."""
    path, command = library_path()
    if os.path.exists(path):
        return path
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        lock = open(os.path.join(directory, ".build.lock"), "w")
    except OSError as exc:
        raise BuildError("cannot write the kernel cache %s: %s" % (directory, exc)) from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # another process may be compiling it
        if os.path.exists(path):
            return path
        logging.getLogger(__name__).info("compiling %s into %s (once per TensorFlow version)",
                                         SOURCE, path)
        fd, partial = tempfile.mkstemp(suffix=".so.partial", dir=directory)
        os.close(fd)
        try:
            _compile(command + ["-o", partial])
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    return path


def _compile(command):
    try:
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=COMPILE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError("compiling %s failed: %s" % (SOURCE, exc)) from exc
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        raise BuildError("compiling %s failed (exit %d): %s" % (
            SOURCE, result.returncode, " | ".join(errors[:5]) or result.stderr[-500:]))
