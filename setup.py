"""slimnorm: batch/group/layer/instance norm for TF1-style slim code on TF 2.21."""
from setuptools import find_packages, setup

TF_VERSION = "2.21.*"

setup(
    name="slimnorm",
    version="0.1.0",
    description=(
        "Drop-in batch norm (and group/layer/instance norm, batch renorm) "
        "for tf.compat.v1 / tf-slim graph code on TensorFlow 2.21"
    ),
    long_description=open("README.md", encoding="utf-8").read()
    if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["slimnorm", "slimnorm.*", "nets", "nets.*"]),
    # The fused kernels' source, compiled on first use (slimnorm.kernels.build).
    package_data={"slimnorm.kernels": ["*.cc"]},
    license="Apache-2.0",
    python_requires=">=3.10",
    install_requires=[
        "tf-slim==1.1.0",
        "numpy>=1.26,<3",
    ],
    # One command, `slimnorm <subcommand>` (slimnorm/cli/main.py); research/slim's
    # script names are in the checkout's scripts/.
    entry_points={"console_scripts": ["slimnorm = slimnorm.cli.main:main"]},
    extras_require={
        "cpu": ["tensorflow-cpu==" + TF_VERSION],
        "gpu": ["tensorflow[and-cuda]==" + TF_VERSION],
        # Tests also use tf-keras 2.21.0 (tests/slim_oracle.py: tf-slim's own batch_norm as a
        # test-only oracle; skipped without it). It is not listed here: its declared
        # dependencies would pull the full `tensorflow` wheel over tensorflow-cpu, so
        # `make venv` installs it with `pip install --no-deps tf-keras==2.21.0`.
        "test": ["pytest>=8,<10", "scikit-learn>=1.5,<2", "ruff==0.17.6"],
        "data": ["scikit-learn>=1.5,<2"],
        "plots": ["matplotlib>=3.8,<4"],
        # export --output_format tflite / onnx (slimnorm.export.formats.EXTRAS)
        "tflite": ["ai-edge-litert==2.3.0"],
        "onnx": ["tf2onnx==1.17.0", "onnxruntime==1.32.0"],
        "tensorboard": ["tensorboard==" + TF_VERSION],
        "docs": ["mkdocs==1.6.1"],
    },
)
