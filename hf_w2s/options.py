"""Plain checks that options classes call from their ``__post_init__`` (as PEFT's and TRL's configs do): a number of
the right kind, finite and within its range; a word among its choices. Each raises ``ValueError`` naming the option,
the value and what it must be (docs/bad_input.md, rows not-finite, wrong-type and the range rows).

A class declares its numeric ranges next to its fields, ``RANGES = {name: (low, high, closed)}``: ``low < value <=
high`` (``low <= value`` when ``closed``; ``None`` unbounded); an integer ``low`` makes the option an integer.
:func:`check_ranges` checks them all (each element of a list option too).
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_number", "check_ranges", "check_choice", "check_finite_numbers"]


def _kind(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_number(name: str, value, low=None, high=None, *, closed: bool = True, integer: bool = False) -> None:
    """``value`` is a number (an integer if ``integer``; never a boolean), finite, and within ``(low, high]``
    (``[low, high]`` when ``closed``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}, got {_kind(value)}.")
    if integer and not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {_kind(value)}.")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}.")
    ok_low = low is None or (value >= low if closed else value > low)
    if ok_low and (high is None or value <= high):
        return
    if low is not None and high is not None:
        raise ValueError(f"{name} must be within {'[' if closed else '('}{low:g}, {high:g}], got {value}.")
    raise ValueError(f"{name} must be {'>=' if closed else '>'} {low:g}, got {value}.")


def _is_list_option(options, name: str) -> bool:
    """Whether the dataclass field ``name`` of ``options`` is declared as a list (``list[int]``, ``list | None``)."""
    import dataclasses

    field = next((f for f in dataclasses.fields(options) if f.name == name), None)
    return field is not None and "list" in str(field.type).lower()


def check_ranges(options, ranges: dict | None = None, where: str = "") -> None:
    """Every option named in ``ranges`` (default: the class's ``RANGES``) that is set: :func:`check_number`, each
    element of a list option (a list where one number is expected is an error)."""
    for name, (low, high, closed) in (type(options).RANGES if ranges is None else ranges).items():
        value = getattr(options, name)
        if value is None:
            continue
        integer = isinstance(low, int) and not isinstance(low, bool)
        if isinstance(value, (list, tuple)) and _is_list_option(options, name):
            for i, item in enumerate(value):
                check_number(f"{where}{name}[{i}]", item, low, high, closed=closed, integer=integer)
        else:
            check_number(where + name, value, low, high, closed=closed, integer=integer)


def check_finite_numbers(options, names, where: str = "") -> None:
    """The options ``names`` whose defaults are numbers hold numbers, finite (a library's own fields: their ranges
    are the library's business, not ours)."""
    import dataclasses

    for f in dataclasses.fields(options):
        if f.name not in names or isinstance(f.default, bool) or not isinstance(f.default, (int, float)):
            continue
        value = getattr(options, f.name)
        if value is not None:
            check_number(where + f.name, value, integer=isinstance(f.default, int) and not isinstance(value, float))


def check_choice(name: str, value, choices) -> None:
    """``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.")
