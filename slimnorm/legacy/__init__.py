"""Running unedited tf-slim / research/slim code on TensorFlow 2.21.

`slimnorm.legacy.patch.patch_tf_slim()` puts slimnorm's norms into tf-slim
and repairs the TensorFlow names tf-slim 1.1.0 lost (`repairs`);
`python -m slimnorm.legacy script.py args...` (`runner.main`) applies it,
disables eager execution and runs a script as `__main__`.
"""
