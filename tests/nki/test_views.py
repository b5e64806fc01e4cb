"""Tensor views behave like numpy views (with NKI's on-chip rules), and bounds are checked.

Views are built directly on a `Storage` holding `arange` values, so every element is
distinct and `view.numpy()` can be compared with numpy's own indexing of the same data.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tessera.nki.language as nl
from tessera.nki import dtypes as dt
from tessera.nki.buffers import Buffer
from tessera.nki.errors import KernelUsageError, OutOfBoundsError
from tessera.nki.indexing import DynSlice
from tessera.nki.tensor import NkiTensor, Storage

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make(shape: tuple[int, ...], buffer: Buffer = Buffer.HBM) -> tuple[NkiTensor, np.ndarray]:
    """A tensor whose element i holds i, and the numpy array with the same contents."""
    size = int(np.prod(shape))
    data = np.arange(size, dtype=np.float32)
    tensor = NkiTensor.whole(Storage("t", buffer, tuple(shape), dt.float32, data.copy()))
    return tensor, data.reshape(shape)


# ------------------------------------------------------------------ key generation
def _item(draw: st.DrawFn, size: int) -> object:
    kind = draw(st.sampled_from(["int", "slice", "neg_slice", "ds", "all"]))
    if kind == "int":
        return draw(st.integers(-size, size - 1))
    if kind == "slice":
        start = draw(st.none() | st.integers(-size, size))
        stop = draw(st.none() | st.integers(-size, size))
        return slice(start, stop, draw(st.none() | st.integers(1, 3)))
    if kind == "neg_slice":
        start = draw(st.none() | st.integers(-size, size - 1))
        stop = draw(st.none() | st.integers(-size - 1, size - 1))
        return slice(start, stop, draw(st.integers(-3, -1)))
    if kind == "ds":
        start = draw(st.integers(0, size))
        return nl.ds(start, draw(st.integers(0, size - start)))
    return slice(None)


@st.composite
def keys(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[object, ...]:
    """An index for `shape`: per-dim items, maybe shortened, maybe with one `...`."""
    items = [_item(draw, s) for s in shape]
    form = draw(st.sampled_from(["full", "prefix", "ellipsis"]))
    if form == "prefix":
        items = items[:draw(st.integers(0, len(items)))]
    elif form == "ellipsis":
        lo = draw(st.integers(0, len(items)))
        hi = draw(st.integers(lo, len(items)))
        items = items[:lo] + [Ellipsis] + items[hi:]
    return tuple(items)


def _expand(key: tuple[object, ...], ndim: int) -> list[object]:
    """Per-dimension items (the `...` replaced by full slices)."""
    out: list[object] = []
    explicit = sum(1 for k in key if k is not Ellipsis)
    for k in key:
        if k is Ellipsis:
            out.extend([slice(None)] * (ndim - explicit))
        else:
            out.append(k)
    return out + [slice(None)] * (ndim - len(out))


def numpy_reference(ref: np.ndarray, key: tuple[object, ...], on_chip: bool) -> np.ndarray:
    """numpy's result for `key`, with NKI's on-chip rules applied."""
    items = _expand(key, ref.ndim)
    np_key: list[object] = []
    for dim, k in enumerate(items):
        if isinstance(k, DynSlice):
            np_key.append(slice(k.start, k.start + k.size))
        elif isinstance(k, int) and on_chip and dim == 0:
            i = k % ref.shape[0]
            np_key.append(slice(i, i + 1))  # the partition dim survives an int index
        else:
            np_key.append(k)
    out = ref[(*np_key, Ellipsis)]  # the Ellipsis keeps a 0-d result a view
    if on_chip and out.ndim < 2:
        out = out[..., None]  # on-chip views never drop below 2-D
    return out


def assert_view(view: NkiTensor, expected: np.ndarray) -> None:
    assert view.shape == expected.shape
    np.testing.assert_array_equal(view.numpy(), expected)


shapes_hbm = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple)
shapes_chip = st.tuples(st.integers(1, 8), st.lists(st.integers(1, 6), min_size=1,
                                                     max_size=3)).map(lambda t: (t[0], *t[1]))


# ------------------------------------------------------------------ indexing properties
@FAST
@given(data=st.data(), shape=shapes_hbm)
def test_hbm_indexing_matches_numpy(data: st.DataObject, shape: tuple[int, ...]) -> None:
    t, ref = make(shape)
    key = data.draw(keys(shape))
    assert_view(t[key], numpy_reference(ref, key, on_chip=False))


@FAST
@given(data=st.data(), shape=shapes_chip, buffer=st.sampled_from([Buffer.SBUF, Buffer.PSUM]))
def test_on_chip_indexing_matches_numpy(data: st.DataObject, shape: tuple[int, ...],
                                        buffer: Buffer) -> None:
    t, ref = make(shape, buffer)
    key = data.draw(keys(shape))
    view = t[key]
    expected = numpy_reference(ref, key, on_chip=True)
    assert_view(view, expected)
    assert view.ndim >= 2


@FAST
@given(data=st.data(), shape=shapes_hbm, on_chip=st.booleans())
def test_two_successive_indexings_compose(data: st.DataObject, shape: tuple[int, ...],
                                          on_chip: bool) -> None:
    if on_chip and len(shape) < 2:
        shape = (*shape, 3)
    t, ref = make(shape, Buffer.SBUF if on_chip else Buffer.HBM)
    k1 = data.draw(keys(shape))
    first = t[k1]
    ref1 = numpy_reference(ref, k1, on_chip)
    if 0 in first.shape or first.ndim == 0:
        return
    k2 = data.draw(keys(first.shape))
    assert_view(first[k2], numpy_reference(ref1, k2, on_chip))


@FAST
@given(data=st.data(), shape=shapes_hbm)
def test_write_through_a_view_updates_the_same_elements(data: st.DataObject,
                                                        shape: tuple[int, ...]) -> None:
    t, ref = make(shape)
    key = data.draw(keys(shape))
    view = t[key]
    expected = ref.copy()
    ref_view = numpy_reference(expected, key, on_chip=False)
    values = -1.0 - np.arange(ref_view.size, dtype=np.float32).reshape(ref_view.shape)
    view.write(values)
    ref_view[...] = values
    np.testing.assert_array_equal(t.numpy(), expected)


def test_on_chip_int_indices_keep_two_dimensions() -> None:
    t, ref = make((8, 4, 5), Buffer.SBUF)
    assert t[3].shape == (1, 4, 5)
    assert t[:, 2, 1].shape == (8, 1)
    assert t[-1, -1, -1].shape == (1, 1)
    assert t[2, 1].shape == (1, 5)
    np.testing.assert_array_equal(t[:, 2, 1].numpy()[:, 0], ref[:, 2, 1])
    np.testing.assert_array_equal(t[-1, -1, -1].numpy(), [[ref[-1, -1, -1]]])
    h, href = make((3, 4, 5))  # HBM: ints drop dimensions, down to 0-d
    assert h[1, 2].shape == (5,) and h[1, 2, 3].shape == ()
    assert float(h[1, 2, 3].numpy()) == href[1, 2, 3]


# ------------------------------------------------------------------ bounds
@pytest.mark.parametrize("key", [
    (4, 0), (-5, 0), (0, 6), (0, -7), (slice(0, 5), 0), (slice(-6, None), 0),
    (slice(4, None, -1), 0), (nl.ds(2, 3), 0), (nl.ds(-1, 2), 0), (0, nl.ds(5, 2)),
    (0, 0, 0),
])
def test_out_of_bounds_index_raises(key: tuple[object, ...]) -> None:
    t, _ = make((4, 6))
    with pytest.raises(OutOfBoundsError):
        t[key]


def test_out_of_bounds_on_chip_index_raises() -> None:
    t, _ = make((4, 6), Buffer.SBUF)
    with pytest.raises(OutOfBoundsError):
        t[:, 6]
    with pytest.raises(OutOfBoundsError):
        t[4]


def test_ap_out_of_storage_raises() -> None:
    """Raw patterns are checked where they are used (access, values), not when written."""
    t, _ = make((4, 6))
    with pytest.raises(OutOfBoundsError):
        t.ap([[6, 4], [1, 6]], offset=1).access()
    with pytest.raises(OutOfBoundsError):
        t.ap([[-1, 2]], offset=0).numpy()


def test_on_chip_view_leaving_the_partition_row_raises() -> None:
    t, _ = make((4, 8), Buffer.SBUF)
    with pytest.raises(OutOfBoundsError, match="partition row"):
        t.ap([[8, 3], [1, 9]]).access()  # nine elements of an eight-element row
    with pytest.raises(OutOfBoundsError, match="partition row"):
        t.ap([[8, 2], [1, 8]], offset=4).access()  # starts mid-row, runs into the next
    with pytest.raises(OutOfBoundsError, match="whole partitions"):
        t.ap([[4, 2], [1, 4]]).access()  # dim 0 must step over whole partition rows
    # the same patterns are legal on HBM, where there are no partitions
    h, ref = make((4, 8))
    np.testing.assert_array_equal(h.ap([[8, 2], [1, 8]], offset=4).numpy(),
                                  ref.reshape(-1)[4:20].reshape(2, 8))


# ------------------------------------------------------------------ view methods
def _factor(draw: st.DrawFn, n: int, parts: int) -> tuple[int, ...]:
    """A random shape with `parts` dims and product n."""
    dims = []
    for _ in range(parts - 1):
        divisors = [d for d in range(1, n + 1) if n % d == 0]
        d = draw(st.sampled_from(divisors))
        dims.append(d)
        n //= d
    return (*dims, n)


@FAST
@given(data=st.data(), shape=shapes_hbm)
def test_reshape_of_a_strided_view_matches_numpy(data: st.DataObject,
                                                 shape: tuple[int, ...]) -> None:
    t, ref = make(shape)
    key = data.draw(keys(shape))
    view = t[key]
    ref_view = numpy_reference(ref, key, on_chip=False)
    if view.size == 0:
        return
    new_shape = _factor(data.draw, view.size, data.draw(st.integers(1, 4)))
    try:
        expected = np.reshape(ref_view, new_shape, copy=False)
    except ValueError:
        with pytest.raises(KernelUsageError, match="without a copy"):
            view.reshape(new_shape)
        return
    assert_view(view.reshape(new_shape), expected)


@FAST
@given(data=st.data(), shape=shapes_chip)
def test_on_chip_reshape_keeps_partitions(data: st.DataObject, shape: tuple[int, ...]) -> None:
    t, ref = make(shape, Buffer.SBUF)
    free = int(np.prod(shape[1:]))
    new_shape = (shape[0], *_factor(data.draw, free, data.draw(st.integers(1, 3))))
    assert_view(t.reshape(new_shape), ref.reshape(new_shape))
    assert_view(t.reshape([shape[0], -1]), ref.reshape(shape[0], -1))
    if shape[0] > 1:
        with pytest.raises(KernelUsageError, match="partition"):
            t.reshape((1, shape[0] * free))


@FAST
@given(data=st.data(), shape=shapes_hbm)
def test_slice_select_permute_match_numpy(data: st.DataObject, shape: tuple[int, ...]) -> None:
    t, ref = make(shape)
    n = len(shape)
    dim = data.draw(st.integers(-n, n - 1))
    size = shape[dim]
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start, size))
    step = data.draw(st.integers(1, 3))
    key = [slice(None)] * n
    key[dim] = slice(start, end, step)
    assert_view(t.slice(dim, start, end, step), ref[tuple(key)])
    index = data.draw(st.integers(-size, size - 1))
    assert_view(t.select(dim, index), np.take(ref, index, axis=dim))
    order = data.draw(st.permutations(range(n)))
    assert_view(t.permute(tuple(order)), np.transpose(ref, order))


@FAST
@given(data=st.data(), shape=shapes_hbm)
def test_expand_squeeze_broadcast_match_numpy(data: st.DataObject,
                                              shape: tuple[int, ...]) -> None:
    t, ref = make(shape)
    n = len(shape)
    pos = data.draw(st.integers(-n - 1, n))
    expanded = t.expand_dim(pos)
    ref_expanded = np.expand_dims(ref, pos)
    assert_view(expanded, ref_expanded)
    assert_view(expanded.squeeze_dim(pos), ref)
    size = data.draw(st.integers(1, 5))
    target = list(ref_expanded.shape)
    target[pos] = size
    assert_view(expanded.broadcast(pos, size), np.broadcast_to(ref_expanded, target))


@FAST
@given(data=st.data(), shape=st.lists(st.integers(1, 5), min_size=2, max_size=4).map(tuple))
def test_flatten_and_reshape_dim_match_numpy(data: st.DataObject,
                                             shape: tuple[int, ...]) -> None:
    t, ref = make(shape)
    n = len(shape)
    s = data.draw(st.integers(0, n - 1))
    e = data.draw(st.integers(s, n - 1))
    flat_shape = (*shape[:s], int(np.prod(shape[s:e + 1])), *shape[e + 1:])
    flat = t.flatten_dims(s, e)
    assert_view(flat, ref.reshape(flat_shape))
    parts = _factor(data.draw, flat_shape[s], data.draw(st.integers(1, 3)))
    assert_view(flat.reshape_dim(s, parts), ref.reshape(*shape[:s], *parts, *shape[e + 1:]))


@FAST
@given(data=st.data(), shape=shapes_hbm, on_chip=st.booleans())
def test_ap_matches_index_arithmetic(data: st.DataObject, shape: tuple[int, ...],
                                     on_chip: bool) -> None:
    if on_chip and len(shape) < 2:
        shape = (*shape, 4)
    t, ref = make(shape, Buffer.SBUF if on_chip else Buffer.HBM)
    flat = ref.reshape(-1)
    if on_chip:
        # rows of whole partitions, then a window inside each row
        row = int(np.prod(shape[1:]))
        parts = data.draw(st.integers(1, shape[0]))
        p0 = data.draw(st.integers(0, shape[0] - parts))
        step = data.draw(st.integers(1, 3))
        count = data.draw(st.integers(1, (row - 1) // step + 1))
        col = data.draw(st.integers(0, row - 1 - step * (count - 1)))
        pattern = [[row, parts], [step, count]]
        offset = p0 * row + col
    else:
        count0 = data.draw(st.integers(1, 4))
        count1 = data.draw(st.integers(1, 4))
        s0 = data.draw(st.integers(-3, 3))
        s1 = data.draw(st.integers(-3, 3))
        pattern = [[s0, count0], [s1, count1]]
        lo = min(0, s0 * (count0 - 1)) + min(0, s1 * (count1 - 1))
        hi = max(0, s0 * (count0 - 1)) + max(0, s1 * (count1 - 1))
        if hi - lo >= flat.size:
            with pytest.raises(OutOfBoundsError):
                t.ap(pattern, offset=-lo).access()  # checked where it is used
            return
        offset = data.draw(st.integers(-lo, flat.size - 1 - hi))
    index = offset + sum(
        np.arange(c).reshape([-1 if k == i else 1 for k in range(len(pattern))]) * s
        for i, (s, c) in enumerate(pattern))
    view = t.ap(pattern, offset=offset)
    assert_view(view, flat[index])
    assert view.get_pattern() == pattern


def test_view_dtype_reinterprets_bytes() -> None:
    t, ref = make((4, 6), Buffer.SBUF)
    as_int = t.view(nl.int32)
    assert as_int.dtype is dt.int32
    assert_view(as_int, ref.view(np.int32))
    halves = t.view(nl.bfloat16)
    assert halves.shape == (4, 12)
    np.testing.assert_array_equal(halves.numpy().view(np.uint16),
                                  ref.view(np.uint16).reshape(4, 12))
    with pytest.raises(KernelUsageError):
        t[1:].view(nl.int32)


def test_on_chip_view_methods_cannot_move_the_partition_dim() -> None:
    t, _ = make((4, 2, 3), Buffer.SBUF)
    with pytest.raises(KernelUsageError):
        t.permute((1, 0, 2))
    with pytest.raises(KernelUsageError):
        t.select(0, 1)
    with pytest.raises(KernelUsageError):
        t.expand_dim(0)
    with pytest.raises(KernelUsageError):
        t[0].broadcast(0, 4)
    assert t.permute((0, 2, 1)).shape == (4, 3, 2)


def test_on_chip_select_keeps_two_dimensions() -> None:
    t, ref = make((4, 6), Buffer.SBUF)
    assert_view(t.select(1, -2), ref[:, -2:-1])
    assert_view(t.select(-1, 0), ref[:, 0:1])


def test_view_method_errors() -> None:
    t, _ = make((4, 6))
    with pytest.raises(OutOfBoundsError):
        t.select(1, 6)
    with pytest.raises(OutOfBoundsError):
        t.slice(2, 0, 1)
    with pytest.raises(KernelUsageError):
        t.broadcast(0, 3)  # not a size-1 dim
    with pytest.raises(KernelUsageError):
        t.squeeze_dim(1)
    with pytest.raises(KernelUsageError):
        t.permute((0, 0))
    with pytest.raises(KernelUsageError):
        t.reshape((5, 5))
    with pytest.raises(KernelUsageError):
        t.reshape((-2, -12))
    with pytest.raises(KernelUsageError):
        t.reshape((-1, -1))
    with pytest.raises(KernelUsageError):
        t.ap([[1, 2, 3]])
