"""Documented NKI names Tessera does not provide yet: present, so imports succeed, and
refused at the first use with a `KernelUsageError` at the kernel's file:line.

A kernel file that imports a missing name fails before a single test runs, and an
`AttributeError` from deep inside a library says nothing about why. A `Refused` placeholder
keeps the import working and turns every use (a call, an attribute, an index, a subclass,
passing it where a dtype is expected) into one error that names the API and the reason, and
points at docs/nki_coverage.md, which lists every refusal (`tessera.nki.coverage`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tessera.nki.errors import KernelUsageError

DOC = "docs/nki_coverage.md"


def refusal_message(qualname: str, reason: str) -> str:
    """The one-line message a refused name raises (also the `error` of its coverage row)."""
    return f"{qualname}: not implemented in Tessera yet ({reason}); see {DOC}"


def raise_refusal(qualname: str, reason: str) -> None:
    """Raise the refusal of `qualname` located at the kernel line that used it."""
    # imported here: the runtime imports modules that hold refusals (no import cycle)
    from tessera.nki.runtime import kernel_location

    raise KernelUsageError(refusal_message(qualname, reason), location=str(kernel_location()))


@dataclass(frozen=True, eq=False, repr=False)
class Refused:
    """Stands for the documented name `qualname` (e.g. `nisa.nc_matmul_mx`); any use raises.

    Calls, attribute reads, indexing (`nl.mgrid[...]`) and subclassing (`class C(nisa.X)`)
    raise; `isinstance(x, refused)` is False (no such object exists here); passing it as a
    dtype raises when the dtype is read.
    """

    qualname: str
    reason: str

    @property
    def message(self) -> str:
        """The error text users get."""
        return refusal_message(self.qualname, self.reason)

    def refuse(self) -> None:
        """Raise this name's refusal at the caller's kernel line."""
        raise_refusal(self.qualname, self.reason)

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.refuse()
        return None

    def __getattr__(self, attr: str) -> object:
        # private and dunder probes (copy, pickle, pytest, numpy's protocol checks that
        # start with "_") must see a plain missing attribute, not a refusal
        if attr.startswith("_"):
            raise AttributeError(attr)
        self.refuse()
        return None

    def __getitem__(self, key: object) -> object:
        self.refuse()
        return None

    def __mro_entries__(self, bases: tuple) -> tuple:
        self.refuse()
        return ()

    def __instancecheck__(self, obj: object) -> bool:
        return False

    def __subclasscheck__(self, cls: object) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<{self.qualname}: not implemented in Tessera yet>"


def refused_property(qualname: str, reason: str) -> property:
    """A class attribute whose read raises the refusal of `qualname` (for fields such as
    `nl.tile_size.psum_min_align`)."""
    def read(_self: object) -> object:
        raise_refusal(qualname, reason)
        return None

    return property(read, doc=refusal_message(qualname, reason))
