"""Checkpoint evaluation: top-1/top-5 accuracy and mean loss on a data split.

    from slimnorm.train.config import EvalConfig
    from slimnorm.train.evaluation import evaluate
    metrics = evaluate(EvalConfig(dataset='digits'), 'runs/digits')

The network is built with ``is_training=False``: batch norm normalizes with
the moving statistics restored from the checkpoint, so the result does not
depend on the evaluation batch size. ``batch_stats=True`` builds it with
``is_training=True`` instead (each batch normalized with its own statistics,
the moving statistics untouched), which is what an evaluation that forgets
the flag measures; it exists to show that failure.

As slim's ``eval_image_classifier``: ``moving_average_decay`` restores every
model variable from its ExponentialMovingAverage shadow, and
``checkpoint_exclude_scopes`` leaves scopes at their initializers (partial
restores). Names the checkpoint lacks are reported before restoring.

The data come from `slimnorm.train.inputs`: an in-memory split fed in
batches, or (``dataset='tfrecord'``) every record of a TFRecord split read
once with the evaluation preprocessing; a bad record is a ValueError naming
the split and the problem.
"""
import inspect
import math
import os

import tensorflow as tf

from slimnorm import checkpoints, training
from slimnorm.train import inputs
from slimnorm.train.config import NORMALIZERS_WITH_MOVING_STATISTICS

tf1 = tf.compat.v1


class Evaluator:
    """The evaluation graph, built once; ``run(checkpoint)`` restores and scores."""

    def __init__(self, config, data=None):
        self.config = config.check()
        self._data = data
        self.graph = tf.Graph()
        with self.graph.as_default():
            self._build()
        self.graph.finalize()

    def _build(self):
        config = self.config
        self.data = data = inputs.eval_inputs(config, self._data)
        self.logits, self.end_points = config.build_logits(
            data.images, data.num_classes, is_training=config.batch_stats)
        if config.quantize:
            from slimnorm import quantize
            layers = quantize.create_eval_graph()
            self.logits = quantize.rewritten_output(layers, self.logits)
        logits, labels = self.logits, data.labels
        self.global_step = tf1.train.get_or_create_global_step()
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        self.top_k = min(5, data.num_classes)
        self.sums = {
            'count': tf.size(labels, out_type=tf.int64),
            'loss': tf.reduce_sum(losses),
            'top1': tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1), labels), tf.int64)),
            'top5': tf.reduce_sum(tf.cast(
                tf.nn.in_top_k(predictions=logits, targets=labels, k=self.top_k), tf.int64)),
        }
        self.var_map = training.variables_to_restore(
            exclude_scopes=list(config.checkpoint_exclude_scopes),
            moving_average_decay=config.moving_average_decay)
        self.saver = tf1.train.Saver(self.var_map)
        self.init = tf1.global_variables_initializer()

    def _check_names(self, checkpoint):
        stored = dict(tf.train.list_variables(checkpoint))
        missing = sorted(name for name in self.var_map if name not in stored)
        if missing:
            shown = ', '.join(missing[:5]) + (f' and {len(missing) - 5} more'
                                              if len(missing) > 5 else '')
            hint = ('; it was not trained with --moving_average_decay'
                    if self.config.moving_average_decay and any(
                        n.endswith('/ExponentialMovingAverage') for n in missing) else
                    '; it was not trained with --quantize_delay (quantization-aware)'
                    if self.config.quantize and any('/act_quant/' in n for n in missing) else
                    '; check --model/--normalizer/--model_kwargs, or leave scopes out '
                    'with --checkpoint_exclude_scopes')
            raise ValueError(f'checkpoint {checkpoint!r} lacks {len(missing)} variables: '
                             f'{shown}{hint}')
        # Names alone do not make a checkpoint of this network (a run_config.json
        # may be missing, or flags different): the shapes must agree too.
        from slimnorm.train import saved_run
        saved_run.check_variables({name: var.shape.as_list()
                                   for name, var in self.var_map.items()}, checkpoint)

    def run(self, checkpoint):
        """Restores ``checkpoint`` (a prefix) and returns the metrics dict."""
        self._check_names(checkpoint)
        totals = {name: 0.0 for name in self.sums}
        with tf1.Session(graph=self.graph,
                         config=self.config.session_config()) as sess:
            sess.run(self.init)  # excluded scopes keep their initial values
            self.saver.restore(sess, checkpoint)
            step = int(sess.run(self.global_step))
            try:
                for count, batch in enumerate(self.data.run_batches(sess, self.sums), 1):
                    for name, value in batch.items():
                        totals[name] += float(value)
                    if count == self.config.max_num_batches:
                        break
            except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as err:
                problem = inputs.input_error(err, self.data.source)
                if not problem:
                    raise
                raise ValueError(problem) from None
        n = int(totals['count'])
        if n == 0:
            raise ValueError(f'{self.data.source} holds no examples')
        metrics = {'checkpoint': checkpoint, 'global_step': step,
                   'dataset': self.data.name, 'split': self.config.split,
                   'num_examples': n, 'top1': totals['top1'] / n,
                   'loss': totals['loss'] / n}
        if self.top_k < self.data.num_classes:
            metrics['top5'] = totals['top5'] / n
        if self.config.quantize:
            metrics['quantized'] = True
        return metrics


def evaluate(config, checkpoint):
    """Evaluates one checkpoint (a prefix, or a directory's latest)."""
    checkpoint = checkpoints.resolve(checkpoint)
    return Evaluator(config).run(checkpoint)


def format_table(metrics):
    """The metrics as aligned human-readable lines."""
    rows = [('checkpoint', f'{metrics["checkpoint"]} (global step {metrics["global_step"]})'),
            ('data', f'{metrics["dataset"]} {metrics["split"]} split, '
                     f'{metrics["num_examples"]} examples'),
            ('top-1 accuracy', f'{metrics["top1"]:.4f}')]
    if 'top5' in metrics:
        rows.append(('top-5 accuracy', f'{metrics["top5"]:.4f}'))
    rows.append(('mean loss', f'{metrics["loss"]:.4f}'))
    width = max(len(name) for name, _ in rows)
    return '\n'.join(f'{name:<{width}}  {value}' for name, value in rows)


def watch(config, directory, timeout=None, min_interval_secs=0, max_steps=None,
          log=print):
    """Yields the metrics of each new checkpoint in ``directory`` as it appears.

    Stops when no new checkpoint came for ``timeout`` seconds (None: never),
    or after evaluating one at ``max_steps`` or beyond. A checkpoint that the
    trainer deleted (``max_to_keep``) before it could be read is skipped with
    a line on ``log``: a slow evaluator falls behind, it does not crash.
    """
    if not os.path.isdir(directory):
        raise ValueError(f'checkpoint_path={directory!r} with --watch; accepted: a '
                         'training directory')
    evaluator = Evaluator(config)
    for checkpoint in tf1.train.checkpoints_iterator(directory, min_interval_secs, timeout):
        try:
            metrics = evaluator.run(checkpoint)
        except (tf.errors.NotFoundError, ValueError):
            if os.path.exists(checkpoint + '.index'):
                raise
            log(f'skipped {checkpoint}: deleted by the trainer before it could be evaluated')
            continue
        yield metrics
        if max_steps is not None and metrics['global_step'] >= max_steps:
            return


def write_eval_summary(metrics, eval_dir):
    """Writes top-1/top-5/loss as TensorBoard scalars in ``eval_dir`` (slim's --eval_dir)."""
    with tf.Graph().as_default():  # FileWriter refuses eager mode
        writer = tf1.summary.FileWriter(eval_dir)
    values = [tf1.Summary.Value(tag=f'eval/{name}', simple_value=float(metrics[name]))
              for name in ('top1', 'top5', 'loss') if name in metrics]
    writer.add_summary(tf1.Summary(value=values), metrics['global_step'])
    writer.close()



# The moving statistics start at mean 0, variance 1 and keep decay**steps of
# that start: below e**-3 (three time constants 1/(1 - decay)) they are
# taken as converged and evaluation says nothing.
CONVERGED_WEIGHT = math.exp(-3)


def batch_norm_decay(model, model_kwargs):
    """(decay of the moving averages, the model_kwargs key that sets it).

    As the network resolves it: ``normalizer_params['decay']``, else the arg
    scope's ``batch_norm_decay`` (Inception), else the network's own
    BATCH_NORM_DEFAULTS, else slimnorm.batch_norm's default.
    """
    import slimnorm
    from nets import nets_factory
    network, arg_scope = nets_factory.NETWORKS[model]
    params = model_kwargs.get('normalizer_params') or {}
    scope_default = inspect.signature(arg_scope).parameters.get('batch_norm_decay')
    if scope_default is not None:
        key = 'batch_norm_decay'
        decay = model_kwargs.get(key, scope_default.default)
    else:
        key = 'normalizer_params'
        module = inspect.getmodule(network)
        defaults = getattr(module, 'BATCH_NORM_DEFAULTS', {})
        decay = defaults.get('decay', inspect.signature(
            slimnorm.batch_norm).parameters['decay'].default)
    return float(params.get('decay', decay)), key


def moving_statistics_warning(config, checkpoint, global_step, precise_bn=False):
    """One line when the moving statistics are still near their start, else None.

    ``precise_bn``: the checkpoint's statistics were recomputed (precise BN),
    not averaged during training: nothing to say.
    """
    if (config.normalizer not in NORMALIZERS_WITH_MOVING_STATISTICS or config.batch_stats
            or precise_bn):
        return None
    decay, key = batch_norm_decay(config.model, config.model_kwargs)
    remaining = decay ** global_step
    if remaining <= CONVERGED_WEIGHT:
        return None
    reader = tf.train.load_checkpoint(checkpoint)
    variances = [reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
                 if name.endswith('/moving_variance')]
    distance = (sum(float(abs(v - 1.0).sum()) for v in variances)
                / max(1, sum(v.size for v in variances)))
    needed = math.ceil(math.log(CONVERGED_WEIGHT) / math.log(decay)) if decay > 0 else 1
    lower = ('{"batch_norm_decay": 0.9}' if key == 'batch_norm_decay'
             else '{"normalizer_params": {"decay": 0.9}}')
    return (f'warning: the batch-norm moving statistics cannot be trusted yet: after '
            f'{global_step} steps at decay {decay:g}, {remaining:.1%} of their start '
            f'(mean 0, variance 1) is still in them (moving_variance is on average '
            f'{distance:.3f} from 1.0), and evaluation normalizes with them. Ways out: a '
            f"lower batch-norm decay (train with --model_kwargs '{lower}'), longer "
            f'training ({needed} steps at decay {decay:g}), or precise BN '
            '(slimnorm precise-bn --checkpoint_path ... --output_path ...)')
