"""`nl.rand`, `nl.random_seed`, `nl.dropout`: random numbers in kernels.

Each follows its page of the NKI language reference and issues real instructions on the
Vector engine, whose per-lane XORWOW generator they share with nisa.rng / rand2 / dropout
(`tessera.nki.isa._xorwow`; the values are not the hardware's):
- `rand(shape, dtype, buffer=sbuf, name='')`: a new tensor of uniform values in [0, 1),
  one `rng` pass (an HBM tensor is filled through an SBUF tile and a dma_copy);
- `random_seed(seed)`: seeds the generator from a [1, 1] 32-bit tile (one `set_rng_seed`),
  so the same seed gives the same following `rand` / `dropout` values;
- `dropout(x, rate, dtype=None)`: a new tile with each element of x zeroed with probability
  `rate` (a constant or a [P, 1] tile); kept values are not rescaled (one `dropout`, plus a
  `tensor_copy` when `dtype` differs from x's).
"""

from __future__ import annotations

from tessera.nki import dtypes as dt
from tessera.nki.buffers import Buffer
from tessera.nki.creation import new_tensor
from tessera.nki.errors import BufferKindError, KernelUsageError
from tessera.nki.isa.dma import dma_copy
from tessera.nki.isa.random import apply_dropout, fill_uniform, seed_vector
from tessera.nki.isa.vector import tensor_copy
from tessera.nki.runtime import current, kernel_api
from tessera.nki.tensor import NkiTensor

__all__ = ["dropout", "rand", "random_seed"]


@kernel_api
def rand(shape: object, dtype: object = dt.float32, buffer: object = Buffer.SBUF,
         name: str = "") -> NkiTensor:
    """A new tensor of `shape` and float `dtype` filled with uniform values in [0, 1)."""
    ctx = current()
    out = new_tensor(ctx, shape, dtype, buffer, name or None)
    if out.buffer.on_chip:
        fill_uniform(ctx, out, "nl.rand")
        return out
    tile = new_tensor(ctx, out.shape, out.dtype, Buffer.SBUF, None)
    fill_uniform(ctx, tile, "nl.rand")
    dma_copy(out, tile)
    return out


@kernel_api
def random_seed(seed: NkiTensor) -> None:
    """Seed the random numbers of the following `rand` / `dropout` calls from a [1, 1]
    32-bit tensor in SBUF or PSUM."""
    seed_vector(current(), seed, "seed", "nl.random_seed")


@kernel_api
def dropout(x: NkiTensor, rate: object, dtype: object = None) -> NkiTensor:
    """A new SBUF tile: x with each element zeroed with probability `rate` (a constant in
    [0, 1] or a [P, 1] tile of per-partition rates), cast to `dtype` (default x's)."""
    op = "nl.dropout"
    ctx = current()
    if not isinstance(x, NkiTensor):
        raise KernelUsageError(f"{op}: x must be a tile, got {type(x).__name__}")
    if not x.buffer.on_chip:
        raise BufferKindError(f"{op}: x {x.name}{list(x.shape)} is in {x.buffer.value}; it "
                              "must be a tile in SBUF or PSUM (load it with nl.load)")
    out = new_tensor(ctx, x.shape, x.dtype, Buffer.SBUF, None)
    apply_dropout(ctx, out, x, rate, op)
    want = x.dtype if dtype is None else dt.to_dtype(dtype)
    if want == x.dtype:
        return out
    cast = new_tensor(ctx, x.shape, want, Buffer.SBUF, None)
    tensor_copy(cast, out)
    return cast
