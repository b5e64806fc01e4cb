"""`nl.NKIObject`: the base class of kernel-side classes (configs, tensors, registers).

The NKI compiler accepts instances of user classes inside a kernel only when they derive
from `NKIObject`, so library kernels declare their compile-time config objects as
`@dataclass class Config(nl.NKIObject)` and pass them around. Kernels run as Python here,
so the class only has to exist, be subclassable (dataclasses included) and keep instances
ordinary Python objects: `dataclasses.asdict`, `replace`, equality and hashing behave as
the subclass defines them.
"""

from __future__ import annotations

from tessera.nki.errors import KernelUsageError


class NKIObject:
    """Base class for NKI kernel dataclasses and configuration objects.

    `NKIObject(**fields)` sets each keyword as an attribute (the documented signature);
    subclasses usually are dataclasses, whose generated `__init__` replaces this one.
    """

    # empty slots: NkiTensor derives from this class and keeps its own __slots__
    __slots__ = ()

    def __init__(self, **kwargs: object) -> None:
        for key, value in kwargs.items():
            try:
                setattr(self, key, value)
            except AttributeError:
                raise KernelUsageError(
                    f"nl.NKIObject: cannot set field {key!r} on {type(self).__name__}; "
                    "subclass NKIObject (for example as a dataclass) to hold fields") from None
