"""Benchmark: one process vs 2 clones vs 1 ps + 2 workers on loopback (sync and async).

    slimnorm bench scale-out [--quick] [--out runs/bench-scale-out/scale_out_bench.json]

Every case runs ``slimnorm train`` as separate processes (the cluster cases
through ``slimnorm.train.local_cluster``) on the same total batch per step:
the one process takes it whole, 2 clones and 2 workers take half each. The
rate is the training loop's own ``ex/s`` of its last logging window (the
first windows hold the start-up and graph warm-up); a cluster's rate is the
sum of its workers'. ``ms_per_step`` is the total batch over that rate.

It also counts the trainable parameters of each network and the bytes every
worker moves to and from the ps tasks per step (pull the variables, push the
gradients: 2 x 4 bytes x parameters), the quantity docs/scale_out.md (the guide) scales
to 8-64 GPUs.

On a 2-core machine nothing can get faster: the numbers show the overhead
of clones and of the gRPC runtime, not a speed-up. Results go to JSON and a
markdown table.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

from slimnorm.cli.common import ArgumentParser
from slimnorm.cli.help_format import DefaultsFormatter

CASES = ('one_process', 'two_clones', 'ps1_workers2_sync', 'ps1_workers2_async')
# Total batch per step, image size (0: the data's own), steps per logging window.
MODELS = {
    'small_convnet': {'batch': 64, 'image_size': 0, 'window': 50},
    'inception_v2': {'batch': 8, 'image_size': 224, 'window': 4},
}
QUICK_WINDOWS = {'small_convnet': 20, 'inception_v2': 2}
RATE = re.compile(r'(\d+) ex/s')


def _train_args(model, spec, batch, train_dir, window, workers=1):
    # Async: the global step counts every worker's steps; each logs 3 windows.
    return ['--model', model, '--dataset', 'digits', '--image_size', spec['image_size'],
            '--batch_size', batch, '--max_steps', 3 * window * workers,
            '--log_every_steps', window,
            '--save_every_secs', 0, '--train_dir', train_dir, '--learning_rate', 0.01,
            '--optimizer', 'momentum', '--cluster_timeout_secs', 300]


def _last_rate(lines):
    rates = [int(m.group(1)) for m in map(RATE.search, lines) if m]
    if not rates:
        raise RuntimeError('no "ex/s" line in the output:\n' + '\n'.join(lines[-20:]))
    return rates[-1]


def run_case(case, model, window, workdir, timeout_secs=1800):
    """Images per second of one case (a float)."""
    spec = MODELS[model]
    train_dir = tempfile.mkdtemp(prefix=f'{model}_{case}_', dir=workdir)
    if case in ('one_process', 'two_clones'):
        clones = case == 'two_clones'
        args = _train_args(model, spec, spec['batch'] // (2 if clones else 1), train_dir, window)
        if clones:
            args += ['--num_clones', 2, '--clone_on_cpu']
        done = subprocess.run([sys.executable, '-m', 'slimnorm.cli.train']
                              + [str(a) for a in args], capture_output=True, text=True,
                              timeout=timeout_secs)
        if done.returncode:
            raise RuntimeError(f'{model} {case} failed:\n{done.stderr[-3000:]}')
        return float(_last_rate(done.stdout.splitlines()))
    from slimnorm.train.local_cluster import LocalCluster
    lines = {}
    sync = case.endswith('_sync')
    args = _train_args(model, spec, spec['batch'] // 2, train_dir, window, 1 if sync else 2)
    if sync:
        args.append('--sync_replicas')
    with LocalCluster(1, 2, args,
                      log=lambda name, line: lines.setdefault(name, []).append(line)) as local:
        local.start()
        codes = local.wait(timeout_secs)
    if any(codes.values()):
        raise RuntimeError(f'{model} {case}: exit codes {codes}:\n'
                           + '\n'.join(lines.get('worker 0', [])[-20:]))
    return float(sum(_last_rate(lines[f'worker {i}']) for i in range(2)))


def parameter_count(model):
    """Trainable parameters of ``model`` (1001 classes, as the ImageNet checkpoints)."""
    import tensorflow as tf

    from nets import nets_factory
    with tf.Graph().as_default():
        network_fn = nets_factory.get_network_fn(model, 1001, is_training=True)
        size = 28 if model == 'small_convnet' else 224
        network_fn(tf.compat.v1.placeholder(tf.float32, [1, size, size, 3]))
        return int(sum(v.shape.num_elements() for v in tf.compat.v1.trainable_variables()))


def run(models, quick, workdir, cases=CASES, log=print):
    results = {}
    for model in models:
        window = QUICK_WINDOWS[model] if quick else MODELS[model]['window']
        params = parameter_count(model)
        row = {'total_batch': MODELS[model]['batch'], 'parameters_1001_classes': params,
               'bytes_per_worker_step': 2 * 4 * params, 'cases': {}}
        for case in cases:
            rate = run_case(case, model, window, workdir)
            row['cases'][case] = {'images_per_sec': rate,
                                  'ms_per_step': 1000.0 * MODELS[model]['batch'] / rate}
            log(f'{model:14s} {case:20s} {rate:8.1f} images/s  '
                f'{row["cases"][case]["ms_per_step"]:8.1f} ms/step')
        results[model] = row
    return add_ratios(results)


def add_ratios(results):
    """Adds each case's ``vs_one_process`` (images/s ratio) where one_process was run."""
    for row in results.values():
        base = row['cases'].get('one_process', {}).get('images_per_sec')
        for values in row['cases'].values():
            values['vs_one_process'] = values['images_per_sec'] / base if base else None
    return results


def markdown(results):
    lines = ['| network | case | images/s | ms per step (total batch) | vs one process |',
             '|---|---|---:|---:|---:|']
    for model, row in results.items():
        for case, values in row['cases'].items():
            lines.append(f'| {model} (batch {row["total_batch"]}) | {case} | '
                         f'{values["images_per_sec"]:.1f} | {values["ms_per_step"]:.1f} | '
                         f'{_ratio(values["vs_one_process"])} |')
    return '\n'.join(lines) + '\n'


def _ratio(value):
    return '-' if value is None else f'{value:.2f}'


def main(argv=None, prog='slimnorm bench scale-out'):
    parser = ArgumentParser(prog=prog, description=__doc__.split('\n')[0],
                            formatter_class=DefaultsFormatter)
    parser.add_argument('--quick', action='store_true', help='short windows (a smoke run)')
    parser.add_argument('--models', default=','.join(MODELS),
                        help='comma-separated: ' + ','.join(MODELS))
    parser.add_argument('--cases', default=','.join(CASES),
                        help='comma-separated: ' + ','.join(CASES))
    parser.add_argument('--out', help='write the results as JSON here (and .md beside it)')
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(',') if m]
    unknown = [m for m in models if m not in MODELS]
    cases = [c for c in args.cases.split(',') if c]
    unknown += [c for c in cases if c not in CASES]
    if unknown or not models or not cases:
        parser.error(f'--models {args.models!r} --cases {args.cases!r}: unknown {unknown}; '
                     f'accepted: {sorted(MODELS)} and {list(CASES)}')
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    with tempfile.TemporaryDirectory(prefix='slimnorm_scale_out_') as workdir:
        results = run(models, args.quick, workdir, cases)
    print(markdown(results))
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(results, f, indent=2, sort_keys=True)
        with open(os.path.splitext(args.out)[0] + '.md', 'w', encoding='utf-8') as f:
            f.write(markdown(results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
