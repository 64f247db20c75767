"""The lists of accepted values, in one TensorFlow-free module.

The command line checks its flags against these lists before TensorFlow is
imported, and the code that acts on a value takes its list from here too
(`nets.nets_factory` builds its table from `MODELS`, `nets.normalizers`
accepts `NORMALIZERS`, `slimnorm.data.datasets` loads `DATASETS`), so a list
and the code behind it cannot drift apart.
"""

# Networks of `nets.nets_factory`: network `name` is the function `name` of
# module `nets.<name>`, with its arg scope `<name>_arg_scope` (research/slim's
# naming).
MODELS = ('inception_v2', 'mobilenet_v1', 'small_convnet')

# The `normalizer=` switch of every network (`nets.normalizers`). None means no
# normalizer; NORMALIZER_ALIASES maps the command line's spelling of it.
NORMALIZERS = ('batch', 'batch_renorm', 'group', 'layer', 'instance', None)
NORMALIZER_ALIASES = {'none': None}

# Data sets of `slimnorm.data.datasets.load` and their splits.
DATASETS = ('digits', 'fashion_mnist', 'mnist_dir')
SPLITS = ('train', 'test')

# `--dataset_name tfrecord`: research/slim-format TFRecords read from
# `--dataset_dir` by `slimnorm.data.tfrecord` (its splits are whatever files
# the directory holds: train, validation, ...). The training and evaluation
# commands accept it beside the in-memory sets.
TFRECORD = 'tfrecord'
INPUT_DATASETS = DATASETS + (TFRECORD,)

# Preprocessings of `slimnorm.data.preprocessing.get_preprocessing`, and the
# one each network gets by default (research/slim's preprocessing_factory:
# Inception preprocessing for the ImageNet networks; the light one for the
# small network, whose images are too small to crop).
PREPROCESSINGS = ('inception', 'light')
DEFAULT_PREPROCESSING = {'inception_v2': 'inception', 'mobilenet_v1': 'inception',
                         'small_convnet': 'light'}
assert set(DEFAULT_PREPROCESSING) == set(MODELS)

# Options of the training loop (`slimnorm.train.optimization`): research/slim's
# learning_rate_decay_type values and optimizers, then slimnorm's own
# schedules by max_steps (cosine; step: x0.1 at 50% and 75%).
LR_SCHEDULES = ('exponential', 'fixed', 'polynomial', 'cosine', 'step')
LR_SCHEDULE_ALIASES = {'constant': 'fixed'}
OPTIMIZERS = ('adadelta', 'adagrad', 'adam', 'ftrl', 'momentum', 'rmsprop', 'sgd')


def normalizer_names():
    """NORMALIZERS as the command line spells them ('none' for None)."""
    return tuple('none' if name is None else name for name in NORMALIZERS)

# `--mixed_precision` of the commands (`slimnorm.precision`): float32
# everywhere, TensorFlow's oneDNN bfloat16 rewrite (CPUs with BF16
# instructions), or the CUDA float16 rewrite with loss scaling (GPUs).
MIXED_PRECISIONS = ('none', 'bfloat16', 'float16')
