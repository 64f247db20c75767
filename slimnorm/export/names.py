"""The exported graph's node names and the classes per data set (no TensorFlow).

Kept apart from `freeze` so that the command line can check its flags
before TensorFlow loads.
"""

INPUT_NAME = 'input'
LOGITS_NAME = 'logits'
PROBABILITIES_NAME = 'probabilities'
OUTPUT_NAMES = (LOGITS_NAME, PROBABILITIES_NAME)

# research/slim's data sets plus ours, as --dataset_name: number of classes
# (ImageNet's 1001 include slim's background class 0).
DATASET_CLASSES = {
    'imagenet': 1001,
    'flowers': 5,
    'cifar10': 10,
    'mnist': 10,
    'digits': 10,
    'fashion_mnist': 10,
    'mnist_dir': 10,
}


def num_classes_for(dataset_name=None, num_classes=None, labels_offset=0):
    """slim's rule: the data set's classes (or `num_classes`) minus the offset.

    Raises:
      ValueError: neither or both given, unknown data set, or no class left.
    """
    if (dataset_name is None) == (num_classes is None):
        raise ValueError('give exactly one of dataset_name (got %r) and '
                         'num_classes (got %r)' % (dataset_name, num_classes))
    if dataset_name is not None:
        if dataset_name not in DATASET_CLASSES:
            raise ValueError('dataset_name=%r is not known; accepted: %s'
                             % (dataset_name, ', '.join(sorted(DATASET_CLASSES))))
        num_classes = DATASET_CLASSES[dataset_name]
    classes = num_classes - labels_offset
    if classes < 1:
        raise ValueError('num_classes - labels_offset = %d - %d leaves no class'
                         % (num_classes, labels_offset))
    return classes


def short_list(names, limit=3):
    """'a, b, c, ...': the first `limit` names of a list, for error messages."""
    names = list(names)
    return ', '.join(names[:limit]) + (', ...' if len(names) > limit else '')
