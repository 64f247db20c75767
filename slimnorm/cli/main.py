"""The `slimnorm` command (and `python -m slimnorm`): one command, subcommands.

    slimnorm --help                  the subcommands, one line each
    slimnorm train --help            a subcommand's flags and their defaults
    slimnorm bench norms --quick     a benchmark (`slimnorm bench` lists them)

Each subcommand is a ``main(argv, prog)`` function elsewhere in the package,
named here as ``'module:function'`` and imported only when it runs, so that
this listing and every flag check come before TensorFlow loads.
"""
import contextlib
import importlib
import inspect
import os
import re
import sys
import tempfile

# name -> (one-line summary, 'module:function'); a group holds a table of its own.
BENCH = {
    'norms': ('normalization ops and Inception V2 steps, as ratios to TF fused batch norm',
              'slimnorm.bench.run:main'),
    'input': ('TFRecord input pipeline against in-memory batches',
              'slimnorm.bench.input_pipeline:main'),
    'fold': ('inference with batch norm folded into the layer before it, vs not',
             'slimnorm.bench.fold_bench:main'),
    'sync-bn': ('a training step with synchronized batch norm vs local batch norm',
                'slimnorm.bench.sync_bn_bench:main'),
    'scale-out': ('training steps on 1 process, 2 clones and 2-worker clusters',
                  'slimnorm.bench.scale_out:main'),
    'precision': ('float32 against mixed precision (bfloat16/float16) training steps',
                  'slimnorm.bench.precision:main'),
    'config': ('oneDNN and thread-pool session settings', 'slimnorm.bench.session_config:main'),
    'deploy': ('TFLite/ONNX Runtime float and int8 latency, sizes and top-1 vs TF float32',
               'slimnorm.bench.deploy:main'),
}
EXPERIMENTS = {
    'bn-speedup': ('the batch norm paper: training with and without BN, sigmoid and ReLU',
                   'slimnorm.bench.exp_bn_speedup:main'),
    'gn-batch-size': ('the group norm paper: BN vs GN error as the batch shrinks',
                      'slimnorm.bench.exp_gn_batch_size:main'),
    'sync-bn': ('synchronized BN on small per-replica batches vs per-replica statistics',
                'slimnorm.bench.exp_sync_bn:main'),
    'renorm-warmup': ('batch renorm with fixed clipping bounds vs the warm-up schedule',
                      'slimnorm.bench.exp_renorm_warmup:main'),
    'precise-bn': ('precise BN statistics vs the moving averages during training',
                   'slimnorm.bench.exp_precise_bn:main'),
    'precision-parity': ('bfloat16 vs float32 accuracy: the demo over 3 seeds, Inception V2 loss',
                         'slimnorm.bench.exp_precision_parity:main'),
}
COMMANDS = {
    'train': ('train a network (research/slim train_image_classifier flags)',
              'slimnorm.cli.train:main'),
    'eval': ('evaluate a checkpoint, once or each new one of a training run',
             'slimnorm.cli.eval:main'),
    'export': ('export for inference: frozen GraphDef, SavedModel, TFLite, ONNX (float, int8)',
               'slimnorm.export.cli:export_main'),
    'precise-bn': ("recompute a checkpoint's moving statistics over training batches",
                   'slimnorm.export.cli:precise_bn_main'),
    'build-tfrecords': ('write research/slim-format TFRecords from images or a built-in set',
                        'slimnorm.data.convert:main'),
    'legacy': ("run an unedited tf-slim script with slimnorm's norms patched in",
               'slimnorm.legacy.runner:main'),
    'cluster': ('start a ps/worker training cluster on 127.0.0.1',
                'slimnorm.train.local_cluster:main'),
    'caffe-import': ('import Caffe BatchNorm + Scale parameters into a slim checkpoint',
                     'slimnorm.export.cli:caffe_main'),
    'demo': ('train and evaluate a small BN convnet on Fashion-MNIST (`make demo`)',
             'slimnorm.cli.demo:main'),
    'plot': ("write a PNG of a run's training loss and eval accuracy curves",
             'slimnorm.cli.plot:main'),
    'bench': ('benchmarks (timings as ratios measured in one process)', BENCH),
    'exp': ("experiments reproducing the normalization papers' claims", EXPERIMENTS),
}


def usage(prog, table):
    """The listing of ``table``'s subcommands under ``prog``."""
    width = max(len(name) for name in table) + 2
    lines = [f'usage: {prog} <command> [flags]  ({prog} <command> --help for its flags)', '',
             'commands:']
    lines += [f'  {name:<{width}}{summary}' for name, (summary, _) in table.items()]
    return '\n'.join(lines) + '\n'


# An absl log line of TensorFlow's C++ start-up: severity letter, date, time, thread, file:line.
_ABSL_LINE = re.compile(r'([IWE])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] ')
_ABSL_PREAMBLE = 'WARNING: All log messages before absl::InitializeLog() is called'


def _below_log_level(line, level):
    """Whether TensorFlow's C++ would have hidden ``line`` at TF_CPP_MIN_LOG_LEVEL ``level``."""
    if line.startswith(_ABSL_PREAMBLE):
        return level >= 1
    match = _ABSL_LINE.match(line)
    return bool(match) and 'IWE'.index(match.group(1)) < level


@contextlib.contextmanager
def tensorflow_startup_filtered():
    """Drops TensorFlow's start-up log lines that TF_CPP_MIN_LOG_LEVEL should hide.

    TensorFlow 2.21 logs "oneDNN custom operations are on" (an info line)
    through absl before it reads TF_CPP_MIN_LOG_LEVEL, so a subcommand whose
    module imports TensorFlow would print it above its usage. Standard error
    is captured while the module is imported and every other line is written
    back.
    """
    try:
        level = int(os.environ.get('TF_CPP_MIN_LOG_LEVEL', '0'))
    except ValueError:
        level = 0
    if level < 1:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors='replace')
            sys.stderr.write(''.join(line for line in text.splitlines(keepends=True)
                                     if not _below_log_level(line, level)))
            sys.stderr.flush()


def load(target):
    """The function ``'module:function'`` names; None if its module is not installed."""
    module_name, function = target.split(':')
    try:
        with tensorflow_startup_filtered():
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:  # something the module imports is missing
            raise
        return None
    return getattr(module, function)


def call(function, argv, prog):
    """``function(argv, prog=prog)``, or without prog where it takes none."""
    if 'prog' in inspect.signature(function).parameters:
        return function(argv, prog=prog)
    return function(argv)


def main(argv=None, prog='slimnorm'):
    """Runs the subcommand ``argv`` names; returns its exit status.

    A reader that stops early (``slimnorm legacy --help | head -2``) ends the
    command quietly with status 1, as Python's documentation recommends for
    SIGPIPE, instead of a BrokenPipeError traceback.
    """
    try:
        status = _run(list(sys.argv[1:] if argv is None else argv), prog)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _run(argv, prog):
    table = COMMANDS
    while True:
        if not argv or argv[0] in ('-h', '--help'):
            sys.stdout.write(usage(prog, table))
            return 0 if argv else 2
        name, argv = argv[0], argv[1:]
        if name not in table:
            sys.stderr.write(f'{prog}: error: unknown command {name!r}; accepted: '
                             f'{", ".join(table)} (see {prog} --help)\n')
            return 2
        prog, (_, target) = f'{prog} {name}', table[name]
        if isinstance(target, dict):
            table = target
            continue
        break
    from slimnorm.cli.common import quiet_tensorflow
    quiet_tensorflow()  # before any subcommand's module can import TensorFlow
    function = load(target)
    if function is None:
        sys.stderr.write(f'{prog}: not available in this version of slimnorm '
                         f'(module {target.split(":")[0]} is not installed)\n')
        return 1
    return call(function, argv, prog)


if __name__ == '__main__':
    sys.exit(main())
