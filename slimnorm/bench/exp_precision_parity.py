"""Accuracy parity of bfloat16 and float32 training: the demo's recipe, and an Inception V2 loss curve.

    python -m slimnorm.bench.exp_precision_parity --out_dir runs/precision_parity
    python -m slimnorm.bench.exp_precision_parity --part inception --inception_steps 300

``demo``: `make demo`'s recipe (small convnet on Fashion-MNIST, batch 128,
1,400 steps, lr 0.1 cosine, weight decay 5e-4; ``--normalizers batch group``)
trained through `slimnorm.train.loop` with ``mixed_precision`` none and
bfloat16, for each seed, and each run evaluated on the 10,000 test images in
the precision it was trained in. Both precisions of a seed see the same
batches (the in-memory sets' batch order is a function of seed and step).
``inception``: Inception V2 (batch norm) on Fashion-MNIST resized to
``--inception_size`` px, the training loss every 10 steps in both precisions
on the same batches; a PNG of the two curves.

Writes ``precision_parity.json`` (and ``precision_loss_curve.png``) to
``--out_dir`` atomically, after each finished run, so a stopped experiment
keeps what it measured.
"""
import json
import os
import re
import sys
import time

from slimnorm import precision
from slimnorm.cli import demo
from slimnorm.cli.common import ArgumentParser, int_at_least

PRECISIONS = ('none', 'bfloat16')
STEP_LINE = re.compile(r'^step (\d+)/\d+\s+loss ([0-9.]+)')


def _write_json(path, record):
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
        json.dump(record, f, indent=2, sort_keys=True)
    os.replace(path + '.tmp', path)


def train_and_evaluate(train_dir, mixed_precision, seed, log_every=100, **fields):
    """Trains one run; returns (test top-1 in the same precision, [(step, loss)], seconds)."""
    from slimnorm.train import evaluation, loop
    from slimnorm.train.config import EvalConfig, TrainConfig
    config = TrainConfig(train_dir=train_dir, seed=seed, mixed_precision=mixed_precision,
                         threads=2, save_every_secs=0, log_every_steps=log_every,
                         **fields).check()
    curve = []

    def log(line):
        match = STEP_LINE.match(line)
        if match:
            curve.append((int(match.group(1)), float(match.group(2))))

    started = time.time()
    result = loop.train(config, log=log)
    seconds = time.time() - started
    metrics = evaluation.evaluate(EvalConfig(
        model=config.model, dataset=config.dataset, normalizer=config.normalizer,
        image_size=config.image_size, threads=2, mixed_precision=mixed_precision),
        result['checkpoint'])
    return metrics['top1'], curve, seconds


def _plot(record, path):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    curves = record.get('inception', {})
    if not curves:
        return
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, run in sorted(curves.items()):
        steps, losses = zip(*run['curve'])
        ax.plot(steps, losses, label=f'{"float32" if name == "none" else name} '
                f'(last 50 steps: {sum(losses[-5:]) / len(losses[-5:]):.3f})')
    ax.set_xlabel('step')
    ax.set_ylabel('training loss (mean of 10 steps)')
    ax.set_title(f'Inception V2 (batch norm), Fashion-MNIST at {record["inception_size"]} px, '
                 'same batches', fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path + '.tmp.png', dpi=110)
    os.replace(path + '.tmp.png', path)


def main(argv=None, prog='slimnorm exp precision-parity'):
    parser = ArgumentParser(prog=prog, description=__doc__.split('\n')[0])
    parser.add_argument('--out_dir', default=os.path.join('runs', 'precision_parity'))
    parser.add_argument('--part', choices=('demo', 'inception', 'all'), default='all')
    parser.add_argument('--seeds', type=int_at_least(0), nargs='+', default=[0, 1, 2])
    parser.add_argument('--normalizers', nargs='+', default=['batch', 'group'])
    parser.add_argument('--max_steps', type=int_at_least(1), default=None,
                        help="override the demo recipe's 1,400 steps")
    parser.add_argument('--inception_steps', type=int_at_least(1), default=300)
    parser.add_argument('--inception_size', type=int_at_least(1), default=96)
    parser.add_argument('--inception_batch', type=int_at_least(1), default=16)
    args = parser.parse_args(argv)
    try:
        precision.check('bfloat16')
    except ValueError as err:
        parser.error(str(err))
    if not demo.ensure_fashion_mnist():
        print(f'{prog}: Fashion-MNIST is not installed', file=sys.stderr)
        return 1
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, 'precision_parity.json')
    record = {'machine': precision.machine(), 'command': ' '.join(sys.argv), 'demo': [],
              'inception': {}, 'inception_size': args.inception_size}
    recipe = dict(demo.RECIPES['fashion_mnist'])
    if args.max_steps:
        recipe['max_steps'] = args.max_steps
    record['recipe'] = recipe
    if args.part in ('demo', 'all'):
        for normalizer in args.normalizers:  # batch norm's seeds first: `make demo`'s net
            for seed in args.seeds:
                for mp in PRECISIONS:
                    top1, _, seconds = train_and_evaluate(
                        os.path.join(args.out_dir, f'{normalizer}_{mp}_{seed}'), mp, seed,
                        model='small_convnet', dataset='fashion_mnist', normalizer=normalizer,
                        **recipe)
                    record['demo'].append({'normalizer': normalizer, 'mixed_precision': mp,
                                           'seed': seed, 'top1': top1, 'seconds': seconds})
                    print(f'{normalizer} {mp} seed {seed}: top-1 {100 * top1:.2f} % '
                          f'({seconds:.0f} s)', flush=True)
                    _write_json(path, record)
    if args.part in ('inception', 'all'):
        for mp in PRECISIONS:
            top1, curve, seconds = train_and_evaluate(
                os.path.join(args.out_dir, f'inception_{mp}'), mp, 0, log_every=10,
                model='inception_v2', dataset='fashion_mnist', normalizer='batch',
                image_size=args.inception_size, batch_size=args.inception_batch,
                max_steps=args.inception_steps, learning_rate=0.02, lr_schedule='cosine',
                weight_decay=4e-5)
            record['inception'][mp] = {'top1': top1, 'curve': curve, 'seconds': seconds}
            print(f'inception_v2 {mp}: top-1 {100 * top1:.2f} %, final loss {curve[-1][1]:.3f} '
                  f'({seconds:.0f} s)', flush=True)
            _write_json(path, record)
            _plot(record, os.path.join(args.out_dir, 'precision_loss_curve.png'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
