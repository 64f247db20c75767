"""The shared reference lists of slim's Inception V2.

They were measured from research/slim's network and are the layout of the
public checkpoint inception_v2_2016_08_28. tests/data holds verbatim copies of
the project's shared reference files (shared/reference/, read-only; byte-equal
by `cmp` when copied), so that every clone, CI included, reads the same files
from inside the repository.
"""

import ast
import os

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')
VARIABLES_TSV = 'inception_v2_1001_variables.tsv'
END_POINTS_TSV = 'inception_v2_1001_endpoints.tsv'


def read_reference(name):
    """[(name, shape)] rows of a reference TSV, in file order."""
    with open(os.path.join(DATA_DIR, name)) as f:
        rows = [line.rstrip('\n').split('\t') for line in f
                if line.strip() and not line.startswith('#')]
    return [(key, ast.literal_eval(shape)) for key, shape in rows]
