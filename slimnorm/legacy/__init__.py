"""Running unedited tf-slim / research/slim code on TensorFlow 2.21.

`slimnorm.legacy.patch.patch_tf_slim()` puts slimnorm's norms into tf-slim
and repairs the TensorFlow names tf-slim 1.1.0 lost (`repairs`);
`python -m slimnorm.legacy [--tf1_api] script.py args...` (`runner.main`)
applies it, disables eager execution, registers the `tensorflow.contrib`
stand-in (`contrib`: slim, quantize, training.HParams from `hparams`), with
`--tf1_api` gives the user's files TF 1's `import tensorflow as tf`
(`tf1_api`), and runs a script as `__main__`.
"""
