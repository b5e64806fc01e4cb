"""Tile and block grids and stream buffers (NKI 0.7): nl.tiles, nl.blocks, nl.alloc_tiles,
nl.alloc_blocks, nl.alloc_stream_buffers, checked against numpy slices of the source."""

from __future__ import annotations

import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki

RNG = np.random.default_rng(7)


def run(body, *arrays):
    """Run body(*hbm_inputs) inside a kernel; returns what it returns (host values)."""
    return nki.simulate(body)(*arrays)


def test_copy_tile_grid_page_example_with_remainders() -> None:
    # the NkiTileGrid page's copy kernel, over a tensor that is not a whole number of tiles
    def copy_tile_grid(src):
        src_tiles = nl.tiles(src, tile_shape=(128, 256))
        dst = nl.ndarray(src.shape, dtype=src.dtype, buffer=nl.shared_hbm)
        dst_tiles = nl.tiles(dst, tile_shape=(128, 256))
        for i in range(src_tiles.shape[0]):
            for j in range(src_tiles.shape[1]):
                src_tile = src_tiles[i, j]
                tile = nl.ndarray(src_tile.element_shape, dtype=src.dtype, buffer=nl.sbuf)
                nisa.dma_copy(dst=tile, src=src_tile.data)
                nisa.dma_copy(dst=dst_tiles[i, j].data, src=tile)
        return dst

    x = RNG.standard_normal((300, 600)).astype(np.float32)
    np.testing.assert_array_equal(run(copy_tile_grid, x), x)


def test_grid_geometry_attributes() -> None:
    seen = {}

    def kernel(src):
        g = nl.tiles(src, tile_shape=(128, 256))
        seen["grid"] = (g.shape, g.tile_shape, g.element_shape, g.index_step_elements,
                        g.is_remainder, g.dtype, g.buffer)
        last = g[-1, -1]
        seen["last"] = (last.shape, last.element_shape, last.is_remainder)
        row = g[1, :]
        seen["row"] = (row.shape, row.element_shape, row.is_remainder)
        odd = g[:, 0:3:2]
        seen["odd"] = (odd.shape, odd.index_step_elements, odd.is_data_representable)
        seen["nested"] = isinstance(g[0][1], nl.NkiTileGrid) and isinstance(g, nl.NkiGrid)
        out = nl.ndarray((128, 600), src.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=row.data)
        return out

    x = RNG.standard_normal((300, 600)).astype(np.float32)
    out = run(kernel, x)
    np.testing.assert_array_equal(out, x[128:256])
    shape, tile, extent, step, remainder, dtype, buffer = seen["grid"]
    assert (shape, tile, extent, step, remainder) == ((3, 3), (128, 256), (300, 600),
                                                      (128, 256), True)
    assert dtype == nl.float32 and buffer.is_hbm
    assert seen["last"] == ((), (44, 88), True)
    assert seen["row"] == ((3,), (128, 600), True)
    assert seen["odd"] == ((3, 2), (128, 512), False)
    assert seen["nested"]


def test_untiled_leading_dimensions_are_slabs() -> None:
    def kernel(src):
        g = nl.tiles(src, tile_shape=(64, 128))
        assert g.shape == (3, 2, 2)
        t = g[2, 1, 0]
        assert t.element_shape == (64, 128) and t.shape == ()
        out = nl.ndarray(t.element_shape, src.dtype, buffer=nl.shared_hbm)
        sb = nl.ndarray(t.element_shape, src.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=sb, src=t.data)
        nisa.tensor_scalar(dst=sb, data=sb, op0=nl.multiply, operand0=2.0)
        nisa.dma_copy(dst=out, src=sb)
        return out

    x = RNG.standard_normal((3, 128, 256)).astype(np.float32)
    np.testing.assert_array_equal(run(kernel, x), 2 * x[2, 64:128, 0:128])


def test_blocks_group_tiles_and_expose_interior_tiles() -> None:
    def kernel(src):
        b = nl.blocks(src, tile_shape=(64, 64), block_shape=(2, 2))
        assert isinstance(b, nl.NkiBlockGrid) and b.block_shape == (2, 2)
        assert b.shape == (2, 2) and b.index_step_elements == (128, 128)
        last = b[1, 1]  # 5x5 tiles: the last block holds one partial tile
        inner = nl.tiles(last)
        assert inner.shape == (1, 1) and last.element_shape == (32, 32) and last.is_remainder
        dst = nl.ndarray(src.shape, src.dtype, buffer=nl.shared_hbm)
        db = nl.blocks(dst, tile_shape=(64, 64), block_shape=(2, 2))
        for i in range(2):
            for j in range(2):
                sb = nl.ndarray(b[i, j].element_shape, src.dtype, buffer=nl.sbuf)
                nisa.dma_copy(dst=sb, src=b[i, j].data)  # one coalesced DMA per block
                nisa.dma_copy(dst=db[i, j].data, src=sb)
        return dst

    x = RNG.standard_normal((160, 160)).astype(np.float32)
    np.testing.assert_array_equal(run(kernel, x), x)


def test_alloc_tiles_sbuf_packs_tiles_along_the_free_dimension() -> None:
    def kernel(src):
        g = nl.alloc_tiles(tile_shape=(64, 32), element_shape=(100, 96), buffer=nl.sbuf,
                           dtype=src.dtype, name="acc")
        assert g.shape == (2, 3) and g.buffer is nl.sbuf
        assert g[0, :].is_data_representable  # a tile row is contiguous in the free dim
        assert not g[:, 0].is_data_representable  # two partition tiles: not one view
        assert not g.is_data_representable
        assert g[1, :].data.shape == (36, 96)  # clamped: 100 - 64 partitions
        assert g[0, :].data.storage.shape == (64, 6 * 32)  # full-capacity tiles
        s = nl.tiles(src, tile_shape=(64, 32))
        out = nl.ndarray(src.shape, src.dtype, buffer=nl.shared_hbm)
        o = nl.tiles(out, tile_shape=(64, 32))
        for i in range(2):
            nisa.dma_copy(dst=g[i, :].data, src=s[i, :].data)
            nisa.tensor_scalar(dst=g[i, :].data, data=g[i, :].data, op0=nl.add, operand0=1.0)
            nisa.dma_copy(dst=o[i, :].data, src=g[i, :].data)
        return out

    x = RNG.standard_normal((100, 96)).astype(np.float32)
    np.testing.assert_array_equal(run(kernel, x), x + 1)


def test_alloc_blocks_hbm_is_compact() -> None:
    def kernel(src):
        g = nl.alloc_blocks(tile_shape=(32, 32), block_shape=(1, 2), element_shape=(64, 96),
                            buffer=nl.shared_hbm, dtype=src.dtype)
        assert g.shape == (2, 2) and g.data.shape == (64, 96)
        nisa.dma_copy(dst=g.data, src=src)
        return g.data

    x = RNG.standard_normal((64, 96)).astype(np.float32)
    np.testing.assert_array_equal(run(kernel, x), x)


def test_stream_buffers_rotate_slots_and_clamp_the_last_step() -> None:
    seen = {}

    def kernel(src):
        g = nl.tiles(src, tile_shape=(128, 256))  # (3, 3) tiles, last column 88 wide
        bufs = nl.alloc_stream_buffers(g, buffer=nl.sbuf, dim=1, num_slots=2)
        seen["slots"] = bufs.num_slots
        names = [bufs[k][0].data.name for k in range(3)]
        seen["names"] = names
        seen["last"] = bufs[2].element_shape
        dst = nl.ndarray(src.shape, src.dtype, buffer=nl.shared_hbm)
        d = nl.tiles(dst, tile_shape=(128, 256))
        for k in range(g.shape[1]):
            for i in range(g.shape[0]):
                nisa.dma_copy(dst=bufs[k][i].data, src=g[i, k].data)
                nisa.dma_copy(dst=d[i, k].data, src=bufs[k][i].data)
        return dst

    x = RNG.standard_normal((300, 600)).astype(np.float32)
    np.testing.assert_array_equal(run(kernel, x), x)
    assert seen["slots"] == 2
    assert seen["names"][0] == seen["names"][2] != seen["names"][1]
    assert seen["last"] == (300, 88)


def test_stream_buffers_over_a_tensor_and_transposed_slots() -> None:
    def kernel(src):
        bufs = nl.alloc_stream_buffers(src, buffer=nl.sbuf, dim=0, num_slots=3)
        assert bufs[4].shape == (64, 32) and bufs[4].name == bufs[1].name
        tr = nl.alloc_stream_buffers(src, buffer=nl.sbuf, dim=0, transpose_axes=(1, 0))
        assert tr[0].shape == (32, 64)
        out = nl.ndarray(src.shape, src.dtype, buffer=nl.shared_hbm)
        for k in range(src.shape[0]):
            nisa.dma_copy(dst=bufs[k], src=src[k])
            nisa.dma_copy(dst=out[k], src=bufs[k])
        return out

    x = RNG.standard_normal((5, 64, 32)).astype(np.float32)
    np.testing.assert_array_equal(run(kernel, x), x)


def _raises(body, match: str) -> None:
    def kernel(src):
        body(src)
        return src

    with pytest.raises(nki.NkiError, match=match) as info:
        run(kernel, np.zeros((4, 128, 64), np.float32))
    assert "test_grids.py" in str(info.value)  # reported at the kernel's line


G = (32, 16)  # over the (4, 128, 64) source: a (4, 4, 4) grid


@pytest.mark.parametrize(("body", "match"), [
    (lambda s: nl.tiles(s), "tile_shape is required"),
    (lambda s: nl.tiles(s, tile_shape=(128,)), "at least 2 dimensions"),
    (lambda s: nl.tiles(s, tile_shape=[128, 256]), "tuple of Python ints"),
    (lambda s: nl.tiles(s, tile_shape=(128, 0)), "must be positive"),
    (lambda s: nl.tiles(s, tile_shape=(1, 1, 1, 1)), "more dimensions"),
    (lambda s: nl.tiles(np.zeros(3), tile_shape=G), "NkiTensor or a grid"),
    (lambda s: nl.blocks(s, tile_shape=G, block_shape=(2,)), "rank of"),
    (lambda s: nl.tiles(s, tile_shape=G)[0, 0:2:-1], "positive step"),
    (lambda s: nl.tiles(s, tile_shape=G)[0, 0, 0, 0], "4 indices"),
    (lambda s: nl.tiles(s, tile_shape=G)[5, 0], "out of range"),
    (lambda s: nl.tiles(s, tile_shape=G)[0, 4:], "no coordinates"),
    (lambda s: nl.tiles(s, tile_shape=G)[nl.ndarray((1, 1), nl.int32), 0], "runtime grid"),
    (lambda s: nl.tiles(s, tile_shape=G)[0, :, ::2].data, "gaps"),
    (lambda s: nl.tiles(nl.tiles(s, tile_shape=G)[0, :, ::2], tile_shape=(8, 8)), "gaps"),
    (lambda s: nl.blocks(nl.tiles(s, tile_shape=G)[0, ::2], block_shape=(1, 1)), "regroup"),
    (lambda s: nl.NkiTileGrid(), "not constructed directly"),
    (lambda s: nl.alloc_tiles(tile_shape=(256, 64), element_shape=(256, 64),
                              buffer=nl.sbuf, dtype=nl.float32), "pmax"),
    (lambda s: nl.alloc_tiles(tile_shape=(64, 64), element_shape=(64,), buffer=nl.sbuf,
                              dtype=nl.float32), "more dimensions"),
    (lambda s: nl.alloc_tiles(tile_shape=(64, 64), element_shape=(64, 64), buffer="l2",
                              dtype=nl.float32), "buffer must be"),
    (lambda s: nl.alloc_stream_buffers(s, buffer=nl.hbm, dim=0), "nl.sbuf or nl.psum"),
    (lambda s: nl.alloc_stream_buffers(s, buffer=nl.sbuf, dim=0, num_slots=0), "positive"),
    (lambda s: nl.alloc_stream_buffers(s, buffer=nl.sbuf, dim=3), "not a coordinate"),
    (lambda s: nl.alloc_stream_buffers(s, buffer=nl.sbuf, dim=0, transpose_axes=(0,)),
     "supported order"),
    (lambda s: nl.alloc_stream_buffers(s, buffer=nl.sbuf, dim=0)[-1], "negative"),
    (lambda s: nl.alloc_stream_buffers(s, buffer=nl.sbuf, dim=0)[4], "outside"),
    (lambda s: nl.alloc_stream_buffers(s, buffer=nl.sbuf, dim=0)[np.int32(1)], "Python int"),
    (lambda s: list(nl.alloc_stream_buffers(s, buffer=nl.sbuf, dim=0)), "iteration"),
    (lambda s: len(nl.alloc_stream_buffers(s, buffer=nl.sbuf, dim=0)), "len"),
])
def test_grid_rule_errors(body, match) -> None:
    _raises(body, match)


def test_stream_buffer_slot_over_capacity_is_refused() -> None:
    # each step is a (256, 64) slab: 256 partitions do not fit an SBUF slot
    _raises(lambda s: nl.alloc_stream_buffers(s.reshape((2, 256, 64)), buffer=nl.sbuf,
                                              dim=0), "partitions")
