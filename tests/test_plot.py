"""`slimnorm plot RUN` (slimnorm/cli/plot.py): curves read from a tiny run's event files."""
import os

import matplotlib.image
import pytest
from tensorboard.backend.event_processing import event_accumulator

from slimnorm.cli import eval as eval_cli
from slimnorm.cli import plot
from slimnorm.cli import train as train_cli


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    run = str(tmp_path_factory.mktemp('plot') / 'run')
    assert train_cli.main(['--dataset_name', 'digits', '--train_dir', run,
                           '--max_number_of_steps', '30', '--log_every_steps', '10']) == 0
    # --watch writes the eval summaries; it stops at the run's last step.
    assert eval_cli.main(['--checkpoint_path', run, '--watch', '--timeout', '30']) == 0
    return run


def _tensorboard_scalars(directory):
    """{tag: [(step, value)]} as TensorBoard's own reader sees ``directory``."""
    events = event_accumulator.EventAccumulator(directory)
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()['scalars']}


def test_reads_the_scalars_tensorboard_reads(run_dir):
    scalars = plot.read_scalars(run_dir)
    expected = _tensorboard_scalars(run_dir)
    expected.update(_tensorboard_scalars(os.path.join(run_dir, 'eval')))
    for tag in ('losses/total_loss', 'accuracy/train_batch', 'eval/top1'):
        assert [s for s, _ in scalars[tag]] == [s for s, _ in expected[tag]], tag
        assert [v for _, v in scalars[tag]] == pytest.approx([v for _, v in expected[tag]])
    # slim's --save_summaries_secs 600: a run this short has the first and the last step.
    assert [step for step, _ in scalars['losses/total_loss']] == [1, 30]
    assert [step for step, _ in scalars['eval/top1']] == [30]


def test_writes_a_png_and_nothing_else(run_dir, tmp_path, capsys):
    output = str(tmp_path / 'curves.png')
    assert plot.main([run_dir, '--output', output]) == 0
    height, width = matplotlib.image.imread(output).shape[:2]
    assert (width, height) == (1100, 400)
    assert os.listdir(tmp_path) == ['curves.png']
    assert f'wrote {output} (steps 1-30, 1 evaluations)' in capsys.readouterr().out


def test_default_output_is_in_the_run(run_dir):
    assert plot.main([run_dir]) == 0
    assert os.path.getsize(os.path.join(run_dir, plot.DEFAULT_OUTPUT)) > 1000


@pytest.mark.parametrize('make, message', [
    (lambda tmp: str(tmp), 'holds no TensorFlow event files'),
    (lambda tmp: str(tmp / 'missing'), 'holds no TensorFlow event files'),
])
def test_a_directory_without_a_run_is_one_line(tmp_path, capsys, make, message):
    with pytest.raises(SystemExit) as exit:
        plot.main([make(tmp_path)])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and message in err and err.count('\n') == 1


def test_a_missing_output_directory_is_one_line_and_writes_nothing(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        plot.main([run_dir, '--output', str(tmp_path / 'no' / 'curves.png')])
    assert exit.value.code == 2 and 'its directory does not exist' in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
