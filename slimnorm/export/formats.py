"""The export formats and the optional packages each needs (no TensorFlow here).

`frozen` and `saved_model` are TensorFlow's own; `tflite` needs the
`ai-edge-litert` interpreter to check what it wrote, `onnx` needs `tf2onnx`
and `onnxruntime`. Those come with pip extras, so that `import slimnorm`
never needs them; `missing_extra` names the extra to install, checked
before TensorFlow loads.
"""
import importlib.util

OUTPUT_FORMATS = ('frozen', 'saved_model', 'tflite', 'onnx')
# The ONNX opset tf2onnx writes unless --onnx_opset says otherwise
# (onnxruntime 1.32 runs opsets 7 to 23).
DEFAULT_ONNX_OPSET = 17
ONNX_OPSETS = range(13, 19)  # what tf2onnx 1.17 converts to and this project tests

# format -> (modules it imports, pip extra of setup.py)
EXTRAS = {
    'tflite': (('ai_edge_litert',), 'tflite'),
    'onnx': (('tf2onnx', 'onnxruntime'), 'onnx'),
}


def _importable(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules
        return False


def missing_extra(output_format):
    """One line naming the pip extra to install, or None when nothing is missing."""
    modules, extra = EXTRAS.get(output_format, ((), None))
    missing = [module for module in modules if not _importable(module)]
    if not missing:
        return None
    return (f'output_format={output_format} needs {", ".join(missing)}, which is not '
            f"installed; install it with: pip install 'slimnorm[{extra}]'")


def require(output_format):
    """Raises ImportError with `missing_extra`'s line when a package is missing."""
    line = missing_extra(output_format)
    if line:
        raise ImportError(line)


FAKE_QUANT_OPS = ('FakeQuantWithMinMaxVars', 'FakeQuantWithMinMaxVarsPerChannel',
                  'FakeQuantWithMinMaxArgs')


def has_fake_quant(graph_def):
    """Whether a GraphDef was made for quantization-aware training (FakeQuant ops)."""
    return any(node.op in FAKE_QUANT_OPS for node in graph_def.node)
