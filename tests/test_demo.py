"""slimnorm demo (slimnorm.cli.demo): data fallback, run-dir safety, a tiny end-to-end run."""
import os

import pytest

from slimnorm.cli import demo


def test_missing_fashion_mnist_as_non_root_falls_back_with_the_install_command(monkeypatch):
    monkeypatch.setattr(demo, 'FASHION_MNIST_DIR', '/nonexistent/fashion-mnist')
    monkeypatch.setattr(os, 'geteuid', lambda: 1000)
    said = []
    assert demo.ensure_fashion_mnist(log=said.append) is False
    assert 'sudo apt-get install dataset-fashion-mnist' in said[0]
    assert "scikit-learn's digits" in said[0]


def test_demo_refuses_to_empty_a_directory_that_is_not_a_run(tmp_path):
    (tmp_path / 'notes.txt').write_text('mine')
    with pytest.raises(ValueError, match='is not empty and holds no earlier run'):
        demo._empty_run_dir(str(tmp_path))
    assert (tmp_path / 'notes.txt').exists()


def test_tiny_demo_run_trains_evaluates_and_prints_the_accuracy(tmp_path, capsys):
    train_dir = tmp_path / 'demo'
    args = demo.build_parser().parse_args(['--dataset', 'digits', '--train_dir', str(train_dir),
                                           '--max_steps', '40'])
    assert demo.run(args) == 0
    out = capsys.readouterr().out
    assert 'check_update_ops: the train op runs all 10 UPDATE_OPS ops' in out
    assert 'Test accuracy: ' in out and 'digits test images' in out
    # Run again: the earlier run is replaced, not resumed.
    assert demo.run(args) == 0
    assert 'from step 0 to 40' in capsys.readouterr().out
