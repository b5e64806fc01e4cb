"""The weight-stationary matmul body for skinny M (M <= 128: decode, small batches).

Napkin math (16 x 4096 x 4096 bf16, trn1): B is 32 MiB and must stream from HBM once,
~82 us at the core's ~410 GB/s. The Tensor-engine cost rule is
max(MM_INIT, min(64, N_stationary), N_moving) cycles per instruction:
- A^T stationary ([K, M=16]) x B moving ([K, 512]): 512 cycles per 128x16x512, 256
  instructions = 131k cycles = 47 us at 2.8 GHz, but only 12.5% of the PE array;
- B stationary ([K, 128]) x A^T moving ([K, M=16]): max(64, 64, 16) = 64 cycles per
  128x128x16, 1024 instructions = 65.5k cycles = 23 us.
The second is 2x cheaper for any M <= 64 and never worse up to M = 128, so B tiles are
stationary and the result accumulates transposed, C^T [N, M], in PSUM (all of N for one K
sweep fits in a few banks), then goes back through a few Tensor-engine transposes.

B streams in large contiguous DMAs: when B is stored [K, N], one DMA moves R = tn * 128
consecutive K rows (a single HBM range when the N block is all of N), and partition p takes
rows p*tn .. p*tn+tn-1 of it, so each partition's share is one run too. The K row of
(partition p, chunk t) in a DMA starting at chunk t0 is therefore t0*128 + p*tn + (t - t0);
A^T is built with the same row order. When B is given transposed ([N, K], a Linear weight)
the DMA transposer streams whole-K panels of B^T instead (rows of B^T are contiguous).
"""

from __future__ import annotations

from tessera.kernels.hardware import moving_fmax, pmax, psum_bank_bytes, stationary_fmax
from tessera.kernels.matmul_parts import (
    ContractionStep,
    MatmulPlan,
    chunks,
    evacuate,
    load_bias,
    load_panel,
    matmul_step,
    spans,
    steps,
    zero_pad,
)
from tessera.nki import isa as nisa
from tessera.nki import language as nl

_K_OUTER_DMA_BYTES = 32 * 1024  # per partition per whole-row B DMA in `_k_outer`


def skinny_body(out, a, b, bias, plan: MatmulPlan) -> None:
    """out[M, N] = epilogue(A @ B) for M <= 128, B tiles stationary (see module doc).

    B stored [K, N]: per N block the K chunks of B stream in, each multiplying into the
    C^T PSUM tiles; the last chunk runs tile by tile so the drain of finished tiles (PSUM
    copy, transposes back, epilogue, store) overlaps the remaining matmuls.
    B stored [N, K]: whole-K panels of up to 512 rows of B^T stream in instead (the DMA
    transposer reads contiguous rows of K), each completing its tiles, drained likewise.
    """
    m = plan.m
    full, rest = divmod(plan.k, pmax())
    pmajor = plan.b_k_major  # "partition-major" K rows within each DMA, else t*128 + p
    per = max(1, plan.block_k // pmax())
    n_blocks = spans(plan.n, plan.block_n)
    k_outer = pmajor and len(n_blocks) > 1 and _k_outer_fits(plan)
    if k_outer:  # whole rows of B per DMA: keep them near the usual DMA size
        per = max(1, min(per, _K_OUTER_DMA_BYTES // (plan.n * b.dtype.itemsize)))
    per += per % 2 if plan.double_row else 0
    specs = tuple(spans(full, per)) if pmajor else ((0, full),) if full else ()
    at = _a_transposed(a, plan, specs, rest)
    per_bank = max(1, moving_fmax() // m)  # C^T tiles [128, M] fp32 per PSUM bank
    if k_outer:
        _k_outer(out, b, bias, plan, at, specs, per_bank)
        return
    parity = 0
    for n0, nw in n_blocks:
        tiles = spans(nw, stationary_fmax())
        banks = [nl.ndarray((pmax(), len(tiles[g:g + per_bank]) * m), nl.float32,
                            buffer=nl.psum) for g in range(0, len(tiles), per_bank)]
        last = _k_stream(b, plan, at, banks, per_bank, tiles, specs, n0, nw) if pmajor else None
        bias_row = None if bias is None else load_bias(bias, n0, nw, m)
        pending = None
        for q0, qn in _groups(len(tiles), per_bank):
            c_lo = tiles[q0][0]
            if pmajor:
                stat, work, base = *last, 0
            else:  # a whole-K panel of B^T for this group's columns
                width = tiles[q0 + qn - 1][0] + tiles[q0 + qn - 1][1] - c_lo
                stat = nl.ndarray((pmax(), chunks(plan.k, plan.double_row), width), b.dtype,
                                  buffer=nl.sbuf)
                zero_pad(stat, plan.k, slice(0, width), plan.double_row)
                load_panel(stat, b, False, 0, plan.k, n0 + c_lo, width)
                work, base = tuple((st, st.j, st.j) for st in steps(plan.k, plan.double_row)), c_lo
            for q in range(q0, q0 + qn):
                c0, cw = tiles[q]
                for step, sj, mj in work:
                    _mm(banks, per_bank, m, q, cw, stat, at, step,
                        slice(c0 - base, c0 - base + cw), sj, mj)
            staged = _stage(banks, per_bank, m, tiles, q0, qn, parity)
            parity += 2
            if pending is not None:
                parity = _finish(out, bias_row, plan, tiles, n0, *pending, parity)
            pending = (q0, qn, staged)
        parity = _finish(out, bias_row, plan, tiles, n0, *pending, parity)


def _k_outer_fits(plan: MatmulPlan) -> bool:
    """An fp32 C^T accumulator for all of N plus a few whole-row B DMAs fit in SBUF."""
    acc = -(-plan.n // pmax()) * plan.m * 4
    rows = 3 * plan.n * plan.in_dtype.itemsize
    return acc + max(rows, 3 * _K_OUTER_DMA_BYTES) <= 0.6 * nl.tile_size.sbuf_fmax_bytes


def _k_outer(out, b, bias, plan: MatmulPlan, at, specs, per_bank: int) -> None:
    """C^T for all of N does not fit in PSUM (M * N > 4 banks): stream B in whole rows
    anyway (one contiguous HBM range per DMA, where N-block DMAs would gather rows), sweep
    N in PSUM-sized blocks per DMA and add each sweep into an fp32 SBUF accumulator."""
    m, rest = plan.m, plan.k % pmax()
    tiles = spans(plan.n, stationary_fmax())
    acc = nl.ndarray((pmax(), len(tiles) * m), nl.float32, buffer=nl.sbuf)
    sweep = 4 * per_bank
    pieces = list(specs) + ([None] if rest else [])
    parity = 0
    for i, spec in enumerate(pieces):
        stat, work = _b_piece(b, plan, spec, 0, plan.n)
        for g0, gn in spans(len(tiles), sweep):
            banks = [nl.ndarray((pmax(), min(per_bank, gn - j) * m), nl.float32,
                                buffer=nl.psum) for j in range(0, gn, per_bank)]
            for step, sj, mj in work:
                for q in range(g0, g0 + gn):
                    c0, cw = tiles[q]
                    _mm(banks, per_bank, m, q - g0, cw, stat, at, step, slice(c0, c0 + cw),
                        sj, mj)
            for j, bank in enumerate(banks):
                q0 = g0 + j * per_bank
                qn = min(per_bank, g0 + gn - q0)
                _fold(acc[:, q0 * m:(q0 + qn) * m], bank, tiles[q0:q0 + qn], m, i == 0,
                      parity)
                parity += 1
    for q0, qn in _groups(len(tiles), per_bank):
        c_lo = tiles[q0][0]
        c_hi = tiles[q0 + qn - 1][0] + tiles[q0 + qn - 1][1]
        bias_row = None if bias is None else load_bias(bias, c_lo, c_hi - c_lo, m)
        parity = _finish(out, bias_row, plan, tiles, 0, q0, qn, acc[:, q0 * m:(q0 + qn) * m],
                         parity, bias_offset=c_lo)


def _fold(acc, bank, group, m: int, first: bool, parity: int) -> None:
    """acc (= or +=) bank for C^T tiles `group`; a ragged last tile only has cw rows."""
    whole = sum(1 for _, cw in group if cw == pmax())
    parts = [(slice(0, pmax()), slice(0, whole * m))] if whole else []
    if whole < len(group):
        parts.append((slice(0, group[-1][1]), slice(whole * m, len(group) * m)))
    for rows, cols in parts:
        dst, src = acc[rows, cols], bank[rows, cols]
        if first:
            evacuate(dst, src, None, None, parity)
        else:
            nisa.tensor_tensor(dst, dst, src, op=nl.add)


def _k_stream(b, plan: MatmulPlan, at, banks, per_bank: int, tiles, specs, n0: int,
              nw: int):
    """Stream B[:, n0:n0+nw] one DMA per (t0, tn) spec (tn*128 consecutive K rows) through
    the matmuls, all but the last piece; returns (last piece, its work)."""
    specs = list(specs) + ([None] if plan.k % pmax() else [])
    for i, spec in enumerate(specs):
        stat, work = _b_piece(b, plan, spec, n0, nw)
        if i + 1 == len(specs):
            return stat, work
        for step, sj, mj in work:
            for q, (c0, cw) in enumerate(tiles):
                _mm(banks, per_bank, plan.m, q, cw, stat, at, step, slice(c0, c0 + cw), sj, mj)
    raise AssertionError("unreachable: K >= 1 gives at least one chunk")


def _b_piece(b, plan: MatmulPlan, spec, n0: int, nw: int):
    """DMA one spec (t0, tn) of B[:, n0:n0+nw] (tn*128 consecutive K rows, partition p
    taking rows p*tn .. p*tn+tn-1), or the K % 128 leftover rows for spec None; returns
    (tile, ((step, stationary chunk, moving chunk), ...))."""
    full, rest = divmod(plan.k, pmax())
    if spec is None:
        stat = nl.ndarray((pmax(), 1, nw), b.dtype, buffer=nl.sbuf)
        nisa.dma_copy(stat[:rest, 0, :], b[full * pmax():plan.k, n0:n0 + nw])
        return stat, ((ContractionStep(0, rest, False), 0, full),)
    t0, tn = spec
    stat = nl.ndarray((pmax(), tn, nw), b.dtype, buffer=nl.sbuf)
    rows = b[t0 * pmax():(t0 + tn) * pmax(), n0:n0 + nw]
    nisa.dma_copy(stat, rows.reshape((pmax(), tn, nw)))
    pairs = tn // 2 if plan.double_row else 0
    work = [(ContractionStep(2 * u, pmax(), True), 2 * u, t0 + 2 * u) for u in range(pairs)]
    work += [(ContractionStep(j, pmax(), False), j, t0 + j) for j in range(2 * pairs, tn)]
    return stat, tuple(work)


def _mm(banks, per_bank: int, m: int, q: int, cw: int, stat, at, step: ContractionStep,
        cols: slice, sj: int, mj: int) -> None:
    s = q % per_bank
    matmul_step(banks[q // per_bank][:cw, s * m:(s + 1) * m], stat, at, step, cols,
                slice(0, m), sj, mj)


def _groups(n_tiles: int, per_bank: int) -> list[tuple[int, int]]:
    """Runs of up to 4 C^T tiles (512 output columns) that lie in one PSUM bank."""
    per_psum = moving_fmax() // stationary_fmax()
    out = []
    for b0 in range(0, n_tiles, per_bank):
        bn = min(per_bank, n_tiles - b0)
        out += [(b0 + g0, g) for g0, g in spans(bn, per_psum)]
    return out


def _stage(banks, per_bank: int, m: int, tiles, q0: int, qn: int, parity: int):
    """Copy C^T tiles q0..q0+qn from PSUM to an fp32 SBUF tile (the transpose source)."""
    bank, s0 = banks[q0 // per_bank], q0 % per_bank
    ct = nl.ndarray((pmax(), qn * m), nl.float32, buffer=nl.sbuf)
    whole = sum(1 for _, cw in tiles[q0:q0 + qn] if cw == pmax())
    if whole:
        evacuate(ct[:, :whole * m], bank[:, s0 * m:(s0 + whole) * m], None, None, parity)
    if whole < qn:  # the block's last, ragged tile has fewer rows
        cw = tiles[q0 + qn - 1][1]
        evacuate(ct[:cw, whole * m:], bank[:cw, (s0 + whole) * m:(s0 + qn) * m], None,
                 None, parity + 1)
    return ct


def _finish(out, bias_row, plan: MatmulPlan, tiles, n0: int, q0: int, qn: int, ct,
            parity: int, bias_offset: int = 0) -> int:
    """Transpose staged C^T tiles back to C rows, apply the epilogue and store them."""
    m = plan.m
    c_lo = tiles[q0][0]
    c_hi = tiles[q0 + qn - 1][0] + tiles[q0 + qn - 1][1]
    pc = nl.ndarray((m, c_hi - c_lo), nl.float32, buffer=nl.psum)
    for i in range(qn):
        c0, cw = tiles[q0 + i]
        nisa.nc_transpose(pc[:, c0 - c_lo:c0 - c_lo + cw], ct[:cw, i * m:(i + 1) * m])
    out_sb = nl.ndarray((m, c_hi - c_lo), plan.out_dtype, buffer=nl.sbuf)
    bias_cols = slice(c_lo - bias_offset, c_hi - bias_offset)
    evacuate(out_sb, pc, None if bias_row is None else bias_row[:, bias_cols],
             plan.activation, parity)
    nisa.dma_copy(out[:, n0 + c_lo:n0 + c_hi], out_sb)
    return parity + 1


def _a_transposed(a, plan: MatmulPlan, specs, rest: int):
    """A^T in SBUF, [128, chunks, M], in the K-row order of the B chunks: for a spec
    (t0, tn) of the partition-major order, chunk t0 + t holds rows t0*128 + p*tn + t (the
    t-major order is the single spec (0, full) with tn read as 1, see `_rows`)."""
    m, k = plan.m, plan.k
    full = k // pmax()
    pmajor = plan.b_k_major
    n_chunks = full + (1 if rest else 0) if pmajor else chunks(k, plan.double_row)
    at = nl.ndarray((pmax(), n_chunks, m), a.dtype, buffer=nl.sbuf)
    if not pmajor:
        zero_pad(at, k, slice(0, m), plan.double_row)
    if plan.a_k_major:  # a is [K, M]
        for t0, tn in specs:
            head = a[t0 * pmax():(t0 + tn) * pmax()]
            src = (head.reshape((pmax(), tn, m)) if pmajor
                   else head.reshape((tn, pmax(), m)).permute((1, 0, 2)))
            nisa.dma_copy(at[:, t0:t0 + tn, :], src)
        if rest:
            nisa.dma_copy(at[:rest, full, :], a[full * pmax():k, :])
        return at
    rows = nl.ndarray((m, k), a.dtype, buffer=nl.sbuf)
    # M partitions keep only ceil(M / 8) DMA engines busy: split by columns to use all 16
    pieces = max(1, min(16 // -(-m // 8), k * a.dtype.itemsize // 512))
    for c0, cw in spans(k, -(-k // pieces)):
        nisa.dma_copy(rows[:, c0:c0 + cw], a[:, c0:c0 + cw])
    sources = [_rows(rows, t0, tn, t, pmajor) for t0, tn in specs for t in range(tn)]
    group = max(1, psum_bank_bytes() // (m * a.dtype.itemsize))
    for g0, g in spans(full, group):
        ps = nl.ndarray((pmax(), g, m), a.dtype, buffer=nl.psum)
        for i in range(g):
            nisa.nc_transpose(ps[:, i, :], sources[g0 + i])
        nisa.tensor_copy(at[:, g0:g0 + g, :], ps)
    if rest:
        ps = nl.ndarray((rest, m), a.dtype, buffer=nl.psum)
        nisa.nc_transpose(ps, rows[:, full * pmax():k])
        nisa.tensor_copy(at[:rest, full, :], ps)
    return at


def _rows(rows, t0: int, tn: int, t: int, pmajor: bool):
    """The 128 columns of A (rows of A^T) that chunk t0 + t of a spec holds."""
    if pmajor:
        return rows[:, t0 * pmax() + t:(t0 + tn) * pmax():tn]
    return rows[:, (t0 + t) * pmax():(t0 + t + 1) * pmax()]
