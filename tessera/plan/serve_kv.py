"""One replica's paged KV cache with prefix caching, by block counts.

vLLM (and the Neuron plugin, which uses vLLM's KV-cache manager [NSCHED]) hands a request
blocks of `block_size` tokens as its context grows, for real tokens only [NBLOCK]. With
prefix caching a full block is known by the hash of its tokens and everything before
them; a new request reuses the longest run of cached blocks its prompt starts with [NPREFIX],
up to one token short of the whole prompt (the last token is always computed, so the step
has a token to sample from). A block nobody holds any more stays cached, and so counts as
free, until a new allocation evicts it, least recently freed first.

Only the blocks of a shared prefix (`ServeRequest.prefix_id`) are tracked by identity here:
blocks private to one request can never be hit by another, so they are counted, not
named. The one case this gives up is a preempted request finding its own freed blocks
still cached when it is recomputed: here it recomputes them all. When free blocks run out,
blocks holding nothing are handed out before cached ones are evicted (vLLM's single free
queue can evict a cached block while empty ones wait further back; this keeps more hits).
"""

from __future__ import annotations

from collections import OrderedDict

from tessera.plan.serve_types import ServeError

PrefixKey = tuple[int, int]  # (prefix id, block index within the prefix)


class KvBlockPool:
    """Free, cached and used blocks of one replica."""

    __slots__ = ("total", "free_empty", "evictable", "live", "private_used")

    def __init__(self, total_blocks: int) -> None:
        if total_blocks < 1:
            raise ServeError(f"the KV cache needs at least one block, not {total_blocks}")
        self.total = total_blocks
        self.free_empty = total_blocks  # free blocks with nothing worth keeping
        self.evictable: OrderedDict[PrefixKey, None] = OrderedDict()  # free, still cached
        self.live: dict[PrefixKey, int] = {}  # cached prefix blocks in use -> holders
        self.private_used = 0  # blocks in use that no other request can share

    @property
    def free(self) -> int:
        """Blocks an allocation may take (empty ones and evictable cached ones)."""
        return self.free_empty + len(self.evictable)

    @property
    def used(self) -> int:
        """Blocks some request holds (what vLLM reports as KV-cache usage)."""
        return self.total - self.free

    def cached_run(self, prefix_id: int, max_blocks: int) -> int:
        """How many leading blocks of prefix `prefix_id` are cached, up to `max_blocks`."""
        n = 0
        live, evictable = self.live, self.evictable
        while n < max_blocks and ((prefix_id, n) in live or (prefix_id, n) in evictable):
            n += 1
        return n

    def evictable_among(self, prefix_id: int, blocks: int) -> int:
        """How many of the first `blocks` cached blocks of a prefix sit in the free pool
        (taking them uses up free blocks just as a new allocation would)."""
        ev = self.evictable
        return sum(1 for j in range(blocks) if (prefix_id, j) in ev)

    def take_cached(self, prefix_id: int, blocks: int) -> list[PrefixKey]:
        """Hold the first `blocks` cached blocks of a prefix (one more holder each)."""
        keys = []
        for j in range(blocks):
            key = (prefix_id, j)
            if key in self.evictable:
                del self.evictable[key]
                self.live[key] = 1
            else:
                self.live[key] += 1
            keys.append(key)
        return keys

    def allocate(self, n: int) -> bool:
        """Take `n` blocks for private use; False (and nothing taken) when too few are free."""
        if n <= 0:
            return True
        if n > self.free_empty + len(self.evictable):
            return False
        from_empty = min(n, self.free_empty)
        self.free_empty -= from_empty
        for _ in range(n - from_empty):
            self.evictable.popitem(last=False)  # evict the least recently freed
        self.private_used += n
        return True

    def publish(self, key: PrefixKey) -> bool:
        """A request's private block now holds the full prefix block `key`: cache it, unless
        another request got there first (then the block stays private, as in vLLM)."""
        if key in self.live or key in self.evictable:
            return False
        self.private_used -= 1
        self.live[key] = 1
        return True

    def release(self, shared: list[PrefixKey], private: int) -> None:
        """A request lets go of its blocks: shared ones lose a holder (and stay cached when
        the last one leaves), private ones become empty."""
        live = self.live
        for key in shared:
            holders = live[key] - 1
            if holders:
                live[key] = holders
            else:
                del live[key]
                self.evictable[key] = None  # most recently freed: evicted last
        self.private_used -= private
        self.free_empty += private
