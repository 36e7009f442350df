"""What a decoded JSON value may not hold, whatever its kind: non-finite numbers, strings
that cannot be UTF-8 (a lone surrogate), nesting beyond a depth. Part of the wire contract's
checks (stream/contract.py), before the schema's.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["bad_string", "plainly_flat", "structure_problems", "walk_problems"]


def bad_string(text: str) -> bool:
    """True when ``text`` cannot be encoded as UTF-8 (a lone surrogate from ``\\ud800``)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def structure_problems(value: Any, max_depth: int) -> list[tuple[str, str]]:
    """Non-finite numbers, unencodable strings and nesting beyond ``max_depth``.

    Iterative, with an explicit stack: a recursive walk overflowed Python's stack on JSON
    nested a few hundred deep, which ``json.loads`` accepts.
    """
    return [] if plainly_flat(value, min(2, max_depth)) else walk_problems(value, max_depth)


def walk_problems(value: Any, max_depth: int) -> list[tuple[str, str]]:
    """Every problem, each as ``(reason class, message)``, found by walking the whole value."""
    problems: list[tuple[str, str]] = []
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    too_deep = False
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                problems.append(("non_finite", f"{path or 'value'} is {item} (numbers must be finite)"))
        elif isinstance(item, str):
            if bad_string(item):
                problems.append(("invalid_string", f"{path or 'value'} is not valid Unicode "
                                 "(a lone surrogate such as \\ud800 cannot be UTF-8)"))
        elif isinstance(item, (dict, list)):
            if depth > max_depth:
                if not too_deep:
                    problems.append(("too_deep", f"{path or 'record'}: JSON is nested deeper than "
                                     f"{max_depth} levels"))
                too_deep = True
                continue
            if isinstance(item, dict):
                for k, v in item.items():
                    child = f"{path}.{k}" if path else str(k)
                    if bad_string(k):
                        problems.append(("invalid_string", f"a key under {path or 'record'} is "
                                         "not valid Unicode (a lone surrogate)"))
                        child = f"{path}.<invalid key>"
                    stack.append((v, child, depth + 1))
            else:
                for i, v in enumerate(item):
                    stack.append((v, f"{path}[{i}]", depth + 1))
    return problems


def plainly_flat(value: Any, max_depth: int = 2) -> bool:
    """True for an object of ASCII keys and strings and finite numbers, with objects of the
    same one level down (a transaction's ``features``): every record a producer sends, which
    thus skips the walk (~1.5 us of its ~10 us of validation). Anything else takes the walk,
    which finds and words the problems."""
    if not isinstance(value, dict) or max_depth < 1:
        return False
    for k, v in value.items():
        if not k.isascii():
            return False
        t = type(v)
        if t is str:
            if not v.isascii():
                return False
        elif t is float:
            if v - v != 0.0:  # inf - inf and nan - nan are nan: a non-finite number
                return False
        elif t is dict:
            if not plainly_flat(v, max_depth - 1):
                return False
        elif t is not int and t is not bool and v is not None:
            return False
    return True
