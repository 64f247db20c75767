"""The shared reference lists of slim's Inception V2.

They were measured from research/slim's network and are the layout of the
public checkpoint inception_v2_2016_08_28. The project's shared folder
(../shared/reference) is the source; tests/data holds verbatim copies so that
a clone anywhere (CI included) runs the comparison instead of skipping it,
and `test_copies_match_the_shared_reference` keeps the copies honest
wherever the shared folder is present.
"""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DIR = os.path.join(ROOT, '..', 'shared', 'reference')
COPY_DIR = os.path.join(ROOT, 'tests', 'data')
VARIABLES_TSV = 'inception_v2_1001_variables.tsv'
END_POINTS_TSV = 'inception_v2_1001_endpoints.tsv'


def reference_path(name):
    """The shared file when present, else the verbatim copy in tests/data."""
    shared = os.path.join(SHARED_DIR, name)
    return shared if os.path.exists(shared) else os.path.join(COPY_DIR, name)


def read_reference(name):
    """[(name, shape)] rows of a reference TSV, in file order."""
    with open(reference_path(name)) as f:
        rows = [line.rstrip('\n').split('\t') for line in f
                if line.strip() and not line.startswith('#')]
    return [(key, ast.literal_eval(shape)) for key, shape in rows]
