"""Every example kernel has a Beta-1 twin (examples/kernels/beta1/) or a reason why not.

Issue 19 §3 "Equivalence": a twin is the same kernel written the Beta-1 way (`neuronxcc.nki`:
tiles as values, nl.load/nl.store with arange/mgrid indices and masks). For each twin:
(1) on small (ragged where the kernel allows) inputs its outputs equal the Beta-2 kernel's
bit for bit, same dtype, and its instructions have the same shapes; (2) the symbolic
profiles of both at the example's default shapes are within 5 % and the instruction counts
per (engine, opcode) agree, up to the extra instructions the Beta-1 spelling inherently
issues (`SPELLING_EXTRAS`). `NO_TWIN` lists the kernels that use
Beta-2-only features; the completeness test keeps the two lists covering every example.

`python tests/nki/beta1/test_beta1_twins.py` prints the comparison table.
"""

from __future__ import annotations

import builtins
import sys
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tessera import sim
from tessera.nki import compat
from tessera.nki.kernel_files import KernelFile, count_by_opcode, input_specs, load_kernel_file
from tessera.nki.launch import TraceResult, trace

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "kernels"
TWINS_DIR = EXAMPLES / "beta1"
PROFILE_RTOL = 0.05
ALIASES = (*compat.MODULES, *compat.LEGACY_MODULES, "neuronxcc")


@dataclass(frozen=True)
class Twin:
    """One example kernel and its Beta-1 twin: `small` are `example_inputs` keywords for the
    value check, `profile` those for the timing check (default: the example's shapes)."""

    file: str
    kernel: str
    small: dict = field(default_factory=dict)
    profile: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.file}::{self.kernel}"


SMALL_MATMUL = {"M": 256, "K": 256, "N": 1024}
TWINS = (
    Twin("vector_add", "vector_add", {"shape": (200, 384)}),
    Twin("transpose2d", "transpose2d", {"shape": (200, 300)}),
    Twin("softmax", "softmax_rows", {"shape": (130, 256)}),
    Twin("rmsnorm", "rmsnorm", {"shape": (200, 384)}),
    Twin("layernorm", "layernorm", {"shape": (130, 640)}),
    Twin("rmsnorm_fp8_quant", "rmsnorm_fp8_quant", {"shape": (200, 384)}),
    Twin("topk_router", "topk_router", {"tokens": 130, "experts": 64}),
    Twin("topk_router", "topk_router_softmax", {"tokens": 130, "experts": 64}),
    Twin("matmul_tutorial", "matmul_tiled", SMALL_MATMUL),
    Twin("matmul_tutorial", "matmul_hoist_loads", SMALL_MATMUL),
    Twin("matmul_tutorial", "matmul_block_free_dims", SMALL_MATMUL),
    Twin("matmul_tutorial", "matmul_block_all_dims", SMALL_MATMUL),
    Twin("mx_matmul", "matmul_bf16", {"M": 128, "K": 512, "N": 512}),
)

# example kernels that cannot be written in Beta 1, and why
NO_TWIN = {
    "token_gather::token_gather": (
        "a device loop with a run-time trip count (nl.dynamic_range over a register from "
        "nisa.register_load) and DMAs placed by register offsets: Beta-1 loops are unrolled "
        "or affine at compile time and it has no engine registers"),
    "mx_matmul::mx_matmul": (
        "MXFP8: nisa.quantize_mx, nisa.nc_matmul_mx and the float8_e4m3fn_x4 dtype are "
        "NeuronCore-v4 (Beta-2) instructions with no Beta-1 spelling"),
    "lnc2_all_gather::lnc2_all_gather": (
        "nisa.core_barrier between the two cores of an LNC=2 launch is Beta-2 only; "
        "Beta 1 has no way to order one core's HBM writes before the other's reads"),
    "lnc2_all_gather::lnc2_all_gather_sendrecv": (
        "nisa.sendrecv (core-to-core SBUF transfer) is a Beta-2 collective with no Beta-1 "
        "counterpart"),
}

# instructions the Beta-1 spelling issues on top of the Beta-2 kernel's, per twin: the
# accumulator made by nl.zeros(..., buffer=nl.psum) is zeroed by a memset the Beta-2 kernel
# (whose first matmul overwrites PSUM) does not issue; version 4's SBUF accumulator is one
# block per 128-row tile (nl.par_dim), zeroed per block
PSUM_ZEROS = "nl.zeros(..., buffer=nl.psum): one memset per output tile"
SPELLING_EXTRAS = {
    "matmul_tutorial::matmul_tiled": {("vector", "memset"): PSUM_ZEROS},
    "matmul_tutorial::matmul_hoist_loads": {("vector", "memset"): PSUM_ZEROS},
    "matmul_tutorial::matmul_block_free_dims": {("vector", "memset"): PSUM_ZEROS},
    "matmul_tutorial::matmul_block_all_dims": {
        ("vector", "memset"): PSUM_ZEROS + "; the SBUF accumulator: one per block"},
    "mx_matmul::matmul_bf16": {("vector", "memset"): PSUM_ZEROS},
}


# ------------------------------------------------------------------ loading and running
@pytest.fixture(scope="module", autouse=True)
def _aliases():
    """The example files install the nki / neuronxcc aliases; restore sys.modules after."""
    saved = {k: sys.modules.pop(k) for k in ALIASES if k in sys.modules}
    saved_builtin = getattr(builtins, compat.BUILTIN, None)
    yield
    compat.uninstall()
    sys.modules.update(saved)
    if saved_builtin is not None:
        setattr(builtins, compat.BUILTIN, saved_builtin)


_FILES: dict[Path, KernelFile] = {}


def _file(path: Path) -> KernelFile:
    if path not in _FILES:
        _FILES[path] = load_kernel_file(path)
    return _FILES[path]


def _pair(name: str) -> tuple[KernelFile, KernelFile]:
    """The Beta-2 example file `name` and its Beta-1 twin."""
    return _file(EXAMPLES / f"{name}.py"), _file(TWINS_DIR / f"{name}.py")


def _inputs(kfile: KernelFile, kernel: str, kwargs: dict) -> tuple:
    make = getattr(kfile.module, f"example_inputs_{kernel}", None) or kfile.module.example_inputs
    return tuple(make(**kwargs))


def _launch(kfile: KernelFile, kernel: str, inputs: tuple, symbolic: bool) -> TraceResult:
    k = kfile.kernel(kernel)
    if kfile.lnc:
        k = k[kfile.lnc]
    args = input_specs(inputs) if symbolic else inputs
    return trace(k, symbolic=symbolic, chip=kfile.chip)(*args)


def _outputs(result: TraceResult) -> tuple[np.ndarray, ...]:
    out = result.outputs
    return tuple(np.asarray(o) for o in (out if isinstance(out, tuple | list) else (out,)))


def _shapes(result: TraceResult, skip: Collection[tuple[str, str]] = ()) -> Counter:
    """How many instructions of each (engine, opcode, partitions, free elements), leaving out
    the (engine, opcode) pairs in `skip`: equal for two streams that differ in order only."""
    return Counter((i.engine.value, i.opcode.value, i.partitions, i.free_elements)
                   for i in result.instructions
                   if (i.engine.value, i.opcode.value) not in skip)


def _opcodes(result: TraceResult) -> dict[tuple[str, str], int]:
    return {(r.engine, r.opcode): r.count for r in count_by_opcode(result.instructions)}


@dataclass(frozen=True)
class Comparison:
    """A twin against its Beta-2 kernel: predicted times and instruction counts."""

    beta1_s: float
    beta2_s: float
    beta1_ops: dict
    beta2_ops: dict

    @property
    def ratio(self) -> float:
        return self.beta1_s / self.beta2_s

    def differences(self) -> dict[tuple[str, str], tuple[int, int]]:
        keys = sorted(set(self.beta1_ops) | set(self.beta2_ops))
        return {k: (self.beta1_ops.get(k, 0), self.beta2_ops.get(k, 0)) for k in keys
                if self.beta1_ops.get(k, 0) != self.beta2_ops.get(k, 0)}


def compare_profiles(twin: Twin) -> Comparison:
    b2, b1 = _pair(twin.file)
    inputs = _inputs(b2, twin.kernel, twin.profile)
    r2 = _launch(b2, twin.kernel, inputs, symbolic=True)
    r1 = _launch(b1, twin.kernel, inputs, symbolic=True)
    return Comparison(sim.schedule(r1).total_s, sim.schedule(r2).total_s, _opcodes(r1),
                      _opcodes(r2))


# ------------------------------------------------------------------ tests
def _example_kernels() -> set[str]:
    return {f"{p.stem}::{k}" for p in sorted(EXAMPLES.glob("*.py"))
            for k in _file(p).kernels}


def test_every_example_kernel_is_twinned_or_listed_with_a_reason():
    twinned = {t.id for t in TWINS}
    assert not twinned & set(NO_TWIN), "a kernel is both twinned and listed in NO_TWIN"
    assert all(reason.strip() for reason in NO_TWIN.values())
    assert _example_kernels() == twinned | set(NO_TWIN)


def test_twin_files_mirror_the_beta2_declarations():
    for name in sorted({t.file for t in TWINS}):
        b2, b1 = _pair(name)
        assert b1.module.__doc__.lstrip().startswith(f"Beta-1 twin of ../{name}.py")
        assert set(b1.kernels) == set(b2.kernels) - {k.split("::")[1] for k in NO_TWIN
                                                    if k.startswith(f"{name}::")}
        for attr in ("CHIP", "LNC"):
            assert getattr(b1.module, attr, None) == getattr(b2.module, attr, None), attr
        if hasattr(b2.module, "KERNELS"):
            assert b1.module.KERNELS == tuple(k for k in b2.module.KERNELS if k in b1.kernels)


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.id)
def test_twin_outputs_equal_the_beta2_kernels(twin: Twin):
    b2, b1 = _pair(twin.file)
    inputs = _inputs(b2, twin.kernel, twin.small)
    r2 = _launch(b2, twin.kernel, inputs, symbolic=False)
    r1 = _launch(b1, twin.kernel, inputs, symbolic=False)
    want, got = _outputs(r2), _outputs(r1)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        # the same instructions on the same values: bit for bit
        np.testing.assert_array_equal(g.astype(np.float64), w.astype(np.float64))
    # on these (ragged) shapes too, the masks cut every instruction as the Beta-2 slices do
    extras = SPELLING_EXTRAS.get(twin.id, {})
    assert _shapes(r1, extras) == _shapes(r2, extras)


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.id)
def test_twin_profile_matches_the_beta2_kernels(twin: Twin):
    c = compare_profiles(twin)
    extras = SPELLING_EXTRAS.get(twin.id, {})
    for key, (n1, n2) in c.differences().items():
        assert key in extras and n1 > n2, (
            f"{key}: {n1} instructions in the Beta-1 twin, {n2} in the Beta-2 kernel")
    assert c.ratio == pytest.approx(1.0, rel=PROFILE_RTOL)


def main() -> None:
    """Print, per twin, the predicted times, their ratio and the instruction differences."""
    print(f"{'twin':45s} {'beta1 us':>9s} {'beta2 us':>9s} {'ratio':>6s}  differences "
          "(engine/opcode: beta1 vs beta2)")
    for twin in TWINS:
        c = compare_profiles(twin)
        diffs = ", ".join(f"{e}/{o}: {a} vs {b}" for (e, o), (a, b) in
                          c.differences().items()) or "none"
        print(f"{twin.id:45s} {c.beta1_s * 1e6:9.3f} {c.beta2_s * 1e6:9.3f} "
              f"{c.ratio:6.3f}  {diffs}")
    for kernel, reason in NO_TWIN.items():
        print(f"{kernel:45s} no twin: {reason}")


if __name__ == "__main__":
    main()
