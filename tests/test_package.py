"""Packaging promises: a light `import slimnorm`, one console command, no tf_keras."""
import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code):
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_import_without_tensorflow_names_the_extra():
    # A None entry in sys.modules makes `import tensorflow` raise ImportError.
    result = _python("import sys; sys.modules['tensorflow'] = None; import slimnorm\n"
                     "print('imported')\n"
                     "slimnorm.batch_norm")
    assert result.returncode != 0 and "imported" in result.stdout
    assert "slimnorm[cpu]" in result.stderr and "slimnorm[gpu]" in result.stderr


def test_flags_are_checked_without_importing_tensorflow():
    # What the commands import before their flags are checked, and a bad flag.
    result = _python(
        "import sys\n"
        "import slimnorm, slimnorm.checks, slimnorm.choices, slimnorm.checkpoints\n"
        "import slimnorm.train.config, slimnorm.cli.train, slimnorm.cli.eval, slimnorm.cli.demo\n"
        "from slimnorm.cli import train\n"
        "try:\n"
        "    train.main(['--batch_size', '0'])\n"
        "except SystemExit as exit:\n"
        "    print('exit', exit.code, 'tensorflow' in sys.modules)\n")
    assert result.stdout.strip() == "exit 2 False", result.stderr[-2000:]
    assert result.stderr.startswith("slimnorm train: error: batch_size")


def test_public_layers_are_the_arg_scope_functions_of_their_modules():
    from tf_slim.ops.arg_scope import arg_scoped_arguments

    import slimnorm
    import slimnorm.group_norm  # the submodule import must not replace the function
    from slimnorm import batch_norm as module_or_function
    for name in ("batch_norm", "group_norm", "layer_norm", "instance_norm"):
        function = getattr(slimnorm, name)
        assert function is getattr(sys.modules["slimnorm." + name], name)
        assert arg_scoped_arguments(function)  # decorated by slim.add_arg_scope
    assert module_or_function is slimnorm.batch_norm
    assert slimnorm.training.create_train_op is sys.modules["slimnorm.training"].create_train_op
    assert callable(slimnorm.batch_norm_layer)


def _console_scripts():
    """{command: 'module:function'} of setup.py's console_scripts."""
    tree = ast.parse(open(os.path.join(ROOT, "setup.py"), encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return dict(item.value.replace(" ", "").split("=")
                                for item in value.elts)
    raise AssertionError("setup.py has no console_scripts")


def test_one_console_command():
    assert _console_scripts() == {"slimnorm": "slimnorm.cli.main:main"}


@pytest.mark.parametrize("script", sorted(os.listdir(os.path.join(ROOT, "scripts"))))
def test_scripts_call_a_function_of_the_slimnorm_command(script):
    from slimnorm.cli import main as cli
    targets = [target for _, target in cli.COMMANDS.values() if isinstance(target, str)]
    text = open(os.path.join(ROOT, "scripts", script), encoding="utf-8").read()
    assert any("from %s import %s" % tuple(t.split(":")) in text for t in targets), script


@pytest.mark.parametrize("command, flag", [("train", "--train_dir"),
                                           ("eval", "--checkpoint_path")])
def test_train_and_eval_help_runs_before_tensorflow_loads(command, flag):
    result = _python("import sys\n"
                     "from slimnorm.cli.main import main\n"
                     "try:\n"
                     "    main([%r, '--help'])\n"
                     "except SystemExit as exit:\n"
                     "    print('exit', exit.code, 'tensorflow' in sys.modules)\n" % command)
    assert result.stdout.strip().endswith("exit 0 False"), result.stderr[-2000:]
    assert "usage: slimnorm %s" % command in result.stdout and flag in result.stdout


def test_moved_modules_keep_their_old_import_paths():
    import slimnorm
    import slimnorm.legacy.patch
    import slimnorm.tf_slim_patch
    import slimnorm.train.train_op
    import slimnorm.training
    assert slimnorm.training is slimnorm.train.train_op
    assert slimnorm.tf_slim_patch is slimnorm.legacy.patch
    assert slimnorm.patch_tf_slim is slimnorm.legacy.patch.patch_tf_slim
    from slimnorm.training import create_train_op
    assert create_train_op is slimnorm.train.train_op.create_train_op


def test_import_slimnorm_and_nets_needs_no_tf_keras_sklearn_or_matplotlib():
    # TensorFlow itself imports sklearn/matplotlib when present, so instead of
    # inspecting sys.modules, make them unimportable and import anyway.
    result = _python(
        "import sys\n"
        "for m in ('tf_keras', 'sklearn', 'matplotlib'): sys.modules[m] = None\n"
        "import slimnorm, nets.nets_factory, nets.inception_v2, nets.small_convnet\n"
        "print('imported')")
    assert result.returncode == 0 and "imported" in result.stdout, result.stderr[-2000:]


def test_no_compat_v1_layers_normalization_in_sources():
    for top in ("slimnorm", "nets"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith(".py"):
                    text = open(os.path.join(dirpath, name), encoding="utf-8").read()
                    for banned in ("tf_keras", "layers.BatchNormalization", "layers.batch_normalization",
                                   "keras.layers"):
                        assert banned not in text, (name, banned)
