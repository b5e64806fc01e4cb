"""Kernel files: Python files holding `@nki.jit` kernels plus `example_inputs` and `reference`.

A kernel file is written like a real NKI kernel file. Next to its kernels it defines
`example_inputs()` (a tuple of host arrays) and `reference(*inputs)` (the expected output,
computed with numpy). A file with several kernels that differ in inputs or results defines
`example_inputs_<kernel>()` / `reference_<kernel>(*inputs)` for the ones that differ; the
plain names serve the rest. This module loads such a file by path, runs one of its kernels
on its example inputs (optionally resized: `--shape NAME=AxB`) and compares the result with
the reference; `tessera kernel run` prints it.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki.launch import Kernel, TensorSpec, TraceResult, trace
from tessera.nki.runtime import core_limits, default_chip
from tessera.nki.stream import Instruction

SPEC_SEPARATOR = "::"
# Relative error allowed per mantissa bit lost: 2.5 ulps of the output dtype, so bf16
# (7 bits) gets 2e-2 and fp16/tf32 2.4e-3; float32 is held to the 1e-4 floor, which
# leaves room for a different summation order than numpy's.
_ULPS_ALLOWED = 2.5
_TOLERANCE_FLOOR = 1e-4

_module_ids = itertools.count()


class KernelFileError(Exception):
    """A kernel file cannot be used: missing, unimportable, or lacking a required name."""


@dataclass(frozen=True)
class KernelSpec:
    """A parsed `FILE::KERNEL` argument."""

    path: Path
    kernel: str


@dataclass(frozen=True)
class KernelFile:
    """A loaded kernel file: its module and the names of the kernels it defines."""

    path: Path
    module: ModuleType
    kernels: tuple[str, ...]

    @property
    def chip(self) -> str | None:
        """The chip the file targets when the user names none: its module-level `CHIP`
        (e.g. `CHIP = "trn3"` for kernels that use NeuronCore-v4 instructions), else None."""
        chip = getattr(self.module, "CHIP", None)
        if chip is not None and not isinstance(chip, str):
            raise KernelFileError(f"{self.path}: CHIP must be a chip preset name such as "
                                  f"'trn3', got {chip!r}")
        return chip

    @property
    def lnc(self) -> int | None:
        """The logical-core size the file's kernels launch with when the user names none: its
        module-level `LNC` (e.g. `LNC = 2` for kernels written for two cores), else None."""
        lnc = getattr(self.module, "LNC", None)
        if lnc is not None and (isinstance(lnc, bool) or lnc not in (1, 2)):
            raise KernelFileError(f"{self.path}: LNC must be 1 or 2, got {lnc!r}")
        return lnc

    def kernel(self, name: str) -> Kernel:
        """The kernel called `name`, or a `KernelFileError` listing the available ones."""
        if name not in self.kernels:
            available = ", ".join(self.kernels) or "(none)"
            if callable(getattr(self.module, name, None)):
                raise KernelFileError(f"{self.path}: {name} is a plain function; decorate it "
                                      f"with @nki.jit to make it a kernel (kernels here: "
                                      f"{available})")
            raise KernelFileError(f"{self.path}: no kernel named {name!r}; available: "
                                  f"{available}")
        return getattr(self.module, name)

    def require(self, name: str):  # noqa: ANN201 - any callable
        """The file's function `name`, or a `KernelFileError` saying it must be defined."""
        fn = getattr(self.module, name, None)
        if not callable(fn):
            raise KernelFileError(f"{self.path}: a kernel file must define {name}() next to "
                                  "its kernels (see examples/kernels/)")
        return fn

    def _own(self, name: str, kernel: str | None) -> str:
        """`name_<kernel>` when the file defines it, else `name`."""
        specific = f"{name}_{kernel}"
        return specific if kernel and callable(getattr(self.module, specific, None)) else name

    def example_inputs(self, kernel: str | None = None) -> tuple[object, ...]:
        """The kernel's example inputs (`example_inputs_<kernel>()`, else
        `example_inputs()`), as a tuple of host arrays."""
        inputs = self.require(self._own("example_inputs", kernel))()
        return tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)

    def reference(self, inputs: tuple[object, ...], kernel: str | None = None) -> object:
        """The kernel's expected output: `reference_<kernel>(*inputs)`, else
        `reference(*inputs)`."""
        return self.require(self._own("reference", kernel))(*inputs)


@dataclass(frozen=True)
class Comparison:
    """How far a kernel's output is from the reference.

    `max_rel_err` is the largest absolute error divided by the largest reference magnitude
    (element-wise relative error is meaningless where the reference is near zero).
    """

    max_abs_err: float
    max_rel_err: float
    tolerance: float
    dtype: str
    # where the output holds the poison value of uninitialised memory (NaN for floats)
    # though the reference is finite there, e.g. "[3, 17] of output 0 (12 of 8192 ...)"
    poison: str | None = None

    @property
    def passed(self) -> bool:
        return self.poison is None and bool(self.max_rel_err <= self.tolerance)


@dataclass(frozen=True)
class OpcodeCount:
    """Number of instructions of one opcode on one engine."""

    engine: str
    opcode: str
    count: int


@dataclass(frozen=True)
class ExampleRun:
    """A kernel run on its file's example inputs: the trace, the comparison, the wall time."""

    kernel: str
    trace: TraceResult
    comparison: Comparison | None  # None for a symbolic run
    wall_s: float

    @property
    def engine_counts(self) -> tuple[tuple[str, int], ...]:
        """(engine, instruction count) pairs, busiest engine first."""
        return count_by_engine(self.trace.instructions)

    @property
    def opcode_counts(self) -> tuple[OpcodeCount, ...]:
        """Instruction counts per (engine, opcode), busiest first."""
        return count_by_opcode(self.trace.instructions)


def parse_spec(spec: str) -> KernelSpec:
    """Split `FILE::KERNEL`; the file must exist and the kernel name must be given."""
    file_part, sep, kernel = spec.rpartition(SPEC_SEPARATOR)
    if not sep:
        raise KernelFileError(f"{spec!r}: name the kernel as FILE{SPEC_SEPARATOR}KERNEL, e.g. "
                              f"examples/kernels/vector_add.py{SPEC_SEPARATOR}vector_add")
    if not kernel:
        raise KernelFileError(f"{spec!r}: the kernel name after {SPEC_SEPARATOR!r} is empty")
    path = Path(file_part)
    if not path.is_file():
        raise KernelFileError(f"{file_part}: no such file")
    return KernelSpec(path, kernel)


_NKI_IMPORT = re.compile(r"^\s*(from\s+neuronxcc\b|import\s+neuronxcc\b|import\s+nki\b|"
                         r"from\s+nki\b)", re.MULTILINE)


def load_kernel_file(path: Path | str) -> KernelFile:
    """Import a kernel file by path under a fresh module name (so edits are picked up)."""
    path = Path(path)
    if not path.is_file():
        raise KernelFileError(f"{path}: no such file")
    name = f"tessera_kernel_file_{next(_module_ids)}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise KernelFileError(f"{path}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    if _NKI_IMPORT.search(path.read_text(errors="replace")):
        # a file written for the vendor's packages (`import nki`, or Beta 1's
        # `from neuronxcc import nki`) runs on Tessera's, unless the real ones are installed
        from tessera.nki import compat  # compat maps module names onto this package

        compat.install()
    # registered so that dataclasses and pickling inside the file can find their module
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        del sys.modules[name]
        raise KernelFileError(f"{err.filename}:{err.lineno}: syntax error: {err.msg}") from None
    except Exception as err:
        del sys.modules[name]
        raise KernelFileError(f"{path}: importing the file failed: "
                              f"{type(err).__name__}: {err}") from err
    kernels = tuple(k for k, v in vars(module).items() if isinstance(v, Kernel))
    return KernelFile(path, module, kernels)


def tolerance_for(dtype: object) -> float:
    """Relative tolerance for outputs of `dtype` (see `_ULPS_ALLOWED`)."""
    d = dt.to_dtype(dtype)
    if not d.is_float:
        return 0.0  # integer outputs must match exactly
    return max(_TOLERANCE_FLOOR, _ULPS_ALLOWED * 2.0 ** -d.mantissa_bits)


def _as_arrays(value: object) -> tuple[np.ndarray, ...]:
    if isinstance(value, tuple | list):
        return tuple(np.asarray(v) for v in value)
    return (np.asarray(value),)


def compare_outputs(outputs: object, expected: object) -> Comparison:
    """Compare kernel outputs (an array or a tuple of arrays) with the reference's."""
    got, want = _as_arrays(outputs), _as_arrays(expected)
    if len(got) != len(want):
        raise KernelFileError(f"the kernel returned {len(got)} output(s) but reference() "
                              f"returned {len(want)}")
    abs_err = rel_err = tol = 0.0
    names = []
    poison = None
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        if g.shape != w.shape:
            raise KernelFileError(f"output shape {g.shape} differs from the reference's "
                                  f"{w.shape}")
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        poisoned = np.isnan(g64) & np.isfinite(w64)
        if poison is None and poisoned.any():
            at = [int(i) for i in np.argwhere(poisoned)[0]]
            poison = (f"{at} of output {k} ({int(poisoned.sum())} of {g.size} elements; the "
                      "reference is finite there)")
        err = float(np.max(np.abs(g64 - w64))) if g.size else 0.0
        if not np.all(np.isfinite(g64)):
            err = float("inf")  # NaN (uninitialised memory) or overflow never passes
        scale = float(np.max(np.abs(w64))) if w.size else 0.0
        abs_err = max(abs_err, err)
        rel_err = max(rel_err, err / scale if scale > 0 else err)
        d = dt.to_dtype(g.dtype)
        tol = max(tol, tolerance_for(d))
        names.append(d.name)
    return Comparison(abs_err, rel_err, tol, "/".join(dict.fromkeys(names)), poison)


def input_specs(inputs: tuple[object, ...]) -> tuple[object, ...]:
    """Arrays replaced by `TensorSpec` placeholders (shape and dtype only)."""
    return tuple(TensorSpec(np.shape(x), np.asarray(x).dtype)
                 if hasattr(x, "shape") and not isinstance(x, TensorSpec) else x
                 for x in inputs)


def count_by_engine(instructions: tuple[Instruction, ...]) -> tuple[tuple[str, int], ...]:
    """(engine, count) pairs, most instructions first (ties by engine name)."""
    counts: dict[str, int] = {}
    for inst in instructions:
        counts[inst.engine.value] = counts.get(inst.engine.value, 0) + 1
    return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def count_by_opcode(instructions: tuple[Instruction, ...]) -> tuple[OpcodeCount, ...]:
    """Counts per (engine, opcode), most instructions first."""
    counts: dict[tuple[str, str], int] = {}
    for inst in instructions:
        key = (inst.engine.value, inst.opcode.value)
        counts[key] = counts.get(key, 0) + 1
    rows = (OpcodeCount(e, o, n) for (e, o), n in counts.items())
    return tuple(sorted(rows, key=lambda r: (-r.count, r.engine, r.opcode)))


def parse_shape(text: str) -> tuple[str, tuple[int, ...], str | None]:
    """`NAME=AxBxC[:dtype]` -> (name, shape, dtype or None)."""
    name, sep, rest = text.partition("=")
    dims, _, dtype = rest.partition(":")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        shape = ()
    if not sep or not name.strip() or not shape or min(shape) < 1:
        raise KernelFileError(f"--shape {text!r}: expected NAME=AxB (positive sizes, e.g. "
                              "a=4096x8192 or a=4096x8192:bfloat16)")
    return name.strip(), shape, dtype.strip() or None


def resize_inputs(kernel: Kernel, inputs: tuple[object, ...],
                  shapes: dict[str, tuple[tuple[int, ...], str | None]], symbolic: bool,
                  seed: int = 0) -> tuple[object, ...]:
    """The example inputs with the named ones replaced by inputs of another shape (random
    normal values in the example's dtype, or `TensorSpec`s when symbolic)."""
    if not shapes:
        return inputs
    names = list(inspect.signature(kernel.fn).parameters)[:len(inputs)]
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise KernelFileError(f"--shape names {', '.join(unknown)}, but {kernel.fn.__name__} "
                              f"takes inputs {', '.join(names)}")
    rng = np.random.default_rng(seed)
    out = list(inputs)
    for i, name in enumerate(names):
        if name not in shapes:
            continue
        shape, dtype_name = shapes[name]
        dtype = dt.to_dtype(dtype_name or np.asarray(inputs[i]).dtype)
        if symbolic:
            out[i] = TensorSpec(shape, dtype)
        else:
            values = rng.standard_normal(shape).astype(np.float32)
            out[i] = dt.cast(values, dtype) if dtype.is_float else values.astype(dtype.storage)
    return tuple(out)


def run_example(kernel_file: KernelFile, name: str, chip: str | None = None,
                symbolic: bool = False,
                shapes: dict[str, tuple[tuple[int, ...], str | None]] | None = None,
                kwargs: dict[str, object] | None = None, lnc: int | None = None) -> ExampleRun:
    """Run kernel `name` of `kernel_file` on its example inputs (resized by `shapes`, with
    keyword arguments `kwargs`), launched on `lnc` logical cores (default: the file's `LNC`,
    else 1).

    Functional runs compare the output with the reference; symbolic runs only trace (with
    `TensorSpec` inputs) and carry no comparison. Kernel errors (`NkiError`) propagate.
    """
    kernel = kernel_file.kernel(name)
    inputs = resize_inputs(kernel, kernel_file.example_inputs(name), shapes or {}, symbolic)
    lnc = lnc or kernel_file.lnc
    if lnc is not None:
        kernel = kernel[lnc]
    kwargs = dict(kwargs or {})
    chip = chip or kernel_file.chip or default_chip()
    core_limits(chip)  # load the hardware catalogue now so the wall time is the kernel's
    if symbolic:
        start = time.perf_counter()
        result = trace(kernel, symbolic=True, chip=chip)(*input_specs(inputs), **kwargs)
        return ExampleRun(name, result, None, time.perf_counter() - start)
    kernel_file.require(kernel_file._own("reference", name))  # fail before a long run
    start = time.perf_counter()
    result = trace(kernel, chip=chip)(*inputs, **kwargs)
    wall = time.perf_counter() - start
    if result.outputs is None:
        raise KernelFileError(f"{kernel_file.path}: {name} returned nothing; end the kernel "
                              "with `return out` (the nl.shared_hbm tensor it wrote)")
    comparison = compare_outputs(result.outputs, kernel_file.reference(inputs, name))
    return ExampleRun(name, result, comparison, wall)
