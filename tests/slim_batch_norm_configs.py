"""Random batch-norm configurations for tests/test_slim_fidelity.py (issue 22).

Seeded configurations over the argument space: ranks 2-5, NHWC/NCHW, slim's
fused function, its Keras layer with and without the kernel and its legacy
code, float16/float32, training/eval, zero-debias, batch weights, renorm,
`trainable`, and `updates_collections` default/None/custom/an equal string.
Expected outputs and moving statistics come from slimnorm.reference (numpy,
float64); which path slim took and which variance it stored are restated
here from tf-slim 1.1.0's source (the Bessel-corrected variance exactly where
it ran the fused kernel).
"""
import numpy as np
import tensorflow as tf

from slimnorm import reference as ref

tf1 = tf.compat.v1
GK = tf1.GraphKeys

RANDOM_CONFIGS = 48


def random_config(index):
    rng = np.random.default_rng(2200 + index)
    rank = int(rng.integers(2, 6))
    config = dict(
        rank=rank, data_format=str(rng.choice(["NHWC", "NCHW"])),
        dtype=str(rng.choice(["float32", "float16"])),
        is_training=bool(rng.random() < 0.8), center=bool(rng.random() < 0.8),
        scale=bool(rng.random() < 0.6), trainable=bool(rng.random() < 0.8),
        fused=[None, True, False][int(rng.integers(3))],
        updates=str(rng.choice(["default", "none", "equal_name", "mine"])),
        weighted=bool(rng.random() < 0.2), zero_debias=bool(rng.random() < 0.2),
        renorm=bool(rng.random() < 0.2), decay=float(rng.choice([0.0, 0.5, 0.9])),
        epsilon=float(rng.choice([1e-3, 1e-5, 0.0])), seed=int(rng.integers(1 << 30)))
    if config["renorm"]:   # slim had renorm on its Keras-layer path only
        config.update(updates="default", weighted=False, zero_debias=False)
    return config


def _updates_collections(config):
    return {"default": GK.UPDATE_OPS, "none": None, "mine": "mine",
            "equal_name": "".join(["update_", "ops"])}[config["updates"]]


def _slim_path(config):
    """tf-slim 1.1.0's batch_norm dispatch, restated from its source."""
    identical_default = config["updates"] == "default"
    fusable = not config["weighted"] and not config["renorm"] and config["rank"] in (2, 4)
    if config["fused"] is not False and fusable and (
            config["zero_debias"] or config["rank"] == 2 or not identical_default):
        return "fused"
    if not config["weighted"] and not config["zero_debias"] and identical_default:
        return "layer"
    return "legacy"


def _slim_ran_the_kernel(config):
    path = _slim_path(config)
    if path == "fused":
        return True
    return path == "layer" and config["fused"] is not False and config["rank"] in (4, 5) and (
        not config["renorm"])


def random_inputs(config):
    rng = np.random.default_rng(config["seed"])
    channels = int(rng.integers(1, 4))
    spatial = [int(n) for n in rng.integers(1, 4, size=config["rank"] - 2)]
    shape = [int(rng.integers(2, 5))] + (
        [channels] + spatial if config["data_format"] == "NCHW" and config["rank"] > 2
        else spatial + [channels])
    x = rng.normal(rng.uniform(-3, 3), rng.uniform(0.5, 3), size=shape).astype(config["dtype"])
    params = {"beta": rng.normal(size=channels), "gamma": rng.uniform(0.5, 2, channels),
              "moving_mean": rng.normal(size=channels),
              "moving_variance": rng.uniform(0.5, 3, channels)}
    weights = rng.uniform(0.2, 2, shape[0]) if config["weighted"] else None
    return x, params, weights


def batch_norm_kwargs(config, params, weights):
    kwargs = dict(
        decay=config["decay"], center=config["center"], scale=config["scale"],
        epsilon=config["epsilon"], is_training=config["is_training"],
        trainable=config["trainable"], fused=config["fused"],
        data_format=config["data_format"], zero_debias_moving_mean=config["zero_debias"],
        renorm=config["renorm"], updates_collections=_updates_collections(config),
        param_initializers={k: tf1.constant_initializer(v.astype(np.float32))
                            for k, v in params.items()})
    if weights is not None:
        kwargs["batch_weights"] = weights.astype(np.float32)
    return kwargs


def run_one_step(build, x, config):
    """Output of one step, then the moving statistics after its updates ran."""
    with tf.Graph().as_default():
        y = build()
        collection = _updates_collections(config)
        updates = tf1.get_collection(collection) if collection else []
        names = [v.op.name for v in tf1.global_variables()]
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            out = sess.run([y] + updates)[0]
            stats = {name.split("/")[-1]: sess.run(v) for name, v in zip(
                names, tf1.global_variables()) if name.split("/")[-1] in (
                    "moving_mean", "moving_variance")}
    return out.astype(np.float64), stats, names, len(updates)


def expected(config, x, params, weights):
    """(output, moving_mean, moving_variance) from slimnorm.reference and slim's rules."""
    fmt, eps, decay = config["data_format"], config["epsilon"], config["decay"]
    gamma = params["gamma"] if config["scale"] else None
    beta = params["beta"] if config["center"] else None
    mm, mv = params["moving_mean"], params["moving_variance"]
    if not config["is_training"]:
        return ref.batch_norm_inference(x, mm, mv, gamma, beta, eps, fmt), mm, mv
    x64 = x.astype(np.float64)
    if config["renorm"]:
        y, mean, var, _, _, _ = ref.batch_renorm_train(x64, mm, np.sqrt(mv), gamma, beta, eps,
                                                       data_format=fmt)
    else:
        y, mean, var = ref.batch_norm_train(x64, gamma, beta, eps, fmt, batch_weights=weights)
    if _slim_path(config) == "layer" and not config["trainable"]:
        return y, mm, mv                      # slim's layer: no updates when not trainable
    count = values_per_channel(x, config)
    if _slim_ran_the_kernel(config):
        var = ref.unbiased_variance(var, count)
    if config["zero_debias"]:
        new_mean = ref.zero_debiased_moving_average([mean], decay)
    else:
        new_mean = ref.moving_average(mm, mean, decay)
    if config["renorm"]:
        stddev = ref.moving_average(np.sqrt(mv), np.sqrt(var + eps), decay)
        return y, new_mean, np.maximum(stddev ** 2 - eps, 0.0)
    return y, new_mean, ref.moving_average(mv, var, decay)


def tolerance(config):
    return 3e-2 if config["dtype"] == "float16" else 2e-4


def values_per_channel(x, config):
    return x.size // x.shape[ref.channel_axis(config["data_format"], x.ndim)]
