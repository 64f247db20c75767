"""Group norm is insensitive to the batch size where batch norm is not (Wu & He 2018).

Trains one network with batch, group, layer and instance norm at batch sizes
32, 16, 8, 4 and 2, each run seeing the same number of training examples
(``--examples``; so batch 2 takes 16x the steps of batch 32), with SGD
momentum 0.9 and the learning rate scaled linearly with the batch size
(``--base_lr`` at batch 32) and decayed linearly to 0 over the run. Batch norm is evaluated with its moving
averages (``is_training=False``). Then group norm with several group counts
at batch 32 (the paper's group-number ablation; G=1 is layer norm's
grouping).

Which layers carry the normalizer:
- ``--model small_convnet`` (default): the small convnet of
  ``nets/small_convnet.py`` with four 3x3 convs (depths 32, 64, 128, 128;
  at 14x14 the maps are 14, 7, 4, 2 px, as the five-conv net's last maps
  are at 28x28) and a 128-unit fully-connected layer ``fc6`` before the
  logits. BN, GN and LN normalize every conv and fc6: fc6 is where batch
  norm's statistics come from ``batch`` values only. Instance norm
  normalizes the convs only and fc6 has none, since instance norm has no
  spatial axes to average a fully-connected layer over.
- ``--model inception_v2 --image_size 64``: Inception V2 with
  ``--depth_multiplier`` (default 0.25), every conv but the first (slim's
  separable stem) normalized; there is no normalized fully-connected layer.
  Its channel counts are multiples of 8 but not of 32, so its group norm has
  8 channels per group, and there is no group-number ablation.

Images are Fashion-MNIST (or ``--data_dir``'s IDX files) resized in the
graph to ``--image_size`` (14 by default, to fit the 15-minute budget of a
full run on 2 cores); ``--quick`` uses the 8x8 digits and few examples.

Writes exp_gn_batch_size.{json,md,png} into --out_dir (with _inception_v2 and
_lr_unscaled in the name for those settings) and prints the tables.

    slimnorm exp gn-batch-size
    slimnorm exp gn-batch-size --quick --out_dir /tmp/exp
"""
import argparse
import functools
import os
import time

import numpy as np
import tensorflow as tf
import tf_slim as slim

from nets import nets_factory, small_convnet
from slimnorm.bench import experiments as exp_common
from slimnorm.cli.common import ArgumentParser, int_at_least
from slimnorm.cli.help_format import DefaultsFormatter

tf1 = tf.compat.v1

NORMALIZERS = ('batch', 'group', 'layer', 'instance')
LABELS = {'batch': 'BN', 'group': 'GN', 'layer': 'LN', 'instance': 'IN'}
BATCH_SIZES = (32, 16, 8, 4, 2)
ABLATION_GROUPS = (32, 16, 8, 4, 2, 1)
REFERENCE_BATCH = 32
CONV_DEPTHS = (32, 64, 128, 128)
FC_UNITS = 128
DEFAULT_GROUPS = 32  # the GN paper's default; capped at a layer's channel count
# The reduced Inception's channel counts (multiples of 8, e.g. 48) are not all
# divisible by 32 groups: its group norm uses 8 channels per group instead.
INCEPTION_GROUP_SIZE = 8
MODEL_DEFAULTS = {  # per model: image size, examples seen per run, base lr
    'small_convnet': dict(image_size=14, examples=20000, base_lr=0.05),
    'inception_v2': dict(image_size=64, examples=6000, base_lr=0.05),
}
# --quick: the 8x8 digits at their own size, fewer cells; flags given explicitly win.
QUICK = dict(examples=192, test_size=None, evals=2, train_size=None,
             batch_sizes=(32, 8, 2), groups=(4, 1))
QUICK_IMAGE_SIZE = {'small_convnet': 8, 'inception_v2': 64}
FULL = dict(test_size=5000, evals=4, train_size=None, batch_sizes=BATCH_SIZES,
            groups=ABLATION_GROUPS)


def build_small_convnet(images, is_training, normalizer, groups, num_classes):
    """The small convnet with a 128-unit fc6; see the module docstring."""
    params = {'groups': groups} if normalizer == 'group' else None
    if normalizer != 'instance':
        network_fn = nets_factory.get_network_fn(
            'small_convnet', num_classes, normalizer=normalizer,
            normalizer_params=params, depths=CONV_DEPTHS, fc_units=FC_UNITS)
        return network_fn(images, is_training=is_training)
    network_fn = nets_factory.get_network_fn(
        'small_convnet', 0, normalizer='instance', depths=CONV_DEPTHS)
    net, end_points = network_fn(images, is_training=is_training)
    with slim.arg_scope(small_convnet.small_convnet_arg_scope()):
        with tf1.variable_scope('SmallConvNet_head'):
            net = slim.fully_connected(net, FC_UNITS, scope='fc6')
            end_points['fc6'] = net
            logits = slim.fully_connected(net, num_classes, activation_fn=None,
                                          scope='logits')
    return logits, end_points


def build_inception_v2(images, is_training, normalizer, groups, num_classes,
                       depth_multiplier):
    """Inception V2 reduced by depth_multiplier, global pool, no dropout."""
    del groups  # GN here has INCEPTION_GROUP_SIZE channels per group
    params = {'group_size': INCEPTION_GROUP_SIZE} if normalizer == 'group' else None
    network_fn = nets_factory.get_network_fn(
        'inception_v2', num_classes, normalizer=normalizer, normalizer_params=params,
        batch_norm_decay=0.99, weight_decay=0.0, depth_multiplier=depth_multiplier,
        global_pool=True, dropout_keep_prob=1.0)
    return network_fn(images, is_training=is_training)


def run_config(config):
    """One training run; loads the data once per process."""
    data = _data(config['quick'], config['data_dir'])
    if config['model'] == 'small_convnet':
        model_fn = functools.partial(build_small_convnet, normalizer=config['normalizer'],
                                     groups=config['groups'], num_classes=data.num_classes)
    else:
        model_fn = functools.partial(build_inception_v2, normalizer=config['normalizer'],
                                     groups=config['groups'], num_classes=data.num_classes,
                                     depth_multiplier=config['depth_multiplier'])
    steps = max(1, config['examples'] // config['batch_size'])
    return exp_common.train_classifier(
        model_fn, data, batch_size=config['batch_size'], learning_rate=config['lr'],
        momentum=0.9, linear_decay=config['lr_decay'] == 'linear', num_steps=steps,
        seed=config['seed'],
        evals_at=exp_common.eval_steps(steps, config['evals']),
        image_size=config['image_size'], threads=config['threads'])


_DATA = {}


def _data(quick, data_dir):
    if (quick, data_dir) not in _DATA:
        settings = QUICK if quick else FULL
        args = argparse.Namespace(quick=quick, data_dir=data_dir)
        _DATA[quick, data_dir] = exp_common.load_data(args, settings['train_size'],
                                                      settings['test_size'])
    return _DATA[quick, data_dir]


def make_configs(args):
    """The main grid (normalizer x batch size) and the group ablation."""
    settings = QUICK if args.quick else FULL
    common = dict(model=args.model, image_size=args.image_size, examples=args.examples,
                  evals=settings['evals'], depth_multiplier=args.depth_multiplier,
                  lr_decay=args.lr_decay,
                  threads=args.threads, quick=args.quick, data_dir=args.data_dir)

    def config(normalizer, groups, batch_size, seed, part):
        return dict(common, part=part, normalizer=normalizer, groups=groups,
                    batch_size=batch_size, seed=seed,
                    lr=args.base_lr * (batch_size / REFERENCE_BATCH
                                       if args.lr_scaling == 'linear' else 1.0))

    main = [config(n, DEFAULT_GROUPS, b, s, 'main') for n in args.normalizers
            for b in args.batch_sizes for s in range(args.seeds)]
    ablation = [config('group', g, REFERENCE_BATCH, s, 'ablation')
                for g in args.groups if g != DEFAULT_GROUPS for s in range(args.seeds)]
    return main + ablation


def summarize(configs, results):
    """Test error (1 - final accuracy), mean and std over seeds, per cell."""
    cells = {}
    for config, result in zip(configs, results):
        key = (config['normalizer'], config['groups'], config['batch_size'])
        cells.setdefault(key, []).append(result)
    summary = {}
    for (normalizer, groups, batch_size), runs in sorted(cells.items()):
        errors = [1.0 - r['accuracy'][-1] for r in runs]
        summary['%s|%d|%d' % (normalizer, groups, batch_size)] = {
            'normalizer': normalizer, 'groups': groups, 'batch_size': batch_size,
            'steps': runs[0]['steps'], 'mean_accuracy': exp_common.mean_curve(runs),
            'test_error_per_seed': errors, 'test_error_mean': float(np.mean(errors)),
            'test_error_std': float(np.std(errors)),
            'diverged_seeds': sum(r['diverged_at_step'] is not None for r in runs),
            'seconds': sum(r['seconds'] for r in runs)}
    return summary


def _cell(summary, normalizer, groups, batch_size):
    return summary.get('%s|%d|%d' % (normalizer, groups, batch_size))


def _error_text(cell):
    if cell is None:
        return '-'
    return '%.1f ± %.1f' % (100 * cell['test_error_mean'], 100 * cell['test_error_std'])


def tables(summary, args):
    """The GN paper's layout: normalizers x batch sizes, then the ablation."""
    header = ['test error (%)'] + ['batch %d' % b for b in args.batch_sizes]
    rows = [[LABELS[n]] + [_error_text(_cell(summary, n, DEFAULT_GROUPS, b))
                           for b in args.batch_sizes] for n in args.normalizers]
    if 'batch' in args.normalizers and 'group' in args.normalizers:
        deltas = []
        for b in args.batch_sizes:
            bn, gn = (_cell(summary, n, DEFAULT_GROUPS, b) for n in ('batch', 'group'))
            deltas.append('%+.1f' % (100 * (bn['test_error_mean'] - gn['test_error_mean'])))
        rows.append(['BN - GN'] + deltas)
    main = exp_common.markdown_table(header, rows)
    groups = _ablation_groups(summary, args.groups)
    ablation = exp_common.markdown_table(
        ['groups G'] + ['%d' % g for g in groups],
        [['GN, batch %d' % REFERENCE_BATCH]
         + [_error_text(_cell(summary, 'group', g, REFERENCE_BATCH)) for g in groups]])
    lr = ('lr %g x batch / %d' % (args.base_lr, REFERENCE_BATCH) if args.lr_scaling == 'linear'
          else 'lr %g at every batch size' % args.base_lr)
    text = ('## Test error by batch size (%s, %dx%d, %d examples seen per run, %s, mean ± std '
            'over %d seeds)\n\n%s' % (args.model, args.image_size, args.image_size,
                                       args.examples, lr, args.seeds, main))
    if groups:
        text += '\n\n## Group norm: number of groups (batch %d)\n\n%s' % (REFERENCE_BATCH,
                                                                          ablation)
    return text


def _ablation_groups(summary, groups):
    """The group counts of the ablation with a cell at batch 32, largest first."""
    if not groups:
        return []
    candidates = sorted(set(groups) | {DEFAULT_GROUPS}, reverse=True)
    return [g for g in candidates if _cell(summary, 'group', g, REFERENCE_BATCH)]


def plot(path, record):
    """Test error against batch size per normalizer; GN error against groups."""
    plt = exp_common.pyplot()
    if plt is None:
        print('matplotlib is not installed: no plot (pip install matplotlib)')
        return False
    summary = record['cells']
    args = argparse.Namespace(**{k: record[k] for k in (
        'normalizers', 'batch_sizes', 'groups', 'model', 'examples_per_run', 'dataset',
        'lr_scaling')})
    groups = _ablation_groups(summary, args.groups)
    fig, axes = plt.subplots(1, 2 if groups else 1, figsize=(11 if groups else 6, 4),
                             squeeze=False)
    left = axes[0, 0]
    for normalizer in args.normalizers:
        cells = [_cell(summary, normalizer, DEFAULT_GROUPS, b) for b in args.batch_sizes]
        left.errorbar([str(b) for b in args.batch_sizes],
                      [100 * c['test_error_mean'] for c in cells],
                      yerr=[100 * c['test_error_std'] for c in cells],
                      marker='o', capsize=3, label=LABELS[normalizer])
    left.set(xlabel='batch size (lr %s)' % ('scaled linearly' if args.lr_scaling == 'linear'
                                             else 'the same at every batch size'), ylabel='test error (%)',
             title='%s on %s, %d examples seen' % (args.model, args.dataset,
                                                   args.examples_per_run))
    left.legend()
    if groups:
        _plot_ablation(axes[0, 1], summary, groups)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _plot_ablation(right, summary, groups):
    cells = [_cell(summary, 'group', g, REFERENCE_BATCH) for g in groups]
    right.bar([str(g) for g in groups], [100 * c['test_error_mean'] for c in cells],
              yerr=[100 * c['test_error_std'] for c in cells], capsize=3)
    right.set(xlabel='groups G (capped at each layer\'s channels)', ylabel='test error (%)',
              title='GN, batch %d: number of groups' % REFERENCE_BATCH)


def _dataset_name(args):
    return 'digits' if args.quick else (args.data_dir or 'fashion_mnist')


def output_stem(args):
    """exp_gn_batch_size[_<model>][_lr_unscaled]: one file set per setting."""
    return ('exp_gn_batch_size' + ('' if args.model == 'small_convnet' else '_' + args.model)
            + ('' if args.lr_scaling == 'linear' else '_lr_unscaled'))


def parse_args(argv=None, prog=None):
    parser = exp_common.add_common_flags(
        ArgumentParser(prog=prog, description=__doc__.split('\n')[0],
                       formatter_class=DefaultsFormatter), 'gn-batch-size')
    parser.add_argument('--model', choices=sorted(MODEL_DEFAULTS), default='small_convnet')
    parser.add_argument('--image_size', type=int_at_least(1), default=None,
                        help='square input size (default: 14 small_convnet, 64 inception_v2)')
    parser.add_argument('--examples', type=int_at_least(1), default=None,
                        help='training examples seen by every run (same for all batch sizes)')
    parser.add_argument('--base_lr', type=float, default=None,
                        help='learning rate at batch 32; batch b uses base_lr * b / 32')
    parser.add_argument('--lr_scaling', choices=('linear', 'none'), default='linear',
                        help="'linear' (the GN paper's): lr = base_lr * batch / 32; "
                             "'none': base_lr at every batch size")
    parser.add_argument('--lr_decay', choices=('linear', 'none'), default='linear',
                        help="'linear': to 0 at the last step; 'none': constant")
    parser.add_argument('--depth_multiplier', type=float, default=0.25,
                        help='inception_v2 only: channel multiplier')
    parser.add_argument('--plot_only', action='store_true',
                        help='redraw the PNG from the JSON in --out_dir, without training')
    parser.add_argument('--normalizers', nargs='+', choices=NORMALIZERS, default=NORMALIZERS)
    parser.add_argument('--batch_sizes', nargs='+', type=int_at_least(1), default=None,
                        help='default: %s' % ' '.join(map(str, BATCH_SIZES)))
    parser.add_argument('--groups', nargs='*', type=int_at_least(1), default=None,
                        help='group counts of the ablation at batch 32 (given empty: skip it; '
                             'default: %s)' % ' '.join(map(str, ABLATION_GROUPS)))
    args = exp_common.parse(parser, argv)
    if args.model == 'inception_v2':
        if args.groups:
            parser.error('--groups (the group-number ablation) is for the small convnet; '
                         'Inception V2 uses %d channels per group' % INCEPTION_GROUP_SIZE)
        args.groups = []
    defaults = dict(MODEL_DEFAULTS[args.model], **FULL)
    if args.quick:
        defaults.update(QUICK, image_size=QUICK_IMAGE_SIZE[args.model])
    for name in ('image_size', 'examples', 'base_lr', 'batch_sizes', 'groups'):
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
    if args.groups and 'group' not in args.normalizers:
        args.normalizers = tuple(args.normalizers) + ('group',)
    return args


def main(argv=None, prog=None):
    args = parse_args(argv, prog)
    stem = output_stem(args)
    png = os.path.join(args.out_dir, stem + '.png')
    if args.plot_only:
        plot(png, exp_common.read_record(args.out_dir, stem))
        return 0
    start = time.time()
    configs = make_configs(args)
    results = exp_common.run_all(run_config, configs, args.workers)
    summary = summarize(configs, results)
    text = tables(summary, args)
    print(text)
    record = {
        'experiment': 'exp_gn_batch_size', 'quick': args.quick, 'seeds': args.seeds,
        'dataset': _dataset_name(args), 'model': args.model, 'image_size': args.image_size,
        'examples_per_run': args.examples, 'base_lr': args.base_lr,
        'lr_scaling': args.lr_scaling, 'lr_decay': args.lr_decay,
        'reference_batch': REFERENCE_BATCH, 'batch_sizes': list(args.batch_sizes),
        'normalizers': list(args.normalizers), 'groups': list(args.groups),
        'default_groups': DEFAULT_GROUPS, 'conv_depths': CONV_DEPTHS, 'fc_units': FC_UNITS,
        'cells': summary, 'wall_seconds': time.time() - start,
    }
    exp_common.finish(args.out_dir, stem, record, text, plot, start)
    return 0


if __name__ == '__main__':
    main()
