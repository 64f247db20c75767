"""`HParams`: the part of `tf.contrib.training.HParams` that research/slim uses.

research/slim's nasnet and pnasnet build their configurations with
`contrib_training.HParams(stem_multiplier=3.0, ...)`, read them as
attributes and change them with `set_hparam`; nets_factory imports those
networks, so every research/slim script needs the class. Behaviour kept
from contrib: each hyperparameter has the type of its first value (an int
may be set where a float was, not the reverse unless it is integral; a list
keeps its element type), unknown names are errors, and `parse` reads
"a=1,b=[2,3],c=x" with those types.
"""
import copy
import json
import re

_ASSIGNMENT = re.compile(r'\s*(\w+)\s*=\s*(\[[^\]]*\]|[^,]*)\s*(?:,|$)')


def _cast(name, value, kind):
    """`value` as `kind` (bool, int, float, str), as contrib's rules allow."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ('true', 'false', '1', '0'):
            return value.lower() in ('true', '1')
    elif kind is int:
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and \
                float(value).is_integer():
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise ValueError(f'Could not cast hparam {name!r} of type {kind.__name__} from value '
                     f'{value!r}')


class HParams:
    """Named hyperparameters with fixed types (contrib.training.HParams).

        hparams = HParams(learning_rate=0.1, num_layers=4, data_format='NHWC')
        hparams.num_layers                # 4
        hparams.set_hparam('num_layers', 6)
        hparams.parse('learning_rate=0.3,data_format=NCHW')
        hparams.values()                  # a dict copy
    """

    def __init__(self, hparam_def=None, model_structure=None, **kwargs):
        if hparam_def is not None:
            raise ValueError('hparam_def (a protocol buffer) is not supported by this '
                             'stand-in; pass the values as keyword arguments')
        self._hparam_types = {}
        self._model_structure = model_structure
        for name, value in kwargs.items():
            self.add_hparam(name, value)

    def add_hparam(self, name, value):
        """Adds `name` with `value`; its type is fixed from now on."""
        if name in self._hparam_types or hasattr(self, name):
            raise ValueError(f'Hyperparameter name is reserved: {name}')
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError(f'Multi-valued hyperparameters cannot be empty: {name}')
            self._hparam_types[name] = (type(value[0]), True)
        else:
            self._hparam_types[name] = (type(value), False)
        setattr(self, name, value)

    def set_hparam(self, name, value):
        """Sets an existing hyperparameter, cast to its type."""
        if name not in self._hparam_types:
            raise KeyError(name)  # contrib raises the dict's KeyError too
        kind, is_list = self._hparam_types[name]
        if is_list:
            if not isinstance(value, (list, tuple)):
                raise ValueError(f'Must not pass a scalar value to set hparam {name!r}, '
                                 'which holds a list')
            setattr(self, name, [_cast(name, v, kind) for v in value])
        else:
            if isinstance(value, (list, tuple)):
                raise ValueError(f'Must not pass a list to set hparam {name!r}, which holds '
                                 'a single value')
            setattr(self, name, _cast(name, value, kind) if value is not None else None)

    def del_hparam(self, name):
        if name in self._hparam_types:
            delattr(self, name)
            del self._hparam_types[name]

    def parse(self, values):
        """Sets hyperparameters from "name=value,name=[v1,v2],..."; returns self."""
        position, text = 0, values.strip()
        while position < len(text):
            match = _ASSIGNMENT.match(text, position)
            if not match or match.end() == position:
                raise ValueError(f'Could not parse hparam values: {text[position:]!r}')
            name, raw = match.group(1), match.group(2).strip()
            if name not in self._hparam_types:
                raise ValueError(f'Unknown hyperparameter type for {name}')
            if raw.startswith('['):
                items = [item.strip() for item in raw[1:-1].split(',') if item.strip()]
                self.set_hparam(name, items)
            else:
                self.set_hparam(name, raw)
            position = match.end()
        return self

    def override_from_dict(self, values_dict):
        for name, value in values_dict.items():
            self.set_hparam(name, value)
        return self

    def values(self):
        """A dict of every hyperparameter and its value."""
        return {name: getattr(self, name) for name in self._hparam_types}

    def get(self, key, default=None):
        return getattr(self, key) if key in self._hparam_types else default

    def to_json(self, indent=None, separators=None, sort_keys=False):
        return json.dumps(self.values(), indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def __contains__(self, key):
        return key in self._hparam_types

    def __deepcopy__(self, memo):
        return HParams(model_structure=self._model_structure,
                       **copy.deepcopy(self.values(), memo))

    def __str__(self):
        return str(sorted(self.values().items()))

    def __repr__(self):
        return f'HParams({self.values()!r})'
