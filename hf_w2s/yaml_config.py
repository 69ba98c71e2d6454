"""Reading YAML configs and applying ``--key value`` overrides: the one YAML reader of hf_w2s (the scripts' parser
and the experiment harness use it)."""

from __future__ import annotations

import re

import yaml

__all__ = ["yaml_load", "read_yaml", "apply_overrides"]


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def yaml_load(text):
    """``yaml.safe_load`` that reads ``1e-3`` as a float."""
    return yaml.load(text, Loader=_Loader)


def read_yaml(path) -> dict:
    """The mapping in the YAML file ``path``. A missing file, a syntax error (with its line and column) or a file that
    is not a mapping is a ``ValueError`` that names the file."""
    try:
        with open(path) as f:
            data = yaml_load(f)
    except OSError as err:
        raise ValueError(f"cannot read the config file {str(path)!r}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"the config file {str(path)!r} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"the config file {str(path)!r} must hold a mapping of option: value, got "
                         f"{type(data).__name__}")
    return data


def _parse_value(text: str):
    try:
        return yaml_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``--key value`` / ``--key=value`` pairs (YAML-parsed values, dotted keys for nested mappings, numbers for
    list entries: ``--weak_supervisors.0.epochs 1``)."""
    data = dict(data)
    i = 0
    while i < len(overrides):
        token = overrides[i]
        if not token.startswith("--"):
            raise ValueError(f"expected an option --key value, got {token!r}")
        key, eq, value = token[2:].partition("=")
        if not eq:
            if i + 1 >= len(overrides) or overrides[i + 1].startswith("--"):
                raise ValueError(f"option --{key} needs a value")
            value = overrides[i + 1]
            i += 1
        i += 1
        parts = key.replace("-", "_").split(".")
        node = data
        for depth, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[: depth + 1]))
        _set(node, parts[-1], _parse_value(value), key)
    return data


def _child(node, part: str, where: str):
    """The (copied) mapping at ``node[part]``; a list entry when ``part`` is an index (``weak_supervisors.0``)."""
    if isinstance(node, list):
        index = _index(node, part, where)
        node[index] = dict(node[index]) if isinstance(node[index], dict) else {}
        return node[index]
    child = node.get(part)
    node[part] = dict(child) if isinstance(child, dict) else list(child) if isinstance(child, list) else {}
    return node[part]


def _set(node, part: str, value, where: str) -> None:
    if isinstance(node, list):
        node[_index(node, part, where)] = value
    else:
        node[part] = value


def _index(node: list, part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ValueError(f"--{where}: {part!r} is not an index of that list (0..{len(node) - 1})")
    return int(part)
