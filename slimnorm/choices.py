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
MODELS = ('inception_v2', 'small_convnet')

# The `normalizer=` switch of every network (`nets.normalizers`). None means no
# normalizer; NORMALIZER_ALIASES maps the command line's spelling of it.
NORMALIZERS = ('batch', 'batch_renorm', 'group', 'layer', 'instance', None)
NORMALIZER_ALIASES = {'none': None}

# Data sets of `slimnorm.data.datasets.load` and their splits.
DATASETS = ('digits', 'fashion_mnist', 'mnist_dir')
SPLITS = ('train', 'test')

# Options of the training loop (`slimnorm.train`).
LR_SCHEDULES = ('constant', 'cosine', 'step')
OPTIMIZERS = ('momentum', 'adam', 'sgd')


def normalizer_names():
    """NORMALIZERS as the command line spells them ('none' for None)."""
    return tuple('none' if name is None else name for name in NORMALIZERS)
