"""Lowering rules onto the kernel library (`tessera.kernels`), one per ATen op family.

Each rule checks that its kernel applies (layout, axis, dtype, limits) and returns a
`Lowered` whose `run` calls the kernel in `tessera.nki` (functional mode, on the node's
torch tensors) and whose `kernels` say what `cost.estimate` prices; otherwise it returns
None and the node is priced as a copy/pointwise op (`lowering.generic`).
"""

from __future__ import annotations

import math

import torch

from tessera import nki
from tessera.compiler.graph import Arg, Graph, Node
from tessera.compiler.lowering import RMS_NORM_EPS, KernelCall, Lowered, rule, supports
from tessera.kernels import registry

_ACTIVATIONS = {"silu": "silu", "gelu": "gelu", "gelu_tanh": "gelu_apprx_tanh",
                "relu": "relu"}


def _sim(op: str):
    """The library kernel of `op`, run functionally."""
    return nki.simulate(registry.get(op).kernel)


def _arg(node: Node, i: int, name: str, default: object = None) -> object:
    """Positional argument i (or keyword `name`) of the node's call template (an `Arg` for
    a tensor)."""
    args = node.attr("args", ())
    if i < len(args):
        return args[i]
    return dict(node.attr("kwargs", ())).get(name, default)


def _shape(node: Node, graph: Graph, i: int, name: str) -> tuple[int, ...] | None:
    """The shape of tensor argument i (None when absent)."""
    a = _arg(node, i, name)
    return graph.shape_of(node.inputs[a.index]) if isinstance(a, Arg) else None


def _get(inputs: list[torch.Tensor], node: Node, i: int, name: str) -> torch.Tensor | None:
    """The tensor passed as argument i (None when absent)."""
    a = _arg(node, i, name)
    return inputs[a.index] if isinstance(a, Arg) else None


def _rows(shape: tuple[int, ...]) -> int:
    return math.prod(shape[:-1]) if len(shape) > 1 else 1


def _activation(node: Node) -> object:
    from tessera.nki import language as nl

    name = node.attr("activation")
    return None if name is None else getattr(nl, _ACTIVATIONS[str(name)])


# ------------------------------------------------------------------------------ matmul
@rule("linear")
def _linear(node: Node, graph: Graph) -> Lowered | None:
    x_shape, w_shape = _shape(node, graph, 0, "input"), _shape(node, graph, 1, "weight")
    if not supports("matmul", node.dtype) or x_shape is None or w_shape is None \
            or len(w_shape) != 2:
        return None
    k, n = x_shape[-1], w_shape[0]
    m = _rows(x_shape)
    act = _activation(node)

    def run(inputs: list[torch.Tensor]) -> torch.Tensor:
        x, w = _get(inputs, node, 0, "input"), _get(inputs, node, 1, "weight")
        bias = _get(inputs, node, 2, "bias")
        out = _sim("matmul")(x.reshape(m, k), w, bias=bias, activation=act, transpose_b=True)
        return out.reshape(*x_shape[:-1], n)

    return Lowered(node.name, run, (KernelCall("matmul", {"M": m, "K": k, "N": n},
                                               node.dtype),))


@rule("matmul", "mm", "bmm")
def _matmul(node: Node, graph: Graph) -> Lowered | None:
    a_shape, b_shape = _shape(node, graph, 0, "self"), _shape(node, graph, 1, "other")
    if b_shape is None:
        b_shape = _shape(node, graph, 1, "mat2")
    if not supports("matmul", node.dtype) or a_shape is None or b_shape is None \
            or len(a_shape) < 2 or len(b_shape) < 2:
        return None
    a_arg, b_arg = _arg(node, 0, "self"), _arg(node, 1, "other") or _arg(node, 1, "mat2")
    m, k, n = a_shape[-2], a_shape[-1], b_shape[-1]
    if len(b_shape) == 2:  # one B for every row of A: a single matmul
        rows = _rows(a_shape)

        def run2(inputs: list[torch.Tensor]) -> torch.Tensor:
            out = _sim("matmul")(inputs[a_arg.index].reshape(rows, k), inputs[b_arg.index])
            return out.reshape(*a_shape[:-1], n)

        return Lowered(node.name, run2, (KernelCall("matmul", {"M": rows, "K": k, "N": n},
                                                    node.dtype),))
    if a_shape[:-2] != b_shape[:-2]:
        return None  # broadcast batch dimensions: priced as a copy of the expanded operands
    batch = math.prod(a_shape[:-2])

    def run3(inputs: list[torch.Tensor]) -> torch.Tensor:
        out = _sim("batched_matmul")(inputs[a_arg.index].reshape(batch, m, k),
                                     inputs[b_arg.index].reshape(batch, k, n))
        return out.reshape(*a_shape[:-1], n)

    return Lowered(node.name, run3, (KernelCall("batched_matmul",
                                                {"B": batch, "M": m, "K": k, "N": n},
                                                node.dtype),))


@rule("addmm")
def _addmm(node: Node, graph: Graph) -> Lowered | None:
    bias_shape = _shape(node, graph, 0, "self")
    a_shape, b_shape = _shape(node, graph, 1, "mat1"), _shape(node, graph, 2, "mat2")
    beta, alpha = _arg(node, 3, "beta", 1), _arg(node, 4, "alpha", 1)
    if not supports("matmul", node.dtype) or bias_shape is None or len(bias_shape) != 1 \
            or a_shape is None or b_shape is None or (beta, alpha) != (1, 1):
        return None
    (m, k), n = a_shape, b_shape[1]

    def run(inputs: list[torch.Tensor]) -> torch.Tensor:
        return _sim("matmul")(_get(inputs, node, 1, "mat1"), _get(inputs, node, 2, "mat2"),
                              bias=_get(inputs, node, 0, "self"),
                              activation=_activation(node))

    return Lowered(node.name, run, (KernelCall("matmul", {"M": m, "K": k, "N": n},
                                               node.dtype),))


# --------------------------------------------------------------------------- attention
@rule("scaled_dot_product_attention")
def _attention(node: Node, graph: Graph) -> Lowered | None:
    q_shape, k_shape = _shape(node, graph, 0, "query"), _shape(node, graph, 1, "key")
    if not supports("flash_attention", node.dtype) or q_shape is None or k_shape is None \
            or len(q_shape) != 4 or len(k_shape) != 4:
        return None
    batch, heads, seq, dim = q_shape
    kv_heads, seq_k = k_shape[1], k_shape[2]
    causal = bool(_arg(node, 5, "is_causal", False))
    scale = _arg(node, 6, "scale", None)
    has_mask = _arg(node, 3, "attn_mask", None) is not None
    if float(_arg(node, 4, "dropout_p", 0.0) or 0.0) != 0.0 or heads % kv_heads:
        return None
    if not has_mask and dim <= 128 and (not causal or seq_k == seq):
        def run(inputs: list[torch.Tensor]) -> torch.Tensor:
            q, k, v = (_get(inputs, node, i, n) for i, n in enumerate(("query", "key", "value")))
            sim = _sim("flash_attention")
            return torch.stack([sim(q[b], k[b], v[b], causal=causal, scale=scale)
                                for b in range(batch)])

        shapes = {"heads": heads, "kv_heads": kv_heads, "seq": seq, "head_dim": dim}
        return Lowered(node.name, run, (KernelCall("flash_attention", shapes, node.dtype,
                                                   batch),))
    if causal:
        return None
    return _masked_attention(node, graph, q_shape, k_shape, scale)


def _masked_attention(node: Node, graph: Graph, q_shape: tuple[int, ...],
                      k_shape: tuple[int, ...], scale: object) -> Lowered:
    """softmax(q k^T * scale + mask) v as two batched matmuls around the library softmax
    (the flash kernel takes no mask)."""
    batch, heads, seq, dim = q_shape
    kv_heads, seq_k = k_shape[1], k_shape[2]
    bh = batch * heads
    s = 1.0 / math.sqrt(dim) if scale is None else float(scale)

    def run(inputs: list[torch.Tensor]) -> torch.Tensor:
        q, k, v = (_get(inputs, node, i, n) for i, n in enumerate(("query", "key", "value")))
        mask = _get(inputs, node, 3, "attn_mask")
        if kv_heads != heads:
            k = k.repeat_interleave(heads // kv_heads, dim=1)
            v = v.repeat_interleave(heads // kv_heads, dim=1)
        if mask.dtype == torch.bool:  # True keeps a key
            mask = torch.where(mask, 0.0, -1e30)
        mask = torch.broadcast_to(mask.to(torch.float32), (batch, heads, seq, seq_k))
        scores = _sim("batched_matmul")(q.reshape(bh, seq, dim), k.reshape(bh, seq_k, dim),
                                        transpose_b=True)
        p = _sim("softmax")(scores.reshape(bh * seq, seq_k),
                            mask=mask.reshape(bh * seq, seq_k), scale=s)
        out = _sim("batched_matmul")(p.reshape(bh, seq, seq_k), v.reshape(bh, seq_k, dim))
        return out.reshape(batch, heads, seq, dim)

    return Lowered(node.name, run, (
        KernelCall("batched_matmul", {"B": bh, "M": seq, "K": dim, "N": seq_k}, node.dtype),
        KernelCall("softmax", {"rows": bh * seq, "cols": seq_k}, node.dtype),
        KernelCall("batched_matmul", {"B": bh, "M": seq, "K": seq_k, "N": dim}, node.dtype)))


# ------------------------------------------------------------------- norms and softmax
@rule("rms_norm")
def _rms_norm(node: Node, graph: Graph) -> Lowered | None:
    shape = _shape(node, graph, 0, "input")
    normalized = tuple(_arg(node, 1, "normalized_shape", ()))
    if not supports("rmsnorm", node.dtype) or shape is None or len(normalized) != 1:
        return None
    rows, cols = _rows(shape), shape[-1]
    eps = _arg(node, 3, "eps", None)
    eps = RMS_NORM_EPS if eps is None else float(eps)

    def run(inputs: list[torch.Tensor]) -> torch.Tensor:
        x = _get(inputs, node, 0, "input")
        w = _get(inputs, node, 2, "weight")
        w = torch.ones(cols, dtype=x.dtype) if w is None else w
        return _sim("rmsnorm")(x.reshape(rows, cols), w, eps=eps).reshape(shape)

    return Lowered(node.name, run, (KernelCall("rmsnorm", {"rows": rows, "cols": cols},
                                               node.dtype),))


@rule("add_rms_norm")
def _add_rms_norm(node: Node, graph: Graph) -> Lowered | None:
    """The fused residual add + RMSNorm (passes/fusion.py): inputs x, residual, weight."""
    shape = graph.shape_of(node.inputs[0])
    rows, cols = _rows(shape), shape[-1]
    eps = float(node.attr("eps"))

    def run(inputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, residual, w = inputs
        h, y = _sim("add_rmsnorm")(x.reshape(rows, cols), residual.reshape(rows, cols), w,
                                   eps=eps)
        return h.reshape(shape), y.reshape(shape)

    return Lowered(node.name, run, (KernelCall("add_rmsnorm", {"rows": rows, "cols": cols},
                                               node.dtype),))


@rule("rope")
def _rope(node: Node, graph: Graph) -> Lowered | None:
    """The rotate-half RoPE recognised by passes/patterns.py: inputs x [B, H, S, D] (or
    [H, S, D]) and cos/sin tables whose last two axes are [S, D] (halves equal)."""
    shape = graph.shape_of(node.inputs[0])
    heads, seq, dim = shape[-3:]
    batch = math.prod(shape[:-3])

    def run(inputs: list[torch.Tensor]) -> torch.Tensor:
        x, cos, sin = inputs
        x4 = x.reshape(batch, heads, seq, dim)
        # the tables' leading axes are 1 or the batch: [n, S, D/2] with n in (1, batch)
        c = cos.reshape(-1, seq, dim)[..., : dim // 2].contiguous()
        s = sin.reshape(-1, seq, dim)[..., : dim // 2].contiguous()
        kernel = _sim("rope")
        outs = [kernel(x4[b], c[b % c.shape[0]], s[b % s.shape[0]]) for b in range(batch)]
        return torch.stack(outs).reshape(shape)

    return Lowered(node.name, run, (KernelCall("rope", {"heads": heads, "seq": seq,
                                                        "dim": dim}, node.dtype, batch),))


@rule("layer_norm")
def _layer_norm(node: Node, graph: Graph) -> Lowered | None:
    shape = _shape(node, graph, 0, "input")
    normalized = tuple(_arg(node, 1, "normalized_shape", ()))
    if not supports("layernorm", node.dtype) or shape is None or len(normalized) != 1:
        return None
    rows, cols = _rows(shape), shape[-1]
    eps = float(_arg(node, 4, "eps", 1e-5))

    def run(inputs: list[torch.Tensor]) -> torch.Tensor:
        x = _get(inputs, node, 0, "input")
        w, b = _get(inputs, node, 2, "weight"), _get(inputs, node, 3, "bias")
        w = torch.ones(cols, dtype=x.dtype) if w is None else w
        b = torch.zeros(cols, dtype=x.dtype) if b is None else b
        return _sim("layernorm")(x.reshape(rows, cols), w, b, eps=eps).reshape(shape)

    return Lowered(node.name, run, (KernelCall("layernorm", {"rows": rows, "cols": cols},
                                               node.dtype),))


@rule("softmax", "_softmax")
def _softmax(node: Node, graph: Graph) -> Lowered | None:
    shape = _shape(node, graph, 0, "self")
    dim = int(_arg(node, 1, "dim", -1))
    if not supports("softmax", node.dtype) or shape is None or dim not in (-1, len(shape) - 1):
        return None
    rows, cols = _rows(shape), shape[-1]

    def run(inputs: list[torch.Tensor]) -> torch.Tensor:
        return _sim("softmax")(inputs[0].reshape(rows, cols)).reshape(shape)

    return Lowered(node.name, run, (KernelCall("softmax", {"rows": rows, "cols": cols},
                                               node.dtype),))


# ---------------------------------------------------------- activations, gathers, adds
def _unary(node: Node, graph: Graph, op: str) -> Lowered | None:
    shape = graph.shape_of(node.inputs[0])
    if not supports(op, node.dtype) or not shape:
        return None
    rows, cols = _rows(shape), shape[-1]

    def run(inputs: list[torch.Tensor]) -> torch.Tensor:
        return _sim(op)(inputs[0].reshape(rows, cols)).reshape(shape)

    return Lowered(node.name, run, (KernelCall(op, {"rows": rows, "cols": cols},
                                               node.dtype),))


@rule("silu")
def _silu(node: Node, graph: Graph) -> Lowered | None:
    return _unary(node, graph, "silu")


@rule("gelu")
def _gelu(node: Node, graph: Graph) -> Lowered | None:
    approximate = _arg(node, 1, "approximate", "none")
    return _unary(node, graph, "gelu_tanh" if approximate == "tanh" else "gelu")


@rule("swiglu")
def _swiglu(node: Node, graph: Graph) -> Lowered | None:
    shape = graph.shape_of(node.inputs[0])
    rows, cols = _rows(shape), shape[-1]

    def run(inputs: list[torch.Tensor]) -> torch.Tensor:
        a, b = (t.reshape(rows, cols) for t in inputs)
        return _sim("swiglu")(a, b).reshape(shape)

    return Lowered(node.name, run, (KernelCall("swiglu", {"rows": rows, "cols": cols},
                                               node.dtype),))


@rule("embedding")
def _embedding(node: Node, graph: Graph) -> Lowered | None:
    table, ids = _shape(node, graph, 0, "weight"), _shape(node, graph, 1, "indices")
    if not supports("embedding", node.dtype) or table is None or ids is None or len(table) != 2:
        return None
    tokens = math.prod(ids)
    vocab, dim = table

    def run(inputs: list[torch.Tensor]) -> torch.Tensor:
        idx = _get(inputs, node, 1, "indices").reshape(tokens, 1).to(torch.int32)
        return _sim("embedding")(idx, _get(inputs, node, 0, "weight")).reshape(*ids, dim)

    return Lowered(node.name, run, (KernelCall("embedding", {"tokens": tokens, "vocab": vocab,
                                                             "dim": dim}, node.dtype),))


@rule("add")
def _add(node: Node, graph: Graph) -> Lowered | None:
    if len(node.inputs) != 2 or node.op != "aten.add.Tensor" \
            or not supports("residual_add", node.dtype):
        return None
    a, b = (graph.shape_of(i) for i in node.inputs)
    alpha = _arg(node, 2, "alpha", 1)
    if a != b or a != node.shape or alpha != 1 or not a:
        return None
    rows, cols = _rows(a), a[-1]

    def run(inputs: list[torch.Tensor]) -> torch.Tensor:
        x, r = _get(inputs, node, 0, "self"), _get(inputs, node, 1, "other")
        return _sim("residual_add")(x.reshape(rows, cols), r.reshape(rows, cols)).reshape(a)

    return Lowered(node.name, run, (KernelCall("residual_add", {"rows": rows, "cols": cols},
                                               node.dtype),))

