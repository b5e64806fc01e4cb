"""Forms the vendor's kernel library writes that the current pages word differently:
tensor_copy's dtype=, par_dim as the leading dimension, program_id/num_programs on the host,
tensor_reduce axes numbered from the most minor (tests/nki/test_isa_reduce.py)."""

from __future__ import annotations

import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki


def _copy_kernel(dtype):
    @nki.jit
    def kernel(x):
        src = nl.ndarray((nl.par_dim(8), 16), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=src, src=x)
        dst = nl.ndarray((8, 16), nl.bfloat16, buffer=nl.sbuf)
        nisa.tensor_copy(dst=dst, src=src, dtype=dtype)
        out = nl.ndarray((8, 16), nl.bfloat16, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=dst)
        return out
    return kernel


def test_tensor_copy_takes_dtype_equal_to_dst_and_par_dim_leads_a_shape():
    x = np.linspace(-2, 2, 8 * 16, dtype=np.float32).reshape(8, 16)
    out = nki.simulate(_copy_kernel(nl.bfloat16))(x)
    np.testing.assert_array_equal(np.asarray(out, np.float32),
                                  x.astype(nl.bfloat16.storage).astype(np.float32))
    assert nl.par_dim(128) == 128


def test_tensor_copy_dtype_other_than_dst_is_an_error():
    with pytest.raises(nki.DTypeError, match="dtype=float32 differs from dst"):
        nki.simulate(_copy_kernel(nl.float32))(np.zeros((8, 16), np.float32))


def test_par_dim_after_the_first_dimension_is_refused():
    @nki.jit
    def kernel(x):
        nl.ndarray((4, nl.par_dim(128), 64), nl.float32, buffer=nl.sbuf)
        return x

    with pytest.raises(nki.KernelUsageError, match="Beta-1 block dimensions"):
        nki.simulate(kernel)(np.zeros((2, 2), np.float32))


def test_program_id_and_num_programs_are_none_on_the_host_and_set_in_a_launch():
    assert nl.program_id(0) is None and nl.num_programs(0) is None
    seen = []

    @nki.jit
    def kernel(x):
        seen.append((nl.program_id(0), nl.num_programs(0)))
        return x

    nki.simulate(kernel)[2](np.zeros((2, 2), np.float32))
    assert sorted(seen) == [(0, 2), (1, 2)]


def test_a_one_dimensional_tile_has_one_element_per_partition():
    """nl.ndarray((n,), buffer=nl.sbuf): n partitions of one element (dim 0 is the partition
    dimension); a [1, 1] HBM value loads into a (1,) tile, as the library's kernels do."""
    @nki.jit
    def kernel(x, scalar):
        s = nl.ndarray((1,), dtype=nl.int32, buffer=nl.sbuf)
        nisa.dma_copy(dst=s, src=scalar)
        col = nl.ndarray((4,), dtype=nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=col, src=x)
        nisa.tensor_scalar(col, col, nl.multiply, 2.0)
        out = nl.ndarray((4,), dtype=nl.float32, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=col)
        back = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=back, src=s)
        return out, back

    out, back = nki.simulate(kernel)(np.arange(4, dtype=np.float32), np.array([[7]], np.int32))
    np.testing.assert_array_equal(out, [0, 2, 4, 6])
    np.testing.assert_array_equal(back, [[7]])


def test_activation_reduce_res_taller_than_data_gets_its_first_rows():
    """A partial last tile (64 rows) may read its row sums into a 128-row column: the first
    64 rows receive them, the rest keep their values."""
    @nki.jit
    def kernel(x):
        t = nl.ndarray((64, 8), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        col = nl.ndarray((128, 1), nl.float32, buffer=nl.sbuf)
        nisa.memset(col, -1.0)
        y = nl.ndarray((64, 8), nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=y, op=nl.copy, data=t, reduce_op=nl.add, reduce_res=col,
                        reduce_cmd=nisa.reduce_cmd.reset_reduce)
        out = nl.ndarray((128, 1), nl.float32, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=col)
        return out

    x = np.arange(64 * 8, dtype=np.float32).reshape(64, 8)
    out = nki.simulate(kernel)(x)
    np.testing.assert_allclose(out[:64, 0], x.sum(axis=1))
    np.testing.assert_array_equal(out[64:, 0], -1.0)


@pytest.mark.parametrize(("axis", "reduce"), [([4], (2,)), ([3, 4], (1, 2)), (2, (2,))])
def test_tensor_reduce_axes_on_the_five_axis_pattern(axis, reduce):
    """axis values past a tile's rank count on the instruction's partition + four free axes,
    the tile's free axes right-aligned (the vendor's attention kernel writes axis=[4])."""
    x = np.random.default_rng(1).standard_normal((8, 3, 5)).astype(np.float32)
    keep = tuple(d for d in x.shape[1:] if x.shape.index(d) not in reduce) or (1,)

    @nki.jit
    def kernel(a):
        t = nl.ndarray(a.shape, nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=a)
        r = nl.ndarray((8, *keep), nl.float32, buffer=nl.sbuf)
        nisa.tensor_reduce(dst=r, op=nl.maximum, data=t, axis=axis)
        out = nl.ndarray((8, *keep), nl.float32, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=r)
        return out

    np.testing.assert_array_equal(nki.simulate(kernel)(x).reshape(8, -1),
                                  x.max(axis=reduce).reshape(8, -1))


def test_sendrecv_takes_the_older_use_gpsimd_dma_keyword():
    seen = []

    @nki.jit
    def kernel(x):
        core = nl.program_id(0)
        mine = nl.ndarray((8, 4), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=mine, src=x[core * 8:(core + 1) * 8, :])
        theirs = nl.ndarray((8, 4), nl.float32, buffer=nl.sbuf)
        nisa.sendrecv(src=mine, dst=theirs, send_to_rank=1 - core, recv_from_rank=1 - core,
                      pipe_id=0, use_gpsimd_dma=True)
        seen.append(core)
        out = nl.ndarray((8, 4), nl.float32, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=theirs)
        return out

    trace = nki.trace(kernel[2])(np.zeros((16, 4), np.float32))
    engines = {i.attrs.dma_engine for i in trace.instructions if i.opcode.value == "sendrecv"}
    assert engines == {"gpsimd_dma"} and sorted(seen) == [0, 1]


def test_an_indirect_dma_transpose_gathers_rows_then_transposes():
    """dma_transpose of a src with runtime row offsets (dge_mode swdge): the page's indirect
    transpose, as the vendor's block-KV attention loads its cache."""
    cache = np.arange(6 * 16, dtype=np.float32).reshape(6, 16).astype(nl.bfloat16.storage)
    blocks = np.array([[4], [1], [3]], dtype=np.uint32)

    @nki.jit
    def kernel(kv, ids):
        idx = nl.ndarray((3, 1), nl.uint32, buffer=nl.sbuf)
        nisa.dma_copy(dst=idx, src=ids)
        t = nl.ndarray((16, 3), nl.bfloat16, buffer=nl.sbuf)
        nisa.dma_transpose(dst=t, src=kv.ap([[16, 3], [1, 16]], offset=0, vector_offset=idx,
                                             indirect_dim=0),
                           dge_mode=nisa.dge_mode.swdge)
        out = nl.ndarray((16, 3), nl.bfloat16, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=t)
        return out

    out = nki.simulate(kernel)(cache, blocks)
    np.testing.assert_array_equal(out, cache[blocks[:, 0]].T)
    with pytest.raises(nki.KernelUsageError, match="indirect DMA transpose"):
        @nki.jit
        def hw(kv, ids):
            idx = nl.ndarray((3, 1), nl.uint32, buffer=nl.sbuf)
            nisa.dma_copy(dst=idx, src=ids)
            t = nl.ndarray((16, 3), nl.bfloat16, buffer=nl.sbuf)
            nisa.dma_transpose(dst=t, src=kv.ap([[16, 3], [1, 16]], offset=0,
                                                 vector_offset=idx, indirect_dim=0),
                               dge_mode=nisa.dge_mode.hwdge)
            return kv

        nki.simulate(hw)(cache, blocks)
