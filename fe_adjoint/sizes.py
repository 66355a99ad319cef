"""Byte counts read from text ("4GiB", "500 MB") and written for people ("1.5 MiB")."""

from __future__ import annotations

import re

from .errors import ConfigurationError

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20,
          "gib": 2**30, "tib": 2**40}


def parse_bytes(text) -> int:
    """Bytes in ``text``: an int, or a number with a unit (``"4GiB"``, ``"500 MB"``)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0:
            raise ConfigurationError(f"a byte budget cannot be negative; got {text}")
        return int(text)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match and match.group(2).lower()
    if match is None or unit not in _UNITS:
        raise ConfigurationError(
            f"cannot read {text!r} as a size; write a number of bytes or one with a unit "
            "such as 512MiB, 4GiB or 100GB")
    return int(float(match.group(1)) * _UNITS[unit])


def format_bytes(nbytes: float) -> str:
    """``nbytes`` in the largest binary unit it reaches ("inf" from 2**61 bytes)."""
    if nbytes >= 2**61:
        return "inf"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{int(nbytes)} B"
