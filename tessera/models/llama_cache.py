"""Llama inference with a static KV cache: a prefill graph and a decode graph.

The vendor's inference library compiles a decoder as two fixed-shape programs: context
encoding (the prompt, all positions at once, filling the KV cache) and token generation
(one new token per sequence, reading the whole cache of `max_len` slots under a mask of the
positions written so far, and writing its own slot). Both modules here share one
`LlamaModel`'s weights and compile with `tessera.compile` like any model:

    >>> prefill, decode = LlamaPrefill(model, max_len=64), LlamaDecode(model, max_len=64)
    >>> tokens = greedy_generate(prefill, decode, input_ids, new_tokens=32)

Caches are one tensor per layer for keys and one for values, each [B, nkv, T, hd] (T =
`max_len`), passed in and returned in layer order: keys of layers 0..L-1, then values.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from tessera.models.llama import LlamaModel, inv_frequencies


class LlamaPrefill(nn.Module):
    """input_ids [B, S] -> (logits [B, S, V], k_0..k_{L-1}, v_0..v_{L-1}), caches zero past S."""

    def __init__(self, model: LlamaModel, max_len: int) -> None:
        super().__init__()
        if not 0 < max_len <= model.config.max_position_embeddings:
            raise ValueError(f"max_len: {max_len} is not in 1..max_position_embeddings "
                             f"{model.config.max_position_embeddings}")
        self.model = model
        self.max_len = max_len

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m, (_, s) = self.model, input_ids.shape
        if s > self.max_len:
            raise ValueError(f"input_ids: {s} tokens exceed max_len {self.max_len}")
        x = m.embed_tokens(input_ids)  # [B, S, H]
        cos, sin = m.rope(x, s)
        keys, values = [], []
        for layer in m.layers:
            x, (k, v) = layer(x, cos, sin, return_kv=True)
            keys.append(self._padded(k))
            values.append(self._padded(v))
        return (m.lm_head(m.norm(x)), *keys, *values)

    def _padded(self, kv: torch.Tensor) -> torch.Tensor:
        """[B, nkv, S, hd] -> [B, nkv, T, hd], zeros after the prompt."""
        b, heads, s, hd = kv.shape
        tail = torch.zeros(b, heads, self.max_len - s, hd, dtype=kv.dtype, device=kv.device)
        return torch.cat((kv, tail), dim=2)


class LlamaDecode(nn.Module):
    """(token [B, 1], position [1] int64, k_0.., v_0..) -> (logits [B, 1, V], k_0.., v_0..).

    The new token sits at `position` (0-based, < max_len): its keys and values are written
    into that slot of every layer's cache, and it attends to slots 0..position.
    """

    def __init__(self, model: LlamaModel, max_len: int) -> None:
        super().__init__()
        self.model = model
        self.max_len = max_len
        inv_freq = inv_frequencies(model.config.head_dim, model.config.rope_theta)
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # [hd/2]

    def forward(self, token: torch.Tensor, position: torch.Tensor,
                *caches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.model
        n = len(m.layers)
        if len(caches) != 2 * n:
            raise ValueError(f"expected {2 * n} caches (keys then values of {n} layers), "
                             f"got {len(caches)}")
        x = m.embed_tokens(token)  # [B, 1, H]
        # the same angles as rope_tables, at one position: float32 position * inv_freq
        angles = position.to(torch.float32)[:, None] * self.inv_freq[None, :]  # [1, hd/2]
        angles = torch.cat((angles, angles), dim=-1)  # [1, hd]
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        # slots 0..position are visible: [1, 1, 1, T]
        slots = torch.arange(self.max_len, device=token.device)
        visible = (slots <= position)[None, None, None, :]
        keys, values = [], []
        for i, layer in enumerate(m.layers):
            # the caches are updated in place on the device (input and output aliased)
            x, (k, v) = layer(x, cos, sin, (caches[i], caches[n + i]), position, visible,
                              return_kv=True)
            keys.append(k)
            values.append(v)
        return (m.lm_head(m.norm(x)), *keys, *values)


def greedy_generate(prefill: Callable[..., tuple[torch.Tensor, ...]],
                    decode: Callable[..., tuple[torch.Tensor, ...]],
                    input_ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """Greedy decoding with a KV cache: `prefill(input_ids)` once, then `decode(token,
    position, *caches)` per new token (eager modules or compiled ones alike).

    Returns the generated ids [B, new_tokens]; the prompt plus them must fit the cache.
    """
    with torch.no_grad():
        logits, *caches = prefill(input_ids)
        position = input_ids.shape[1]
        token = logits[:, -1:].argmax(dim=-1)  # [B, 1]
        out = [token]
        for _ in range(new_tokens - 1):
            logits, *caches = decode(token, torch.tensor([position]), *caches)
            position += 1
            token = logits[:, -1:].argmax(dim=-1)
            out.append(token)
    return torch.cat(out, dim=1)
