"""Element-wise operators of `nki.language`, usable as calls and as `op=` codes.

Each operator is one `AluOp` value, plain data: its numpy rule (on float32, or on integers
for bit operations) is defined once and used by every instruction that accepts `op=`.
`nl.exp`, `nl.add`, ... are the callable faces of these values (`tessera.nki.calls`): called
on NKI tensors inside a kernel they issue the matching instruction, on numbers or numpy
arrays they compute on the host, and passed as `op=` they stand for their `AluOp`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from tessera.nki.errors import KernelUsageError


class OpKind(Enum):
    """Operator families; instruction rules (allowed engines, dtypes) are stated per family."""

    ARITH = "arith"
    COMPARE = "compare"
    LOGICAL = "logical"
    BITVEC = "bitvec"
    ACTIVATION = "activation"


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 has 1.5e-7 absolute error: below float32 resolution.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (
        -1.453152027 + t * 1.061405429))))
    return (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _gelu(x: np.ndarray) -> np.ndarray:
    return (0.5 * x * (1.0 + _erf(x / np.float32(np.sqrt(2.0))))).astype(np.float32)


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    c = np.float32(np.sqrt(2.0 / np.pi))
    return (0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x * x * x)))).astype(np.float32)


def _gelu_sigmoid(x: np.ndarray) -> np.ndarray:
    return (x * _sigmoid(np.float32(1.702) * x)).astype(np.float32)


def _gelu_dx(x: np.ndarray) -> np.ndarray:
    pdf = np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)
    return (0.5 * (1.0 + _erf(x / np.float32(np.sqrt(2.0)))) + x * pdf).astype(np.float32)


def _gelu_sigmoid_dx(x: np.ndarray) -> np.ndarray:
    # d/dx [x * sigmoid(1.702 x)]
    s = _sigmoid(np.float32(1.702) * x)
    return (s + np.float32(1.702) * x * s * (1.0 - s)).astype(np.float32)


def _erf_dx(x: np.ndarray) -> np.ndarray:
    return (np.float32(2.0 / np.sqrt(np.pi)) * np.exp(-x * x)).astype(np.float32)


def _silu_dx(x: np.ndarray) -> np.ndarray:
    s = _sigmoid(x)
    return (s * (1.0 + x * (1.0 - s))).astype(np.float32)


@dataclass(frozen=True)
class AluOp:
    """One element-wise operator: name, arity, family and numpy rule."""

    name: str
    arity: int
    kind: OpKind
    rule: Callable[..., np.ndarray] = field(compare=False, repr=False)
    # identity for reductions that use this operator (None when it cannot reduce)
    identity: float | None = None

    def apply(self, *args: np.ndarray) -> np.ndarray:
        """Evaluate on float32 arrays (int64 for BITVEC); returns float32 (int64 for BITVEC)."""
        if self.kind is OpKind.BITVEC:
            ints = [np.asarray(a).astype(np.int64) for a in args]
            return np.asarray(self.rule(*ints)).astype(np.int64)
        # launches run under np.errstate(all='ignore'): inf/NaN results are the hardware's too
        out = np.asarray(self.rule(*[np.asarray(a, dtype=np.float32) for a in args]))
        return out.astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"nl.{self.name}"


def _op(name: str, arity: int, kind: OpKind, rule: Callable[..., np.ndarray],
        identity: float | None = None) -> AluOp:
    return AluOp(name, arity, kind, rule, identity)


A, C, L, B, ACT = OpKind.ARITH, OpKind.COMPARE, OpKind.LOGICAL, OpKind.BITVEC, OpKind.ACTIVATION
_f = np.float32

add = _op("add", 2, A, np.add, 0.0)
subtract = _op("subtract", 2, A, np.subtract)
multiply = _op("multiply", 2, A, np.multiply, 1.0)
divide = _op("divide", 2, A, np.divide)
maximum = _op("maximum", 2, A, np.maximum, -np.inf)
minimum = _op("minimum", 2, A, np.minimum, np.inf)
power = _op("power", 2, A, np.power)
# nl.mod is Python's x % y (sign of the divisor); nl.fmod keeps the sign of the dividend
mod = _op("mod", 2, A, np.mod)
fmod = _op("fmod", 2, A, np.fmod)
abs_max = _op("abs_max", 2, A, lambda a, b: np.maximum(np.abs(a), np.abs(b)), 0.0)
abs_min = _op("abs_min", 2, A, lambda a, b: np.minimum(np.abs(a), np.abs(b)))
equal = _op("equal", 2, C, lambda a, b: (a == b).astype(_f))
not_equal = _op("not_equal", 2, C, lambda a, b: (a != b).astype(_f))
less = _op("less", 2, C, lambda a, b: (a < b).astype(_f))
less_equal = _op("less_equal", 2, C, lambda a, b: (a <= b).astype(_f))
greater = _op("greater", 2, C, lambda a, b: (a > b).astype(_f))
greater_equal = _op("greater_equal", 2, C, lambda a, b: (a >= b).astype(_f))
logical_and = _op("logical_and", 2, L, lambda a, b: np.logical_and(a, b).astype(_f), 1.0)
logical_or = _op("logical_or", 2, L, lambda a, b: np.logical_or(a, b).astype(_f), 0.0)
logical_xor = _op("logical_xor", 2, L, lambda a, b: np.logical_xor(a, b).astype(_f), 0.0)
logical_not = _op("logical_not", 1, L, lambda a: np.logical_not(a).astype(_f))
bitwise_and = _op("bitwise_and", 2, B, np.bitwise_and, -1)
bitwise_or = _op("bitwise_or", 2, B, np.bitwise_or, 0)
bitwise_xor = _op("bitwise_xor", 2, B, np.bitwise_xor, 0)
invert = _op("invert", 1, B, np.invert)
left_shift = _op("left_shift", 2, B, np.left_shift)
right_shift = _op("right_shift", 2, B, np.right_shift)

copy = _op("copy", 1, ACT, lambda x: x)
identity = copy
exp = _op("exp", 1, ACT, np.exp)
log = _op("log", 1, ACT, np.log)
sqrt = _op("sqrt", 1, ACT, np.sqrt)
rsqrt = _op("rsqrt", 1, ACT, lambda x: 1.0 / np.sqrt(x))
square = _op("square", 1, ACT, np.square)
abs = _op("abs", 1, ACT, np.abs)  # noqa: A001 - NKI's name
reciprocal = _op("reciprocal", 1, ACT, lambda x: 1.0 / x)
negative = _op("negative", 1, ACT, np.negative)
sign = _op("sign", 1, ACT, np.sign)
floor = _op("floor", 1, ACT, np.floor)
ceil = _op("ceil", 1, ACT, np.ceil)
sigmoid = _op("sigmoid", 1, ACT, _sigmoid)
tanh = _op("tanh", 1, ACT, np.tanh)
relu = _op("relu", 1, ACT, lambda x: np.maximum(x, 0.0))
silu = _op("silu", 1, ACT, lambda x: x * _sigmoid(x))
silu_dx = _op("silu_dx", 1, ACT, _silu_dx)
gelu = _op("gelu", 1, ACT, _gelu)
gelu_dx = _op("gelu_dx", 1, ACT, _gelu_dx)
gelu_apprx_tanh = _op("gelu_apprx_tanh", 1, ACT, _gelu_tanh)
gelu_apprx_sigmoid = _op("gelu_apprx_sigmoid", 1, ACT, _gelu_sigmoid)
gelu_apprx_sigmoid_dx = _op("gelu_apprx_sigmoid_dx", 1, ACT, _gelu_sigmoid_dx)
erf = _op("erf", 1, ACT, _erf)
erf_dx = _op("erf_dx", 1, ACT, _erf_dx)
softplus = _op("softplus", 1, ACT, lambda x: np.logaddexp(0.0, x))
mish = _op("mish", 1, ACT, lambda x: x * np.tanh(np.logaddexp(0.0, x)))
sin = _op("sin", 1, ACT, np.sin)
cos = _op("cos", 1, ACT, np.cos)
tan = _op("tan", 1, ACT, np.tan)
trunc = _op("trunc", 1, ACT, np.trunc)
arctan = _op("arctan", 1, ACT, np.arctan)

ALL_OPS: dict[str, AluOp] = {
    o.name: o for o in list(globals().values()) if isinstance(o, AluOp)
}

# numpy ufuncs accepted in place of the NKI operator (Beta-1 kernels pass np.add etc.)
_NUMPY_ALIASES: dict[object, AluOp] = {
    np.add: add, np.subtract: subtract, np.multiply: multiply, np.divide: divide,
    np.maximum: maximum, np.minimum: minimum, np.max: maximum, np.min: minimum,
    np.equal: equal, np.less: less, np.greater: greater, np.exp: exp, np.sqrt: sqrt,
    np.bitwise_and: bitwise_and, np.right_shift: right_shift, np.power: power,
}


# the callable nl.* functions (`tessera.nki.calls`) -> the operator each stands for
_CALLABLES: dict[object, AluOp] = {}


def register_callable(fn: object, op: AluOp) -> None:
    """Make `fn` (the callable `nl.<name>`) stand for `op` in `op=` arguments."""
    _CALLABLES[fn] = op


def to_op(value: object, what: str = "op") -> AluOp:
    """Normalise an `op=` argument (an nl operator, numpy ufunc or name) to an `AluOp`."""
    if isinstance(value, AluOp):
        return value
    called = _CALLABLES.get(value)  # type: ignore[arg-type]
    if called is not None:
        return called
    if isinstance(value, str) and value in ALL_OPS:
        return ALL_OPS[value]
    found = _NUMPY_ALIASES.get(value)  # type: ignore[arg-type]
    if found is not None:
        return found
    raise KernelUsageError(f"{what}={value!r} is not an NKI operator; use one of nl.add, "
                           "nl.multiply, nl.exp, ... (see nki.language)")
