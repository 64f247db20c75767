"""Synchronized batch norm restores large-batch statistics to small per-replica batches.

The setting of ``exp_gn_batch_size``'s table (the small convnet with fc6 on
Fashion-MNIST at 14x14, 20,000 training examples seen per run, SGD momentum
0.9, learning rate 0.05 x batch / 32 decayed linearly to 0, evaluation with
the moving averages), four ways:

- ``sync``: 4 replicas (in-graph towers on 4 CPU devices of one session,
  sharing the variables) of 2 images each, batch norm with
  ``sync_replicas=True``: statistics of the 8 images of the step;
- ``local``: the same 4 towers of 2 with ordinary batch norm: each tower
  normalizes with the statistics of its 2 images (what clones of a tf-slim
  model did), the gradient is still that of the 8 images;
- ``plain8``: one device, batch 8 (the ``BN, batch 8`` cell of that table);
- ``plain2``: one device, batch 2 (its ``BN, batch 2`` cell).

The towers' losses are averaged (the gradient of the global batch of 8, as
clones' are) and only tower 0 runs its moving-average updates (for ``sync``
all towers' updates are the same; for ``local`` that is model_deploy's
choice). ``sync`` computes the same function as ``plain8`` with its work
spread over 4 devices, so their errors should agree within seed noise, and
``local`` should be near ``plain2``.

Writes exp_sync_bn.{json,md,png} into --out_dir and prints the table.

    slimnorm exp sync-bn
    slimnorm exp sync-bn --quick --out_dir /tmp/exp
"""
import time

import numpy as np
import tensorflow as tf

import slimnorm
from nets import nets_factory
from slimnorm.bench import exp_gn_batch_size as gn_table
from slimnorm.bench import experiments as exp_common
from slimnorm.cli.common import ArgumentParser, int_at_least
from slimnorm.cli.help_format import DefaultsFormatter

tf1 = tf.compat.v1

# name -> (replicas, images per replica, synchronized)
SETTINGS = {
    'sync': (4, 2, True),
    'local': (4, 2, False),
    'plain8': (1, 8, False),
    'plain2': (1, 2, False),
}
LABELS = {
    'sync': 'BN, 4 replicas x 2, synchronized',
    'local': 'BN, 4 replicas x 2, per-replica statistics',
    'plain8': 'BN, 1 device x 8',
    'plain2': 'BN, 1 device x 2',
}


def tower_model_fn(num_classes, replicas, sync):
    """``(images, is_training) -> (logits, end_points)`` with training split over towers.

    Training: the batch split into ``replicas`` towers, tower k on
    /device:CPU:k inside ``slimnorm.replica_group(size=replicas,
    replica=k)``, their logits concatenated. Evaluation: one tower.
    """
    params = {'sync_replicas': True} if sync else None
    network_fn = nets_factory.get_network_fn(
        'small_convnet', num_classes, normalizer='batch', normalizer_params=params,
        depths=gn_table.CONV_DEPTHS, fc_units=gn_table.FC_UNITS)

    def model_fn(images, is_training):
        if not is_training or replicas == 1:
            return network_fn(images, is_training=is_training)
        updates = tf1.get_collection_ref(tf1.GraphKeys.UPDATE_OPS)
        logits = []
        for k, part in enumerate(tf.split(images, replicas)):
            before = list(updates)
            with tf.device('/device:CPU:%d' % k), tf1.name_scope('tower_%d' % k), \
                    tf1.variable_scope(tf1.get_variable_scope(), reuse=True if k else None), \
                    slimnorm.replica_group(size=replicas, replica=k):
                tower_logits, end_points = network_fn(part, is_training=True)
            if k:
                updates[:] = before  # tower 0's moving-average updates only
            logits.append(tower_logits)
        return tf.concat(logits, 0), end_points

    return model_fn


def run_config(config):
    """One training run (loads the data once per process)."""
    data = gn_table._data(config['quick'], config['data_dir'])
    replicas, per_replica, sync = SETTINGS[config['setting']]
    batch = replicas * per_replica
    steps = max(1, config['examples'] // batch)
    return exp_common.train_classifier(
        tower_model_fn(data.num_classes, replicas, sync), data, batch_size=batch,
        learning_rate=config['base_lr'] * batch / gn_table.REFERENCE_BATCH, momentum=0.9,
        linear_decay=True, num_steps=steps, seed=config['seed'],
        evals_at=exp_common.eval_steps(steps, config['evals']),
        image_size=config['image_size'], threads=config['threads'], cpu_devices=replicas)


def make_configs(args):
    settings = gn_table.QUICK if args.quick else gn_table.FULL
    return [dict(setting=name, seed=seed, quick=args.quick, data_dir=args.data_dir,
                 examples=args.examples, base_lr=args.base_lr, image_size=args.image_size,
                 evals=settings['evals'], threads=args.threads)
            for name in args.settings for seed in range(args.seeds)]


def summarize(configs, results):
    """Test error per setting: per seed, mean and std."""
    cells = {}
    for config, result in zip(configs, results):
        cells.setdefault(config['setting'], []).append(result)
    summary = {}
    for name, runs in cells.items():
        errors = [1.0 - r['accuracy'][-1] for r in runs]
        replicas, per_replica, sync = SETTINGS[name]
        summary[name] = {
            'replicas': replicas, 'images_per_replica': per_replica, 'synchronized': sync,
            'steps': runs[0]['steps'], 'mean_accuracy': exp_common.mean_curve(runs),
            'test_error_per_seed': errors, 'test_error_mean': float(np.mean(errors)),
            'test_error_std': float(np.std(errors)),
            'seconds_per_run': float(np.mean([r['seconds'] for r in runs]))}
    return summary


def table(summary, args):
    rows = []
    for name in args.settings:
        cell = summary[name]
        per_step = cell['replicas'] * cell['images_per_replica']
        rows.append([LABELS[name], per_step,
                     per_step if cell['synchronized'] else cell['images_per_replica'],
                     cell['steps'][-1],
                     '%.1f ± %.1f' % (100 * cell['test_error_mean'],
                                      100 * cell['test_error_std']),
                     '%.0f' % cell['seconds_per_run']])
    header = ['setting', 'images per step', 'images per statistic', 'steps',
              'test error (%)', 's per run']
    return ('## Synchronized batch norm (small_convnet, %dx%d, %d examples seen per run, '
            'lr %g x images per step / %d, mean ± std over %d seeds)\n\n%s' % (
                args.image_size, args.image_size, args.examples, args.base_lr,
                gn_table.REFERENCE_BATCH, args.seeds, exp_common.markdown_table(header, rows)))


def plot(path, record):
    """Test-accuracy curves (mean over seeds) per setting."""
    plt = exp_common.pyplot()
    if plt is None:
        print('matplotlib is not installed: no plot (pip install matplotlib)')
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name in record['settings']:
        cell = record['cells'][name]
        examples = [s * cell['replicas'] * cell['images_per_replica'] for s in cell['steps']]
        ax.plot(examples, [100 * (1 - a) for a in cell['mean_accuracy']], marker='o',
                label='%s: %.1f %%' % (LABELS[name], 100 * cell['test_error_mean']))
    ax.set(xlabel='training examples seen', ylabel='test error (%)', ylim=(0, 60),
           title='Synchronized BN on %s' % record['dataset'])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def parse_args(argv=None, prog=None):
    parser = exp_common.add_common_flags(
        ArgumentParser(prog=prog, description=__doc__.split('\n')[0],
                       formatter_class=DefaultsFormatter), 'sync-bn')
    parser.add_argument('--settings', nargs='+', choices=tuple(SETTINGS),
                        default=tuple(SETTINGS))
    parser.add_argument('--examples', type=int_at_least(1), default=None,
                        help='training examples seen by every run (default: as the GN table)')
    parser.add_argument('--plot_only', action='store_true',
                        help='redraw the PNG from the JSON in --out_dir, without training')
    args = exp_common.parse(parser, argv)
    defaults = dict(gn_table.MODEL_DEFAULTS['small_convnet'])
    if args.quick:
        defaults.update(examples=gn_table.QUICK['examples'],
                        image_size=gn_table.QUICK_IMAGE_SIZE['small_convnet'])
    args.image_size, args.base_lr = defaults['image_size'], defaults['base_lr']
    if args.examples is None:
        args.examples = defaults['examples']
    return args


def main(argv=None, prog=None):
    args = parse_args(argv, prog)
    stem = 'exp_sync_bn'
    if args.plot_only:
        plot('%s/%s.png' % (args.out_dir, stem), exp_common.read_record(args.out_dir, stem))
        return 0
    start = time.time()
    configs = make_configs(args)
    results = exp_common.run_all(run_config, configs, args.workers)
    summary = summarize(configs, results)
    text = table(summary, args)
    print(text)
    record = {
        'experiment': stem, 'quick': args.quick, 'seeds': args.seeds,
        'dataset': 'digits' if args.quick else (args.data_dir or 'fashion_mnist'),
        'model': 'small_convnet', 'image_size': args.image_size,
        'examples_per_run': args.examples, 'base_lr': args.base_lr,
        'reference_batch': gn_table.REFERENCE_BATCH, 'settings': list(args.settings),
        'conv_depths': gn_table.CONV_DEPTHS, 'fc_units': gn_table.FC_UNITS,
        'cells': summary, 'wall_seconds': time.time() - start,
    }
    exp_common.finish(args.out_dir, stem, record, text, plot, start)
    return 0


if __name__ == '__main__':
    main()
