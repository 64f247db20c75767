"""The shared reference lists of slim's Inception V2 (../shared/reference).

They were measured from research/slim's network and are the layout of the
public checkpoint inception_v2_2016_08_28. A test that needs them is skipped,
with the path in the reason, where they are not present.
"""

import ast
import os

import pytest

REFERENCE_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    '..', 'shared', 'reference')
VARIABLES_TSV = 'inception_v2_1001_variables.tsv'
END_POINTS_TSV = 'inception_v2_1001_endpoints.tsv'


def read_reference(name):
    """[(name, shape)] rows of a reference TSV, in file order."""
    path = os.path.join(REFERENCE_DIR, name)
    if not os.path.exists(path):
        pytest.skip('reference list %s is not present' % path)
    with open(path) as f:
        rows = [line.rstrip('\n').split('\t') for line in f
                if line.strip() and not line.startswith('#')]
    return [(key, ast.literal_eval(shape)) for key, shape in rows]
