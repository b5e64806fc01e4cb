"""Building blocks of the matmul kernels: the plan, operand loaders and the PSUM epilogue.

Vocabulary. The Tensor engine computes dst[M, N] = stationary[K, M]^T @ moving[K, N],
contracting over partitions, so both operands must reach SBUF *K-major*: K on the 128
partitions. A "panel" is an SBUF tensor [128, J, C] holding a K-major operand X[K, C] in
128-row chunks: panel[p, j, c] = X[k0 + j*128 + p, c]. How a panel is filled depends on
how the operand sits in HBM:

- K-major in HBM ([K, C]: A given transposed, or B as [K, N]): plain DMA, runs of C
  elements per partition row;
- C-major in HBM ([C, K]: A as [M, K], B given transposed as [N, K]): 2- and 4-byte
  dtypes use the DMA transposer (which reads whole contiguous source rows); fp8 (1 byte,
  which the DMA cannot transpose) goes through Tensor-engine transposes into PSUM.

fp8 double_row (NeuronCore-v3+) contracts two chunks per instruction: stationary
panel[:, j:j+2, m] is [K, 2, M] and moving [K, 2, N]. Both panels pad K with zeros to a
multiple of 256 so every pair is full.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tessera.kernels.hardware import moving_fmax, pmax, psum_bank_bytes, stationary_fmax
from tessera.nki import isa as nisa
from tessera.nki import language as nl
from tessera.nki.dtypes import DType
from tessera.nki.ops import AluOp

_DMA_TRANSPOSE_ITEMSIZES = (2, 4)


@dataclass(frozen=True)
class MatmulPlan:
    """Everything a 2-D matmul body needs, normalised once from the kernel's arguments.

    `a_k_major`: `a` is stored [K, M] (transpose_a); `b_k_major`: `b` is stored [K, N]
    (not transpose_b). Blocks: `block_m` rows of A per streamed A panel, `block_n` columns
    of B per resident B panel, `block_k` rows of K per panel (K is split into blocks only
    when the full-K panels do not fit in SBUF). `skinny` selects the weight-stationary
    body for M <= 128, where `block_k` is the K rows moved per B DMA.
    """

    m: int
    k: int
    n: int
    a_k_major: bool
    b_k_major: bool
    in_dtype: DType
    out_dtype: DType
    activation: AluOp | None
    block_m: int
    block_n: int
    block_k: int
    double_row: bool
    skinny: bool

    @property
    def step_rows(self) -> int:
        """K rows contracted per matmul instruction (256 in double_row mode)."""
        return 2 * pmax() if self.double_row else pmax()


@dataclass(frozen=True)
class ContractionStep:
    """One matmul's slice of a panel: chunk j (and j+1 when paired), `rows` partitions."""

    j: int
    rows: int
    paired: bool


def steps(kn: int, double_row: bool) -> tuple[ContractionStep, ...]:
    """The contraction steps over a panel of kn rows."""
    if double_row:
        return tuple(ContractionStep(2 * u, pmax(), True)
                     for u in range(math.ceil(kn / (2 * pmax()))))
    return tuple(ContractionStep(j, min(pmax(), kn - j * pmax()), False)
                 for j in range(math.ceil(kn / pmax())))


def chunks(kn: int, double_row: bool) -> int:
    """Chunks (second panel axis) a panel of kn rows needs (even in double_row mode)."""
    return 2 * math.ceil(kn / (2 * pmax())) if double_row else math.ceil(kn / pmax())


def spans(total: int, size: int) -> tuple[tuple[int, int], ...]:
    """(start, width) pieces of `size` covering range(total); the last may be shorter."""
    return tuple((s, min(size, total - s)) for s in range(0, total, size))


def matmul_step(dst, stat, mov, step: ContractionStep, scols: slice, mcols: slice,
                sj: int | None = None, mj: int | None = None) -> None:
    """dst += stat[step]^T @ mov[step]: chunk `sj` of the stationary panel against chunk
    `mj` of the moving one (both default to step.j), two chunks when the step is paired."""
    js = step.j if sj is None else sj
    jm = step.j if mj is None else mj
    if step.paired:
        nisa.nc_matmul(dst, stat[:, js:js + 2, scols], mov[:, jm:jm + 2, mcols],
                       perf_mode=nisa.matmul_perf_mode.double_row)
    else:
        r = step.rows
        nisa.nc_matmul(dst, stat[:r, js, scols], mov[:r, jm, mcols])


def zero_pad(panel, kn: int, cols: slice, double_row: bool) -> None:
    """Zero the chunks past kn rows that a double_row pair reads (0 * NaN would poison)."""
    if double_row and kn % (2 * pmax()):
        first = kn // pmax()
        nisa.memset(panel[:, first:chunks(kn, True), cols], 0.0)


def load_panel(panel, x, k_major: bool, k0: int, kn: int, c0: int, cn: int,
               j0: int = 0, off: int = 0) -> None:
    """panel[p, j0 + j, off + c] = X[k0 + j*128 + p, c0 + c] for the kn x cn block of X.

    X is the logical K-major operand; `x` in HBM is X itself when `k_major`, else X^T.
    """
    full, rest = divmod(kn, pmax())
    cols = slice(off, off + cn)
    if k_major:
        if full:
            src = x[k0:k0 + full * pmax(), c0:c0 + cn].reshape((full, pmax(), cn))
            nisa.dma_copy(panel[:, j0:j0 + full, cols], src.permute((1, 0, 2)))
        if rest:
            nisa.dma_copy(panel[:rest, j0 + full, cols],
                          x[k0 + full * pmax():k0 + kn, c0:c0 + cn])
    elif x.dtype.itemsize in _DMA_TRANSPOSE_ITEMSIZES:
        # the transposer reads contiguous rows of x: k0..k0+kn of rows c0..c0+cn
        if full:
            src = x[c0:c0 + cn, k0:k0 + full * pmax()].reshape((cn, full, pmax()))
            nisa.dma_transpose(panel[:, j0:j0 + full, cols], src)
        if rest:
            nisa.dma_transpose(panel[:rest, j0 + full, cols],
                               x[c0:c0 + cn, k0 + full * pmax():k0 + kn])
    else:
        _load_panel_tensor_engine(panel, x, k0, kn, c0, cn, j0, off)


def _load_panel_tensor_engine(panel, x, k0: int, kn: int, c0: int, cn: int, j0: int,
                              off: int) -> None:
    """C-major fp8 operand: load rows of x, transpose 128x128 blocks on the Tensor engine.

    Transposes write PSUM in x's dtype (the Tensor engine requires dst dtype == data dtype)
    and several share one bank so a single copy moves them to the panel.
    """
    isz = x.dtype.itemsize
    full, rest = divmod(kn, pmax())
    for ci, cw in spans(cn, pmax()):
        rows = nl.ndarray((cw, kn), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(rows, x[c0 + ci:c0 + ci + cw, k0:k0 + kn])
        cols = slice(off + ci, off + ci + cw)
        group = max(1, psum_bank_bytes() // (cw * isz))
        for g0, g in spans(full, group):
            ps = nl.ndarray((pmax(), g, cw), x.dtype, buffer=nl.psum)
            for i in range(g):
                j = g0 + i
                nisa.nc_transpose(ps[:, i, :], rows[:, j * pmax():(j + 1) * pmax()])
            nisa.tensor_copy(panel[:, j0 + g0:j0 + g0 + g, cols], ps)
        if rest:
            ps = nl.ndarray((rest, cw), x.dtype, buffer=nl.psum)
            nisa.nc_transpose(ps, rows[:, full * pmax():kn])
            nisa.tensor_copy(panel[:rest, j0 + full, cols], ps)


def load_bias(bias, n0: int, nw: int, rows: int):
    """bias[n0:n0+nw] repeated on `rows` partitions (bias runs along the free axis of an
    output tile, so every partition needs the whole row): one broadcasting DMA."""
    tile = nl.ndarray((rows, nw), bias.dtype, buffer=nl.sbuf)
    src = bias.reshape((1, bias.shape[0]))[:, n0:n0 + nw].broadcast(0, rows)
    nisa.dma_copy(tile, src)
    return tile


def evacuate(dst, src, bias_tile, act: AluOp | None, parity: int) -> None:
    """dst (SBUF, output dtype) = act(src + bias) for an fp32 PSUM (or SBUF) tile.

    Copies alternate between the Vector and Scalar engines so one drains a PSUM bank while
    the other starts the next; activations run on the Scalar engine (the only one with
    them). With a bias and an activation the bias is added in place first (Vector), then
    the activation writes dst (Scalar), which keeps a single rounding to dst's dtype.
    """
    if bias_tile is not None:
        if act is None:
            nisa.tensor_tensor(dst, src, bias_tile, op=nl.add)
            return
        nisa.tensor_tensor(src, src, bias_tile, op=nl.add)
        nisa.activation(dst, act, src)
    elif act is not None:
        nisa.activation(dst, act, src)
    elif parity % 2 == 0:
        nisa.tensor_copy(dst, src, engine=nisa.vector_engine)
    else:
        # NeuronCore-v2 has no Scalar-engine tensor_copy; the identity activation is one
        nisa.activation(dst, nl.copy, src)


# ----------------------------------------------------------------------------- bodies
def blocked_body(out, a, b, bias, plan: MatmulPlan) -> None:
    """out[M, N] = epilogue(A @ B) for M > 128: B panels resident, A panels streamed.

    Loop nest (per N block of `block_n` columns and K block of `block_k` rows):
        B panel [K block, N block] stays in SBUF; the next one loads piecewise during
        this one's M loop, so TensorE never waits for it;
        for each M block: A panel [K block, block_m] streams in (prefetched by the
        allocator's rotation), and each 128 x 512 output tile accumulates its whole K block
        in one PSUM bank, then the epilogue drains it while TensorE fills the next bank.
    With one K block (the default whenever both panels fit in SBUF) PSUM holds the full
    sum; otherwise K-block partial sums are added into an fp32 SBUF accumulator.
    """
    dr = plan.double_row
    k_blocks = spans(plan.k, plan.block_k)
    m_blocks = spans(plan.m, plan.block_m)
    multi_k = len(k_blocks) > 1
    work = [(n0, nw, k0, kn) for n0, nw in spans(plan.n, plan.block_n) for k0, kn in k_blocks]
    pending = _b_panel(b, plan, *work[0], pieces=1)
    for piece in pending[1]:
        piece()
    parity = 0
    acc = bias_tile = None
    for i, (n0, nw, k0, kn) in enumerate(work):
        bpanel = pending[0]
        nxt = _b_panel(b, plan, *work[i + 1], pieces=len(m_blocks)) if i + 1 < len(work) \
            else (None, [])
        first_k, last_k = k0 == 0, k0 + kn == plan.k
        if first_k:
            bias_tile = None if bias is None else load_bias(bias, n0, nw, min(pmax(), plan.m))
            if multi_k:
                acc = nl.ndarray((pmax(), math.ceil(plan.m / pmax()), nw), nl.float32,
                                 buffer=nl.sbuf)
        for mi, (m0, mw) in enumerate(m_blocks):
            if mi < len(nxt[1]):
                nxt[1][mi]()  # one piece of the next B panel per M block
            apanel = nl.ndarray((pmax(), chunks(kn, dr), mw), a.dtype, buffer=nl.sbuf)
            zero_pad(apanel, kn, slice(0, mw), dr)
            load_panel(apanel, a, plan.a_k_major, k0, kn, m0, mw)
            for mt0, mtw in spans(mw, stationary_fmax()):
                out_sb = None if multi_k else nl.ndarray((mtw, nw), plan.out_dtype,
                                                         buffer=nl.sbuf)
                for nt0, ntw in spans(nw, moving_fmax()):
                    ps = nl.ndarray((mtw, ntw), nl.float32, buffer=nl.psum)
                    for st in steps(kn, dr):
                        matmul_step(ps, apanel, bpanel, st, slice(mt0, mt0 + mtw),
                                    slice(nt0, nt0 + ntw))
                    cols = slice(nt0, nt0 + ntw)
                    if multi_k:
                        part = acc[:mtw, (m0 + mt0) // pmax(), cols]
                        if first_k:
                            nisa.tensor_copy(part, ps)
                        else:
                            nisa.tensor_tensor(part, part, ps, op=nl.add)
                    else:
                        evacuate(out_sb[:, cols], ps, None if bias_tile is None
                                 else bias_tile[:mtw, cols], plan.activation, parity)
                        parity += 1
                if not multi_k:
                    nisa.dma_copy(out[m0 + mt0:m0 + mt0 + mtw, n0:n0 + nw], out_sb)
        if multi_k and last_k:
            for g, (r0, rw) in enumerate(spans(plan.m, pmax())):
                out_sb = nl.ndarray((rw, nw), plan.out_dtype, buffer=nl.sbuf)
                evacuate(out_sb, acc[:rw, g, :], None if bias_tile is None
                         else bias_tile[:rw, :], plan.activation, parity)
                parity += 1
                nisa.dma_copy(out[r0:r0 + rw, n0:n0 + nw], out_sb)
        pending = nxt


def _b_panel(b, plan: MatmulPlan, n0: int, nw: int, k0: int, kn: int, pieces: int):
    """Allocate the B panel of one (N block, K block) and split its load into DMA pieces
    (closures) of at least 4 chunks, so each stays a large transfer per DMA engine."""
    dr = plan.double_row
    panel = nl.ndarray((pmax(), chunks(kn, dr), nw), b.dtype, buffer=nl.sbuf)
    zero_pad(panel, kn, slice(0, nw), dr)
    n_chunks = math.ceil(kn / pmax())
    per = max(4, math.ceil(n_chunks / max(1, pieces)))
    loads = []
    for j0, jn in spans(n_chunks, per):
        rows = min(kn - j0 * pmax(), jn * pmax())
        loads.append(lambda j0=j0, rows=rows: load_panel(
            panel, b, plan.b_k_major, k0 + j0 * pmax(), rows, n0, nw, j0=j0))
    return panel, loads
