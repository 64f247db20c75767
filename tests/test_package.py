"""Packaging promises: a light `import slimnorm`, console commands, no tf_keras."""
import ast
import importlib
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
    assert result.stderr.startswith("slimnorm-train: error: batch_size")


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


@pytest.mark.parametrize("command, target", sorted(_console_scripts().items()))
def test_console_scripts_name_a_main_and_a_script_of_the_checkout(command, target):
    module, function = target.split(":")
    assert callable(getattr(importlib.import_module(module), function))
    script = os.path.join(ROOT, "scripts", command[len("slimnorm-"):].replace("-", "_") + ".py")
    assert "from %s import %s" % (module, function) in open(script, encoding="utf-8").read()


@pytest.mark.parametrize("command", ["slimnorm-train", "slimnorm-eval"])
def test_train_and_eval_help_runs_before_tensorflow_loads(command):
    module = _console_scripts()[command].split(":")[0]
    result = _python("import sys\n"
                     "from %s import main\n"
                     "try:\n"
                     "    main(['--help'])\n"
                     "except SystemExit as exit:\n"
                     "    print('exit', exit.code, 'tensorflow' in sys.modules)\n" % module)
    assert result.stdout.strip().endswith("exit 0 False"), result.stderr[-2000:]
    flag = "--train_dir" if command == "slimnorm-train" else "--checkpoint_path"
    assert "usage: %s" % command in result.stdout and flag in result.stdout


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
