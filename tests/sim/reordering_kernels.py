"""Kernels written two ways: in the natural order, and hand-software-pipelined (the next
tile's loads and first stage issued before the previous tile's last stages). The compiler
reorders independent instructions, so both should predict about the same time under ASAP;
in program order (TRIVIAL) they differ. Each maker takes `pipelined` and returns a kernel.
"""

from __future__ import annotations

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki

F32, BF16 = nl.float32, nl.bfloat16
P = 128


def attention(pipelined: bool):
    """out[128, d] = sum over key blocks of exp(q k^T) v (one query tile; no max or
    normalisation: the shape of flash attention's inner loop)."""

    @nki.jit
    def kernel(q_t, k_t, v):
        d, nq = q_t.shape
        blocks = k_t.shape[1] // P
        out = nl.ndarray((nq, d), F32, buffer=nl.shared_hbm)
        qt = nl.ndarray((d, nq), BF16, buffer=nl.sbuf)
        nisa.dma_copy(qt, q_t)
        acc = nl.ndarray((nq, d), F32, buffer=nl.psum)

        def load(j):
            kb = nl.ndarray((d, P), BF16, buffer=nl.sbuf)
            nisa.dma_copy(kb, k_t[:, j * P:(j + 1) * P])
            vb = nl.ndarray((P, d), BF16, buffer=nl.sbuf)
            nisa.dma_copy(vb, v[j * P:(j + 1) * P])
            return kb, vb

        def scores(kb):
            s = nl.ndarray((nq, P), F32, buffer=nl.psum)
            nisa.nc_matmul(s, qt, kb)
            p = nl.ndarray((nq, P), BF16, buffer=nl.sbuf)
            nisa.activation(p, nl.exp, s)
            return p

        def weighted(p, vb):
            pt_ps = nl.ndarray((P, nq), BF16, buffer=nl.psum)
            nisa.nc_transpose(pt_ps, p)
            pt = nl.ndarray((P, nq), BF16, buffer=nl.sbuf)
            nisa.tensor_copy(pt, pt_ps)
            nisa.nc_matmul(acc, pt, vb)

        if pipelined:
            kb, vb = load(0)
            p = scores(kb)
            for j in range(blocks):
                if j + 1 < blocks:
                    kb_next, vb_next = load(j + 1)
                    p_next = scores(kb_next)
                weighted(p, vb)
                if j + 1 < blocks:
                    p, vb = p_next, vb_next
        else:
            for j in range(blocks):
                kb, vb = load(j)
                weighted(scores(kb), vb)
        o = nl.ndarray((nq, d), F32, buffer=nl.sbuf)
        nisa.tensor_copy(o, acc)
        nisa.dma_copy(out, o)
        return out

    return kernel


def norm_matmul(pipelined: bool):
    """out = rmsnorm(x) @ w, tile by tile of 128 rows (x [rows, 128], w [128, 512])."""

    @nki.jit
    def kernel(x, w):
        rows, d = x.shape
        n = w.shape[1]
        out = nl.ndarray((rows, n), F32, buffer=nl.shared_hbm)
        wt = nl.ndarray((d, n), BF16, buffer=nl.sbuf)
        nisa.dma_copy(wt, w)

        def normed(i):
            xt = nl.ndarray((P, d), BF16, buffer=nl.sbuf)
            nisa.dma_copy(xt, x[i * P:(i + 1) * P])
            sq = nl.ndarray((P, d), F32, buffer=nl.sbuf)
            ssq = nl.ndarray((P, 1), F32, buffer=nl.sbuf)
            nisa.activation_reduce(sq, nl.square, xt, nl.add, ssq)
            mean = nl.ndarray((P, 1), F32, buffer=nl.sbuf)
            nisa.tensor_scalar(mean, ssq, nl.multiply, 1.0 / d, op1=nl.add, operand1=1e-6)
            scale = nl.ndarray((P, 1), F32, buffer=nl.sbuf)
            nisa.activation(scale, nl.rsqrt, mean)
            xn = nl.ndarray((P, d), BF16, buffer=nl.sbuf)
            nisa.tensor_scalar(xn, xt, nl.multiply, scale)
            return xn

        def project(i, xn):
            t_ps = nl.ndarray((d, P), BF16, buffer=nl.psum)
            nisa.nc_transpose(t_ps, xn)
            xnt = nl.ndarray((d, P), BF16, buffer=nl.sbuf)
            nisa.tensor_copy(xnt, t_ps)
            acc = nl.ndarray((P, n), F32, buffer=nl.psum)
            nisa.nc_matmul(acc, xnt, wt)
            res = nl.ndarray((P, n), F32, buffer=nl.sbuf)
            nisa.tensor_copy(res, acc)
            nisa.dma_copy(out[i * P:(i + 1) * P], res)

        tiles = rows // P
        if pipelined:
            xn = normed(0)
            for i in range(tiles):
                xn_next = normed(i + 1) if i + 1 < tiles else None
                project(i, xn)
                xn = xn_next
        else:
            for i in range(tiles):
                project(i, normed(i))
        return out

    return kernel


def scan(pipelined: bool):
    """A state-space scan per 128-row tile: decay = exp(a) (Scalar), h_t = decay_t *
    h_(t-1) + b_t along each row (Vector), y = tanh(h) (Scalar)."""

    @nki.jit
    def kernel(a, b):
        rows, cols = a.shape
        out = nl.ndarray((rows, cols), F32, buffer=nl.shared_hbm)

        def load(i):
            at = nl.ndarray((P, cols), a.dtype, buffer=nl.sbuf)
            bt = nl.ndarray((P, cols), b.dtype, buffer=nl.sbuf)
            nisa.dma_copy(at, a[i * P:(i + 1) * P])
            nisa.dma_copy(bt, b[i * P:(i + 1) * P])
            decay = nl.ndarray((P, cols), F32, buffer=nl.sbuf)
            nisa.activation(decay, nl.exp, at)
            return decay, bt

        def run(i, decay, bt):
            h = nl.ndarray((P, cols), F32, buffer=nl.sbuf)
            nisa.tensor_tensor_scan(h, decay, bt, 0.0, nl.multiply, nl.add)
            y = nl.ndarray((P, cols), F32, buffer=nl.sbuf)
            nisa.activation(y, nl.tanh, h)
            nisa.dma_copy(out[i * P:(i + 1) * P], y)

        tiles = rows // P
        if pipelined:
            loaded = load(0)
            for i in range(tiles):
                following = load(i + 1) if i + 1 < tiles else None
                run(i, *loaded)
                loaded = following
        else:
            for i in range(tiles):
                run(i, *load(i))
        return out

    return kernel
