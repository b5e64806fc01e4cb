"""User kernels in place of the library's: by name, by decorator, as a custom op."""

from __future__ import annotations

import pytest
import torch

import tessera
from tessera import nki
from tessera.compiler import CompileError, overrides
from tessera.models import TINY_LLAMA, build_model
from tessera.nki import isa as nisa
from tessera.nki import language as nl

EPS = TINY_LLAMA.norm_eps


@nki.jit
def row_by_row_rmsnorm(x, w):
    """rms_norm over the last axis of x [B, S, H], one row per instruction group: correct,
    and slower than the library's 128-rows-at-a-time kernel."""
    b, s, h = x.shape
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    rows, outs = x.reshape((b * s, h)), out.reshape((b * s, h))
    wt = nl.ndarray((1, h), x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(wt, w.reshape((1, h)))
    for r in range(b * s):
        t = nl.ndarray((1, h), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(t, rows[r:r + 1, :])
        sq = nl.ndarray((1, h), nl.float32, buffer=nl.sbuf)
        ss = nl.ndarray((1, 1), nl.float32, buffer=nl.sbuf)
        nisa.activation_reduce(sq, nl.square, t, nl.add, ss)
        nisa.tensor_scalar(ss, ss, nl.multiply, 1.0 / h, op1=nl.add, operand1=EPS)
        nisa.activation(ss, nl.rsqrt, ss)
        y = nl.ndarray((1, h), x.dtype, buffer=nl.sbuf)
        nisa.tensor_scalar(y, t, nl.multiply, ss)
        nisa.tensor_tensor(y, y, wt, op=nl.multiply)
        nisa.dma_copy(outs[r:r + 1, :], y)
    return out


@nki.jit
def wrong_shape(x, w):
    out = nl.ndarray((x.shape[-1], 8), x.dtype, buffer=nl.shared_hbm)
    return out


def _setup():
    model = build_model(TINY_LLAMA)
    ids = torch.randint(0, TINY_LLAMA.vocab_size, (1, 16),
                        generator=torch.Generator().manual_seed(0))
    return model, ids


def test_a_slower_user_kernel_shows_up_in_the_profile() -> None:
    model, ids = _setup()
    library = tessera.compile(model, (ids,), chip="trn2", fidelity="roofline")
    mine = tessera.compile(model, (ids,), chip="trn2", fidelity="roofline",
                           kernels={"rms_norm": row_by_row_rmsnorm})
    norms = [op for op in mine.profile.ops if op.op == "aten.rms_norm.default"]
    assert norms and all(op.kernels == ("user:row_by_row_rmsnorm",) for op in norms)
    lib_norms = [op for op in library.profile.ops if op.op == "aten.rms_norm.default"]
    assert sum(o.time_s for o in norms) > sum(o.time_s for o in lib_norms)
    assert mine.profile.total_s > library.profile.total_s
    with torch.no_grad():
        assert (mine(ids) - model(ids)).abs().max().item() <= 1e-3


def test_a_wrong_shape_names_the_op_and_both_shapes() -> None:
    model, ids = _setup()
    with pytest.raises(CompileError, match=r"wrong_shape for aten.rms_norm.default at "
                       r"layers.0.input_layernorm returns \[64, 8\], the op produces "
                       r"\[1, 16, 64\]"):
        tessera.compile(model, (ids,), chip="trn2", fidelity="roofline",
                        kernels={torch.ops.aten.rms_norm: wrong_shape})


def test_the_override_decorator_applies_to_later_compiles() -> None:
    model, ids = _setup()
    try:
        overrides.override(torch.ops.aten.rms_norm.default)(row_by_row_rmsnorm)
        compiled = tessera.compile(model, (ids,), chip="trn2", fidelity="roofline")
        kernels = {k for op in compiled.profile.ops for k in op.kernels}
        assert "user:row_by_row_rmsnorm" in kernels
    finally:
        overrides.clear_overrides()
    compiled = tessera.compile(model, (ids,), chip="trn2", fidelity="roofline")
    assert "user:row_by_row_rmsnorm" not in {k for op in compiled.profile.ops
                                             for k in op.kernels}


def test_an_nki_custom_op_survives_export_and_runs_as_written() -> None:
    norm = overrides.nki_op("tessera_test::row_rmsnorm", row_by_row_rmsnorm)

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.linspace(0.5, 1.5, 32))
            self.proj = torch.nn.Linear(32, 32)

        def forward(self, x):
            return self.proj(norm(x, self.w))

    model = Tiny()
    x = torch.randn(2, 8, 32, generator=torch.Generator().manual_seed(1))
    compiled = tessera.compile(model, (x,), chip="trn1", fidelity="roofline")
    ops = {op.op: op for op in compiled.profile.ops}
    assert ops["tessera_test.row_rmsnorm.default"].kernels == ("user:row_by_row_rmsnorm",)
    ref = torch.nn.functional.rms_norm(x, (32,), model.w, EPS)
    with torch.no_grad():
        assert (compiled(x) - model.proj(ref)).abs().max().item() <= 1e-4
        assert (model(x) - model.proj(ref)).abs().max().item() <= 1e-4  # eager: same kernel
