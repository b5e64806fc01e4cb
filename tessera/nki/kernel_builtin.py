"""`builtin`: the global name the vendor's kernel tracer gives kernel code.

Kernels of the vendor's library call `builtin.lang.shared_constant(path)` and
`builtin.lang.identity(n, dtype)` without importing anything: the NKI tracer provides the
name `builtin` to the code it traces (no reference page documents it). `compat.install()`
makes the same name visible to kernel code on the CPU (as a Python builtin, only while the
aliases are installed): `lang.shared_constant` is `nl.shared_constant` and `lang.identity`
is `nki.tensor.identity`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tessera.nki.creation import shared_constant as _shared_constant
from tessera.nki.ntensor import identity as _identity


@dataclass(frozen=True)
class _Lang:
    """`builtin.lang`: the language names kernels reach through `builtin`."""

    shared_constant: object = staticmethod(_shared_constant)
    identity: object = staticmethod(_identity)


lang = _Lang()

__all__ = ["lang"]
