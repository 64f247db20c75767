"""docs/results/index.md lists every result file there, and only files that exist."""
import os
import re

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       'docs', 'results')


def test_index_lists_every_result_file():
    with open(os.path.join(RESULTS, 'index.md'), encoding='utf-8') as f:
        listed = set(re.findall(r'^\| \[([^\]]+)\]\(\1\)', f.read(), re.MULTILINE))
    present = set(os.listdir(RESULTS)) - {'index.md'}
    assert present - listed == set(), 'result files missing from docs/results/index.md'
    assert listed - present == set(), 'docs/results/index.md lists files that do not exist'
