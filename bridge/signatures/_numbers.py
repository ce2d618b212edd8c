"""Numbers in model text: the one reader that turns a written number into an ``int`` or a ``float``,
used for every field of every prompt format (a token of prose, a JSON number, a value checked
against a field's type).

A number is read only as exactly what the text states:

* ``read_int`` reads decimal notation exactly (``decimal.Decimal``, never through a float), so
  ``-7.194179821876166e+16`` is ``-71941798218761660`` and ``1e3`` is ``1000``, while
  ``3.0000000000000001`` and ``2.5`` state no integer and are refused. An integer longer than
  Python's int-string limit (``sys.get_int_max_str_digits()``, 4,300 digits by default) is refused:
  it could not be written back as text.
* ``read_float`` reads the nearest float, and refuses what no float holds: a number too large
  (which would be ``inf``) or a non-zero number too small (which would be ``0.0``).
* ``as_float`` is the float of an ``int`` already read (a JSON ``1`` for a float field), refused
  when it is too large for a float.

Each raises ``ValueError`` saying why; callers turn it into a ``ParseError`` naming the field.
"""

from __future__ import annotations

import math
import sys
from decimal import Decimal, InvalidOperation

_DEFAULT_LIMIT = 4300  # Python's default int-string limit, used where the interpreter sets none


def _digit_limit() -> int:
    getter = getattr(sys, "get_int_max_str_digits", None)
    limit = int(getter()) if getter is not None else 0
    return limit if limit > 0 else _DEFAULT_LIMIT


def _decimal(token: str) -> Decimal:
    try:
        value = Decimal(token)
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"{token[:40]!r} is not a number in a form that can be read") from exc
    if not value.is_finite():
        raise ValueError(f"{token[:40]!r} is not a finite number")
    return value


def read_int(token: str) -> int:
    """The integer ``token`` states exactly (decimal, optional sign, fraction and exponent)."""
    value = _decimal(token)
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: checked above
    if exponent < 0:
        fraction = digits[exponent:] if -exponent <= len(digits) else digits
        if any(fraction):
            raise ValueError(f"{token[:40]!r} is not an integer")
        digits, exponent = digits[:exponent] or (0,), 0
    significant = len(digits) + exponent if any(digits) else 1
    if significant > _digit_limit():
        raise ValueError(f"an integer of {significant} digits is longer than can be read ({_digit_limit()})")
    return int(value)


def read_float(token: str) -> float:
    """The float nearest to the number ``token`` states; refused when no float holds it."""
    value = _decimal(token)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{token[:40]!r} is too large for a float")
    if number == 0.0 and value != 0:
        raise ValueError(f"{token[:40]!r} is too small for a float (it would read as 0)")
    return number


def as_float(value: int | float) -> float:
    """``value`` as a float, refused when it is not finite or too large for one."""
    try:
        number = float(value)
    except OverflowError as exc:
        raise ValueError("the number is too large for a float") from exc
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number
