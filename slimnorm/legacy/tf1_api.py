"""`--tf1_api`: `import tensorflow as tf` gives TF 1's API in the user's own files.

Scripts written for TensorFlow 1 say `import tensorflow as tf` and then use
`tf.app.flags`, `tf.logging`, `tf.gfile`, `tf.placeholder`, `tf.train.batch`,
`tf.contrib.slim`: names that TF 2 keeps under `tf.compat.v1` only. With
`install()`, the statement `import tensorflow as tf` (and `from tensorflow
import x`) executed by a *user* file binds a view of `tf.compat.v1` that
also has `contrib` (`slimnorm.legacy.contrib`). Every other importer gets
the real `tensorflow`: installed libraries (a file under site-packages or
dist-packages, or in Python's standard library), slimnorm itself and its
`nets`, and code without a file. Dotted imports (`import
tensorflow.compat.v1 as tf`, `from tensorflow.python.ops import ...`) are
never changed.

The hook wraps `builtins.__import__`; TensorFlow's own modules are not
edited, and `uninstall()` puts the original function back.
"""
import builtins
import os
import sysconfig
import types

_ORIGINAL_IMPORT = None
_VIEW = None


class Tf1View(types.ModuleType):
    """`tf.compat.v1` plus `contrib`: every other attribute is read from `tf.compat.v1`."""

    def __init__(self, v1, contrib):
        super().__init__('tensorflow', v1.__doc__)
        self.__dict__['tf1_api_original'] = v1
        self.__dict__['contrib'] = contrib

    def __getattr__(self, name):
        return getattr(self.__dict__['tf1_api_original'], name)

    def __dir__(self):
        return sorted(set(dir(self.__dict__['tf1_api_original'])) | {'contrib'})

    def __repr__(self):
        return "<module 'tensorflow' (tf.compat.v1 view of slimnorm.legacy --tf1_api)>"


def _library_roots():
    """Directories whose files are never the user's: the interpreter's and slimnorm's."""
    import slimnorm
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ('stdlib', 'platstdlib', 'purelib', 'platlib') if key in paths}
    package = os.path.dirname(os.path.abspath(slimnorm.__file__))
    roots.update({package, os.path.join(os.path.dirname(package), 'nets')})
    return tuple(os.path.join(os.path.realpath(root), '') for root in roots)


def is_user_file(path, roots=None):
    """Whether `path` is a file of the user's own (not an installed library)."""
    if not path:
        return False
    path = os.path.realpath(path)
    parts = path.split(os.sep)
    if 'site-packages' in parts or 'dist-packages' in parts:
        return False
    return not path.startswith(roots if roots is not None else _library_roots())


def install():
    """Installs the import hook (idempotent); returns the view module."""
    global _ORIGINAL_IMPORT, _VIEW
    if _ORIGINAL_IMPORT is not None:
        return _VIEW
    import tensorflow as tf

    from slimnorm.legacy import contrib
    view = _VIEW = Tf1View(tf.compat.v1, contrib.install())
    roots = _library_roots()
    original = builtins.__import__
    decided = {}

    def tf1_import(name, globals=None, locals=None, fromlist=(), level=0):
        if name == 'tensorflow' and level == 0 and globals is not None:
            path = globals.get('__file__')
            user = decided.get(path)
            if user is None:
                user = decided.setdefault(path, is_user_file(path, roots))
            if user:
                original(name, globals, locals, fromlist, level)
                return view
        return original(name, globals, locals, fromlist, level)

    _ORIGINAL_IMPORT = original
    builtins.__import__ = tf1_import
    return view


def uninstall():
    """Restores the original `__import__`."""
    global _ORIGINAL_IMPORT
    if _ORIGINAL_IMPORT is not None:
        builtins.__import__ = _ORIGINAL_IMPORT
        _ORIGINAL_IMPORT = None
