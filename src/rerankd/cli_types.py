"""The number types command-line options take: one clear argparse error for a bad value.

Shared by `rerankd serve/score/bench` (cli.py), `rerankd eval` and `rerankd finetune`, so every
command words the same mistake the same way.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _number(text: str, convert: Callable[[str], float], expected: str) -> float:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def _refuse(rule: str, value: float) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{rule}, got {value}")


def positive_int(text: str) -> int:
    value = int(_number(text, int, "a whole number"))
    if value < 1:
        raise _refuse("must be at least 1", value)
    return value


def positive_float(text: str) -> float:
    value = _number(text, float, "a number")
    if value <= 0:
        raise _refuse("must be above 0", value)
    return value


def seconds(text: str) -> float:
    value = _number(text, float, "seconds")
    if value < 0:
        raise _refuse("must not be negative", value)
    return value


def fraction(text: str) -> float:
    """A share in [0, 1): 1 would leave nothing on the other side of a split."""
    value = _number(text, float, "a fraction")
    if not 0 <= value < 1:
        raise _refuse("must be in [0, 1)", value)
    return value
