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
    python_requires=">=3.10",
    install_requires=[
        "tf-slim==1.1.0",
        "numpy>=1.26,<3",
    ],
    entry_points={
        "console_scripts": [
            "slimnorm-train = slimnorm.cli.train:main",
            "slimnorm-eval = slimnorm.cli.eval:main",
            "slimnorm-demo = slimnorm.cli.demo:main",
            "slimnorm-bench = slimnorm.bench.run:main",
            "slimnorm-bench-config = slimnorm.bench.session_config:main",
            "slimnorm-exp-bn-speedup = slimnorm.bench.exp_bn_speedup:main",
            "slimnorm-exp-gn-batch-size = slimnorm.bench.exp_gn_batch_size:main",
            "slimnorm-exp-sync-bn = slimnorm.bench.exp_sync_bn:main",
            "slimnorm-bench-sync-bn = slimnorm.bench.sync_bn_bench:main",
            "slimnorm-exp-renorm-warmup = slimnorm.bench.exp_renorm_warmup:main",
            "slimnorm-export-inference-graph = slimnorm.export.cli:export_main",
            "slimnorm-precise-bn = slimnorm.export.cli:precise_bn_main",
            "slimnorm-caffe-to-checkpoint = slimnorm.export.cli:caffe_main",
            "slimnorm-bench-fold = slimnorm.export.fold_bench:main",
            "slimnorm-exp-precise-bn = slimnorm.export.precise_bn_experiment:main",
            "slimnorm-legacy = slimnorm.legacy.runner:main",
            "slimnorm-build-tfrecords = slimnorm.data.convert:main",
            "slimnorm-bench-input = slimnorm.bench.input_pipeline:main",
            "slimnorm-launch-local-cluster = slimnorm.train.local_cluster:main",
            "slimnorm-bench-scale-out = slimnorm.bench.scale_out:main",
            "slimnorm-bench-deploy = slimnorm.bench.deploy:main",
        ],
    },
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
    },
)
