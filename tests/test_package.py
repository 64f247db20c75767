"""Packaging promises: import without TensorFlow explains the extra; no tf_keras."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code):
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_import_without_tensorflow_names_the_extra():
    # A None entry in sys.modules makes `import tensorflow` raise ImportError.
    result = _python("import sys; sys.modules['tensorflow'] = None; import slimnorm")
    assert result.returncode != 0
    assert "slimnorm[cpu]" in result.stderr and "slimnorm[gpu]" in result.stderr


def test_import_slimnorm_and_nets_needs_no_tf_keras_sklearn_or_matplotlib():
    # TensorFlow itself imports sklearn/matplotlib when present, so instead of
    # inspecting sys.modules, make them unimportable and import anyway.
    result = _python(
        "import sys\n"
        "for m in ('tf_keras', 'sklearn', 'matplotlib'): sys.modules[m] = None\n"
        "import slimnorm, nets.nets_factory, nets.inception_v2, nets.small_convnet\n"
        "print('imported')")
    assert result.returncode == 0 and "imported" in result.stdout, result.stderr[-2000:]


def test_no_compat_v1_layers_normalization_in_sources():
    for top in ("slimnorm", "nets"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith(".py"):
                    text = open(os.path.join(dirpath, name), encoding="utf-8").read()
                    for banned in ("tf_keras", "layers.BatchNormalization", "layers.batch_normalization",
                                   "keras.layers"):
                        assert banned not in text, (name, banned)
