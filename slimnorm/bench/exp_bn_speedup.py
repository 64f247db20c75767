"""Batch norm trains faster and tolerates higher learning rates (Ioffe & Szegedy 2015).

Two experiments, on Fashion-MNIST (``--data_dir``: any MNIST-format IDX
directory, e.g. MNIST itself; ``--quick``: scikit-learn's 8x8 digits):

(a) The paper's Figure 1: a fully-connected network of 3 hidden layers of
    100 sigmoid units, batch 60, plain SGD, with and without batch norm
    before each sigmoid (``slimnorm.batch_norm``; no bias, BN's beta takes
    its place). Recorded: test accuracy against the step, and the 15th, 50th
    and 85th percentiles of the input of one sigmoid of the last hidden layer
    (unit 0, over the first 1,000 test images, evaluation mode). Weights
    start from the paper's small Gaussian (stddev ``--gaussian_stddev``) and,
    as a comparison the paper does not make, from Glorot's uniform init.
(b) The paper's Figure 3 table, scaled down: the small convnet
    (``nets/small_convnet.py``; five 3x3 convs, normalizer after each) with
    and without batch norm, images resized to 14x14, batch 32, SGD with
    momentum 0.9. Each is trained at every learning rate of a small grid;
    batch norm also at 5x and 30x the best no-BN learning rate (the paper's
    BN-x5 and BN-x30), and the plain network there too. Reported: the steps
    each needs to reach the no-BN network's best test accuracy (and 0.95 of
    it) on the seed-mean curve, and its own best accuracy.

Writes exp_bn_speedup.{json,md,png} into --out_dir and prints the tables.

    slimnorm exp bn-speedup
    slimnorm exp bn-speedup --quick --out_dir /tmp/exp
"""
import argparse
import functools
import os
import time

import tensorflow as tf
import tf_slim as slim

import slimnorm
from nets import nets_factory
from slimnorm.bench import experiments as exp_common
from slimnorm.cli.common import ArgumentParser, float_at_least
from slimnorm.cli.help_format import DefaultsFormatter

tf1 = tf.compat.v1

# Settings of the full run and of --quick.
SETTINGS = {
    'full': dict(train_size=None, test_size=5000, mlp_steps=4000, mlp_evals=20,
                 mlp_lrs=(0.1, 0.5, 2.0), conv_steps=1000, conv_evals=20,
                 conv_batch=32, conv_image_size=14,
                 conv_lrs_none=(0.01, 0.03, 0.1), conv_lrs_bn=(0.01, 0.03, 0.1)),
    'quick': dict(train_size=None, test_size=None, mlp_steps=150, mlp_evals=5,
                  mlp_lrs=(0.5,), conv_steps=60, conv_evals=3,
                  conv_batch=32, conv_image_size=None,
                  conv_lrs_none=(0.01,), conv_lrs_bn=(0.01,)),
}
MLP_BATCH = 60
MLP_UNITS = (100, 100, 100)
BN_MULTIPLIERS = (5, 30)
# "Steps to X" also at this fraction of the no-BN best accuracy: the best is
# often reached only at the last step, where the first crossing says little
# about speed.
EARLY_FRACTION = 0.95
BN_PARAMS = {'decay': 0.99, 'scale': True}  # decay 0.99: runs are a few thousand steps


def mlp(images, is_training, batch_norm, init, gaussian_stddev):
    """The paper's 3x100 sigmoid network; end points hold each sigmoid's input."""
    if init == 'gaussian':
        initializer = tf1.random_normal_initializer(stddev=gaussian_stddev)
    else:
        initializer = tf1.glorot_uniform_initializer()
    end_points = {}
    net = slim.flatten(images)
    with slim.arg_scope([slim.fully_connected], weights_initializer=initializer,
                        activation_fn=None):
        for index, units in enumerate(MLP_UNITS, start=1):
            net = slim.fully_connected(
                net, units, scope='fc%d' % index,
                normalizer_fn=slimnorm.batch_norm if batch_norm else None,
                normalizer_params=dict(BN_PARAMS, is_training=is_training))
            end_points['sigmoid_input%d' % index] = net
            net = tf.sigmoid(net)
        logits = slim.fully_connected(net, 10, scope='logits')
    return logits, end_points


def last_sigmoid_input(end_points):
    return {'last_sigmoid_input': end_points['sigmoid_input%d' % len(MLP_UNITS)][:, 0]}


def run_config(config, data, settings):
    """One training run of experiment (a) or (b); returns its curve."""
    if config['part'] == 'mlp':
        model_fn = functools.partial(mlp, batch_norm=config['bn'], init=config['init'],
                                     gaussian_stddev=config['gaussian_stddev'])
        return exp_common.train_classifier(
            model_fn, data, batch_size=MLP_BATCH, learning_rate=config['lr'],
            num_steps=settings['mlp_steps'], seed=config['seed'],
            evals_at=exp_common.eval_steps(settings['mlp_steps'], settings['mlp_evals']),
            probe_fn=last_sigmoid_input, threads=config['threads'])
    network_fn = nets_factory.get_network_fn(
        'small_convnet', num_classes=data.num_classes,
        normalizer='batch' if config['bn'] else None)
    return exp_common.train_classifier(
        lambda images, is_training: network_fn(images, is_training=is_training),
        data, batch_size=settings['conv_batch'], learning_rate=config['lr'],
        momentum=0.9, num_steps=settings['conv_steps'], seed=config['seed'],
        evals_at=exp_common.eval_steps(settings['conv_steps'], settings['conv_evals']),
        image_size=settings['conv_image_size'], threads=config['threads'])


_WORKER_DATA = {}


def run_config_in_worker(config):
    """``run_config`` with the data set loaded once per process."""
    key = (config['quick'], config['data_dir'])
    if key not in _WORKER_DATA:
        settings = SETTINGS['quick' if config['quick'] else 'full']
        args = argparse.Namespace(quick=config['quick'], data_dir=config['data_dir'])
        _WORKER_DATA[key] = exp_common.load_data(args, settings['train_size'],
                                                 settings['test_size'])
    settings = SETTINGS['quick' if config['quick'] else 'full']
    return run_config(config, _WORKER_DATA[key], settings)


def group_runs(configs, results, keys):
    """{tuple of config[k] for k in keys: [results of its seeds]}."""
    groups = {}
    for config, result in zip(configs, results):
        groups.setdefault(tuple(config[k] for k in keys), []).append(result)
    return groups


def summarize(runs):
    """Seed-mean curve, its max, and per-seed maxima of one configuration."""
    curve = exp_common.mean_curve(runs)
    return {'steps': runs[0]['steps'], 'mean_accuracy': curve,
            'max_mean_accuracy': max(curve),
            'max_accuracy_per_seed': [max(r['accuracy']) for r in runs],
            'final_accuracy_per_seed': [r['accuracy'][-1] for r in runs],
            'diverged_seeds': sum(r['diverged_at_step'] is not None for r in runs),
            'seconds': sum(r['seconds'] for r in runs)}


def mlp_summary(configs, results):
    """Per (init, bn, lr): curve summary, steps to the no-BN best, percentiles."""
    groups = group_runs(configs, results, ('init', 'bn', 'lr'))
    rows = {}
    for (init, bn, lr), runs in sorted(groups.items()):
        summary = summarize(runs)
        summary['percentiles_seed0'] = runs[0]['percentiles']['last_sigmoid_input']
        rows[_mlp_key(init, bn, lr)] = dict(
            summary, init=init, bn=bn, lr=lr)
    for row in rows.values():
        target = max(r['max_mean_accuracy'] for r in rows.values()
                     if r['init'] == row['init'] and not r['bn'])
        row['target_accuracy'] = target
        row['steps_to_target'] = exp_common.steps_to_reach(
            row['steps'], row['mean_accuracy'], target)
        row['steps_to_early_target'] = exp_common.steps_to_reach(
            row['steps'], row['mean_accuracy'], EARLY_FRACTION * target)
    return rows


def mlp_table(rows):
    header = ['init', 'network', 'lr', 'test acc (step 10%)', 'final test acc',
              'best test acc', 'steps to %g x no-BN best' % EARLY_FRACTION,
              'steps to no-BN best', 'sigmoid input p15/p50/p85, start -> end']
    lines = []
    for row in rows.values():
        early = row['mean_accuracy'][max(1, len(row['steps']) // 10)]
        pct = row['percentiles_seed0']
        first, last = pct[1], pct[-1]
        pct_text = ('%s -> %s' % ('/'.join('%.2f' % v for v in first),
                                  '/'.join('%.2f' % v for v in last))
                    if first and last else 'diverged')
        lines.append([row['init'], 'BN' if row['bn'] else 'no BN', '%g' % row['lr'],
                      '%.4f' % early, '%.4f' % row['mean_accuracy'][-1],
                      '%.4f' % row['max_mean_accuracy'],
                      _steps_text(row['steps_to_early_target']),
                      _steps_text(row['steps_to_target']), pct_text])
    return exp_common.markdown_table(header, lines)


def conv_configs(bn, lrs, args, tag):
    return [dict(part='conv', bn=bn, lr=lr, tag=tag, seed=seed, threads=args.threads,
                 quick=args.quick, data_dir=args.data_dir)
            for lr in lrs for seed in range(args.seeds)]


def conv_summary(configs, results):
    """The Figure 3 table rows: no BN and BN at their best lr, BN-x5, BN-x30."""
    groups = group_runs(configs, results, ('bn', 'lr', 'tag'))
    grid = {'%s|%g' % ('bn' if bn else 'none', lr): dict(summarize(runs), bn=bn, lr=lr,
                                                         in_grid=tag == 'grid')
            for (bn, lr, tag), runs in sorted(groups.items())}

    def best(bn):  # over the grid only: the x5/x30 runs are not candidates
        return max((g for g in grid.values() if g['bn'] == bn and g['in_grid']),
                   key=lambda g: g['max_mean_accuracy'])

    best_none, best_bn = best(False), best(True)
    target = best_none['max_mean_accuracy']
    rows = [('No BN (best lr)', best_none),
            ('BN, same lr as no BN', grid.get('bn|%g' % best_none['lr'])),
            ('BN (best lr of grid)', best_bn)]
    rows += [('BN-x%d' % m, grid.get('bn|%g' % round(best_none['lr'] * m, 10)))
             for m in BN_MULTIPLIERS]
    rows += [('No BN at %dx lr' % m, grid.get('none|%g' % round(best_none['lr'] * m, 10)))
             for m in BN_MULTIPLIERS]
    table_rows = []
    for name, row in rows:
        if row is None:
            continue
        steps = exp_common.steps_to_reach(row['steps'], row['mean_accuracy'], target)
        early = exp_common.steps_to_reach(row['steps'], row['mean_accuracy'],
                                          EARLY_FRACTION * target)
        table_rows.append(dict(name=name, lr=row['lr'], bn=row['bn'], steps_to_target=steps,
                               steps_to_early_target=early,
                               max_mean_accuracy=row['max_mean_accuracy'],
                               diverged_seeds=row['diverged_seeds']))
    return {'grid': grid, 'target_accuracy': target, 'rows': table_rows}


def _steps_text(steps):
    return 'not reached' if steps is None else steps


def conv_table(summary):
    target = summary['target_accuracy']
    header = ['model', 'lr', 'steps to %.4f (%g x no-BN best)' % (EARLY_FRACTION * target,
                                                                 EARLY_FRACTION),
              'steps to %.4f (no-BN best)' % target, 'max test acc']
    lines = [[r['name'], '%g' % r['lr'], _steps_text(r['steps_to_early_target']),
              _steps_text(r['steps_to_target']),
              '%.4f%s' % (r['max_mean_accuracy'],
                          ' (%d seeds diverged)' % r['diverged_seeds']
                          if r['diverged_seeds'] else '')]
             for r in summary['rows']]
    return exp_common.markdown_table(header, lines)


def _mlp_key(init, bn, lr):
    return '%s|%s|%g' % (init, 'bn' if bn else 'none', lr)


def _plot_accuracy(ax, mlp_rows, init, lr, title):
    for bn, style in ((False, '--'), (True, '-')):
        row = mlp_rows[_mlp_key(init, bn, lr)]
        ax.plot(row['steps'], row['mean_accuracy'], style,
                label='with BN' if bn else 'without BN')
    ax.set(title=title, xlabel='step', ylabel='test accuracy (seed mean)')
    ax.legend()


def _plot_percentiles(ax, row, title):
    points = [(s, p) for s, p in zip(row['steps'], row['percentiles_seed0']) if p]
    for q, label in enumerate(('15th', '50th', '85th')):
        ax.plot([s for s, _ in points], [p[q] for _, p in points], label=label)
    ax.set(title=title, xlabel='step', ylabel='input of one last-layer sigmoid')
    ax.legend()


def _plot_conv(ax, conv):
    for row in conv['rows']:
        curve = conv['grid']['%s|%g' % ('bn' if row['bn'] else 'none', row['lr'])]
        ax.plot(curve['steps'], curve['mean_accuracy'], '-' if curve['bn'] else '--',
                label='%s (lr %g)' % (row['name'], row['lr']))
    ax.axhline(conv['target_accuracy'], color='gray', lw=0.8)
    ax.set(title='(f) small convnet, SGD momentum 0.9 (seed mean)', xlabel='step',
           ylabel='test accuracy', ylim=(0.0, 1.0))
    ax.legend(fontsize=7)


def plot(path, record):
    """Figure 1 (a)-(c) with Gaussian init, (d)-(e) with Glorot, (f) the convnets."""
    plt = exp_common.pyplot()
    if plt is None:
        print('matplotlib is not installed: no plot (pip install matplotlib)')
        return False
    mlp_rows, conv = record['mlp'], record['conv']
    figure_lr = record['settings']['figure_lr']
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    for row, init in enumerate(('gaussian', 'glorot')):
        letters = 'abc' if row == 0 else 'de'
        _plot_accuracy(axes[row, 0], mlp_rows, init, figure_lr,
                       '(%s) MLP, %s init, lr %g' % (letters[0], init, figure_lr))
        _plot_percentiles(axes[row, 1], mlp_rows[_mlp_key(init, False, figure_lr)],
                          '(%s) %s init, without BN: 15/50/85th percentiles'
                          % (letters[1], init))
        if row == 0:
            _plot_percentiles(axes[row, 2], mlp_rows[_mlp_key(init, True, figure_lr)],
                              '(c) %s init, with BN: 15/50/85th percentiles' % init)
    _plot_conv(axes[1, 2], conv)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def main(argv=None, prog=None):
    parser = exp_common.add_common_flags(ArgumentParser(
        prog=prog, description=__doc__.split('\n')[0], formatter_class=DefaultsFormatter),
        'bn-speedup')
    parser.add_argument('--gaussian_stddev', type=float_at_least(0), default=0.1,
                        help="stddev of the MLP's 'small random Gaussian' initial weights")
    parser.add_argument('--plot_only', action='store_true',
                        help='redraw the PNG from the JSON in --out_dir, without training')
    parser.add_argument('--figure_lr', type=float, default=None,
                        help='learning rate of the Figure 1 panels (default: the middle of the grid)')
    args = exp_common.parse(parser, argv)
    png = os.path.join(args.out_dir, 'exp_bn_speedup.png')
    if args.plot_only:
        plot(png, exp_common.read_record(args.out_dir, 'exp_bn_speedup'))
        return 0
    settings = SETTINGS['quick' if args.quick else 'full']
    figure_lr = args.figure_lr or settings['mlp_lrs'][len(settings['mlp_lrs']) // 2]
    start = time.time()
    common = dict(threads=args.threads, quick=args.quick, data_dir=args.data_dir)

    mlp_configs = [dict(part='mlp', init=init, bn=bn, lr=lr, seed=seed,
                        gaussian_stddev=args.gaussian_stddev, **common)
                   for init in ('gaussian', 'glorot') for bn in (False, True)
                   for lr in settings['mlp_lrs'] for seed in range(args.seeds)]
    grid = (conv_configs(False, settings['conv_lrs_none'], args, 'grid')
            + conv_configs(True, settings['conv_lrs_bn'], args, 'grid'))
    results = exp_common.run_all(run_config_in_worker, mlp_configs + grid, args.workers)
    mlp_results, grid_results = results[:len(mlp_configs)], results[len(mlp_configs):]

    # BN-x5 / BN-x30 (and no BN there, to show it fails) at multiples of the
    # no-BN network's best learning rate, unless the grid already has them.
    conv = conv_summary(grid, grid_results)
    best_lr = next(r['lr'] for r in conv['rows'] if r['name'].startswith('No BN'))
    extra = []
    for multiple in BN_MULTIPLIERS:
        for bn, lrs in ((True, settings['conv_lrs_bn']), (False, settings['conv_lrs_none'])):
            if round(best_lr * multiple, 10) not in lrs:
                extra += conv_configs(bn, [round(best_lr * multiple, 10)], args,
                                      'x%d' % multiple)
    extra_results = exp_common.run_all(run_config_in_worker, extra, args.workers)
    conv = conv_summary(grid + extra, grid_results + extra_results)

    mlp_rows = mlp_summary(mlp_configs, mlp_results)
    tables = ('## (a) 3x100 sigmoid MLP, batch %d, plain SGD (Figure 1)\n\n%s\n\n'
              '## (b) small convnet with and without BN (Figure 3 table)\n\n%s'
              % (MLP_BATCH, mlp_table(mlp_rows), conv_table(conv)))
    print(tables)
    record = {
        'experiment': 'exp_bn_speedup', 'quick': args.quick, 'seeds': args.seeds,
        'dataset': 'digits' if args.quick else (args.data_dir or 'fashion_mnist'),
        'settings': dict(settings, mlp_batch=MLP_BATCH, gaussian_stddev=args.gaussian_stddev,
                         figure_lr=figure_lr, bn_multipliers=BN_MULTIPLIERS),
        'mlp': mlp_rows, 'conv': conv, 'wall_seconds': time.time() - start,
    }
    exp_common.finish(args.out_dir, 'exp_bn_speedup', record, tables, plot, start)
    return 0


if __name__ == '__main__':
    main()
