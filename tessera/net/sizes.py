"""Parse and format message sizes: "64MiB", "1GB", "4096", "1.5 KiB"."""

from __future__ import annotations

import re

from tessera.net.errors import SizeError

# Binary prefixes (KiB) are powers of 1024; decimal ones (KB) powers of 1000, as nccom-test
# and nccl-tests print them. A bare K/M/G is read as binary, the way `-b 64M` is meant.
_FACTORS: dict[str, int] = {
    "": 1, "b": 1,
    "k": 2**10, "kib": 2**10, "kb": 10**3,
    "m": 2**20, "mib": 2**20, "mb": 10**6,
    "g": 2**30, "gib": 2**30, "gb": 10**9,
    "t": 2**40, "tib": 2**40, "tb": 10**12,
}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_bytes(text: str | int) -> int:
    """Byte count of `text`: an int, or a number with an optional unit (KiB, MB, G, ...).

    Raises `SizeError` for anything that is not a positive whole number of bytes.
    """
    if isinstance(text, bool):
        raise SizeError(f"size must be a byte count, not {text!r}")
    if isinstance(text, int):
        value = float(text)
    else:
        match = _PATTERN.match(str(text))
        if not match:
            raise SizeError(f"cannot read size {text!r}; write e.g. 4096, 64MiB, 1GB or 1.5KiB")
        unit = match.group(2).lower()
        if unit not in _FACTORS:
            raise SizeError(f"unknown size unit {match.group(2)!r} in {text!r}; use B, KiB, MiB, "
                            "GiB, TiB (binary) or KB, MB, GB, TB (decimal)")
        value = float(match.group(1)) * _FACTORS[unit]
    if value <= 0 or value != int(value):
        raise SizeError(f"size {text!r} must be a positive whole number of bytes")
    return int(value)


def format_bytes(n_bytes: float) -> str:
    """Binary-prefixed rendering: 67108864 -> '64 MiB', 1536 -> '1.5 KiB'."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= factor:
            return f"{n_bytes / factor:.4g} {unit}"
    return f"{n_bytes:.0f} B"
