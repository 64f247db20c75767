"""The demo behind `make demo`: train a small BN convnet, evaluate it, print its accuracy.

It trains the small convnet with slimnorm batch norm on Fashion-MNIST for
about a minute and a half on 2 CPU cores, evaluates the checkpoint on the
10,000 test images and prints the test accuracy.

    slimnorm demo                      # what `make demo` runs
    slimnorm demo --dataset digits     # 20-second version
    slimnorm demo --mixed_precision bfloat16   # the same in bfloat16 (docs/precision.md)

Fashion-MNIST comes from Debian's `dataset-fashion-mnist` package. When it
is missing and this runs as root, the demo installs it with apt-get; as
another user it says how, and falls back to scikit-learn's digits.
"""
import os
import shutil
import subprocess
import sys
import time

from slimnorm.cli import common
from slimnorm.train import config as run_config  # no TensorFlow: flags are checked first

FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
FASHION_MNIST_PACKAGE = 'dataset-fashion-mnist'
DEFAULT_TRAIN_DIR = os.path.join('runs', 'demo')

# Tuned on the project's 2-core CPU machines: 1,400 steps of 128 images (3
# epochs) reach ~92% test accuracy; see the README for the measured time.
RECIPES = {
    'fashion_mnist': dict(batch_size=128, max_steps=1400, learning_rate=0.1,
                          lr_schedule='cosine', weight_decay=5e-4, optimizer='momentum'),
    'digits': dict(batch_size=64, max_steps=600, learning_rate=0.1,
                   lr_schedule='cosine', weight_decay=1e-4, optimizer='momentum'),
}


def ensure_fashion_mnist(log=print):
    """True if Fashion-MNIST is (now) installed; installs it as root via apt-get."""
    if os.path.isdir(FASHION_MNIST_DIR):
        return True
    install = ['apt-get', 'install', '-y', '--no-install-recommends', FASHION_MNIST_PACKAGE]
    if os.geteuid() != 0 or shutil.which('apt-get') is None:
        log(f'Fashion-MNIST is not installed ({FASHION_MNIST_DIR} is missing). Install it '
            f'with `sudo apt-get install {FASHION_MNIST_PACKAGE}`; using scikit-learn\'s '
            'digits meanwhile.')
        return False
    log(f'Installing Fashion-MNIST: {" ".join(install)}')
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    if subprocess.run(install, env=env).returncode != 0:
        # A fresh machine may not have the package lists yet.
        subprocess.run(['apt-get', 'update'], env=env)
        subprocess.run(install, env=env)
    if os.path.isdir(FASHION_MNIST_DIR):
        return True
    log(f'apt-get could not install {FASHION_MNIST_PACKAGE}; using scikit-learn\'s digits.')
    return False


def _empty_run_dir(train_dir):
    """Removes an earlier run in ``train_dir``; refuses to empty anything else."""
    if not os.path.isdir(train_dir) or not os.listdir(train_dir):
        return
    if run_config.read_run_config(train_dir) is None:
        raise ValueError(
            f'train_dir={train_dir!r} is not empty and holds no earlier run '
            f'({run_config.RUN_CONFIG_FILE}); accepted: a new or empty directory')
    shutil.rmtree(train_dir)


def build_parser(prog='slimnorm demo'):
    parser = common.ArgumentParser(prog=prog, description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', choices=sorted(RECIPES), default='fashion_mnist',
                        help='fashion_mnist (default; falls back to digits) or digits')
    parser.add_argument('--train_dir', default=DEFAULT_TRAIN_DIR,
                        help='where the checkpoints go (emptied first; default runs/demo)')
    parser.add_argument('--max_steps', type=common.int_at_least(1), default=None,
                        help='override the recipe\'s number of steps')
    common.add_mixed_precision_argument(parser, default='none')
    return parser


def run(args):
    """Trains and evaluates with the parsed flags; returns the exit code."""
    dataset = args.dataset
    if dataset == 'fashion_mnist' and not ensure_fashion_mnist():
        dataset = 'digits'
    recipe = dict(RECIPES[dataset])
    if args.max_steps is not None:
        recipe['max_steps'] = args.max_steps
    config = run_config.TrainConfig(
        model='small_convnet', dataset=dataset, normalizer='batch', train_dir=args.train_dir,
        threads=2, save_every_secs=60, log_every_steps=100,
        mixed_precision=args.mixed_precision, **recipe).check()
    _empty_run_dir(args.train_dir)

    from slimnorm.train import evaluation, loop  # TensorFlow from here on
    started = time.time()
    result = loop.train(config)
    trained = time.time() - started
    metrics = evaluation.evaluate(run_config.EvalConfig(
        model=config.model, dataset=dataset, normalizer=config.normalizer, threads=2,
        mixed_precision=args.mixed_precision),
        result['checkpoint'])
    print()
    print(evaluation.format_table(metrics))
    print()
    print(f'Test accuracy: {100 * metrics["top1"]:.2f}% on {metrics["num_examples"]:,} '
          f'{dataset} test images (small convnet + slimnorm.batch_norm, '
          f'{result["global_step"]} steps, trained in {trained:.0f} s, '
          f'{time.time() - started:.0f} s with evaluation)', flush=True)
    if result['interrupted']:
        print(f'(training was stopped early by {result["interrupted"]})')
    return 0


def main(argv=None, prog='slimnorm demo'):
    common.quiet_tensorflow()
    return common.run_cli(build_parser(prog), run, argv)


if __name__ == '__main__':
    sys.exit(main())
