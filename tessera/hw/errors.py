"""Exceptions raised by the hardware catalogue.

Every error names what the user must fix: the preset file and the key path inside it, the
unknown preset name together with the names that exist, or the override path that does not
resolve. Callers that want to catch everything from this layer catch `HwError`.
"""

from __future__ import annotations


class HwError(Exception):
    """Base class of every error raised by `tessera.hw`."""


class PresetError(HwError, ValueError):
    """A preset file is malformed or fails a plausibility check.

    `file` is the YAML path (or a label such as ``<override of trn1>``) and `key_path` the
    dotted path of the offending key inside it; both appear in the message.
    """

    def __init__(self, file: str, key_path: str, message: str) -> None:
        self.file = file
        self.key_path = key_path
        self.detail = message
        where = f"{file}: {key_path}" if key_path else file
        super().__init__(f"{where}: {message}")


class UnknownPresetError(HwError, LookupError):
    """No preset of the requested kind has the requested name (or alias)."""

    def __init__(self, kind: str, name: str, available: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.available = available
        super().__init__(
            f"unknown {kind} preset {name!r}; available: {', '.join(available) or '(none)'}"
        )

    def __str__(self) -> str:
        # LookupError would otherwise quote the message like a dict key.
        return str(self.args[0])


class OverrideError(HwError, ValueError):
    """An override path does not name a field, or its value cannot be converted."""


class UnsupportedPrecisionError(HwError, LookupError):
    """The hardware publishes no peak rate for the requested precision."""

    def __str__(self) -> str:
        return str(self.args[0])


class LncError(HwError, ValueError):
    """A logical-NeuronCore size that the chip does not allow."""


class CalibrationError(HwError, ValueError):
    """A model-calibration file (the timing model's or the collective model's) is malformed,
    lacks a constant, or an override names a constant that does not exist."""

