"""One replica's engine: a scheduler picks what the next step runs, the cost model prices it,
and the step's tokens come out when it ends.

Three schedulers (`SchedulerKind`):

NEURON, vLLM's scheduler as the Neuron plugin wraps it [NSCHED]:
- A waiting request is admitted only when the running queue is below `max_num_seqs`, no
  running request is still prefilling, no other new prefill is admitted this step (one
  prefill per step, `max_prefills_per_batch = 1`), and the running queue is below the
  KV-cache bound `_max_kv_concurrent` (how many requests of `max_model_len` tokens the KV
  cache holds). Requests that fail wait in the holdback queue in arrival order.
- Prefill and decode never share a step [NSCHED, NFEAT]: while a prompt is being prefilled
  (in chunks of at most `max_num_batched_tokens`, [NPREFIX]) the decoding requests are
  hidden and make no progress; a newly admitted prefill also hides them (prefill priority).
  Otherwise the step decodes every running request.
- No preemption: the admission bound keeps running requests within the KV cache
  ("Preemption is not supported on Neuron" [NSCHED]).

VLLM, upstream vLLM v1 [V1SCHED]: each step spends the token budget on the running requests
in admission order (one token per decoding request, the next chunk of a prompt otherwise),
then admits waiting requests while fewer than `max_num_seqs` run, budget remains and blocks
can be allocated; prefill chunks and decodes share the step. When a running request cannot
get a block, the last-admitted running request is preempted: its blocks are freed and it
goes back to the front of the waiting queue, to be recomputed (prompt and the tokens it
already generated) when re-admitted. No waiting request is admitted in a step that
preempted.

STATIC: when the replica is empty it takes up to `max_num_seqs` waiting requests whose whole
KV (prompt + output) fits, prefills them all, then decodes the batch until its last
request finishes; finished requests keep their slot (the step still runs them) and their
blocks until then, and nothing new joins the batch.

A step's first token is the one sampled at the end of the step that computes a prompt's
last token; each later step that decodes the request adds one token.
"""

from __future__ import annotations

from collections import deque

from tessera.plan.serve_kv import KvBlockPool, PrefixKey
from tessera.plan.serve_types import (
    SchedulerConfig,
    SchedulerKind,
    ServeError,
    ServeRequest,
    StepBatch,
    StepCostModel,
)


class LiveRequest:
    """A request's state while the simulation runs (mutable; results copy it out)."""

    __slots__ = ("idx", "prompt", "output", "prefix_id", "prefix_blocks", "arrival_s",
                 "send_s", "finish_s", "computed", "generated", "shared", "private",
                 "published", "cap", "times", "preemptions", "replica")

    def __init__(self, idx: int, spec: ServeRequest, block_size: int) -> None:
        self.idx = idx
        self.prompt = spec.input_tokens
        self.output = spec.output_tokens
        self.prefix_id = spec.prefix_id
        self.prefix_blocks = spec.prefix_tokens // block_size  # full blocks others can share
        self.arrival_s = spec.arrival_s
        self.send_s = -1.0
        self.finish_s = -1.0
        self.computed = 0  # tokens whose KV is in the cache (vLLM's num_computed_tokens)
        self.generated = 0  # output tokens sampled so far
        self.shared: list[PrefixKey] = []  # cached prefix blocks held
        self.private = 0  # blocks held that only this request uses
        self.published = 0  # prefix blocks looked at for caching so far
        self.cap = 0  # tokens the held blocks can take
        self.times: list[int] = []  # the step (StepLog index) of each output token
        self.preemptions = 0
        self.replica = -1


class StepLog:
    """Per-step samples of every replica, for the timeline (plain lists: appends are cheap)."""

    __slots__ = ("start_s", "end_s", "replica", "step_seqs", "running", "kv_used", "queued")

    def __init__(self) -> None:
        self.start_s: list[float] = []
        self.end_s: list[float] = []
        self.replica: list[int] = []
        self.step_seqs: list[int] = []
        self.running: list[int] = []
        self.kv_used: list[int] = []
        self.queued: list[int] = []


class Replica:
    """The engine of one model replica."""

    def __init__(self, index: int, cost: StepCostModel, config: SchedulerConfig,
                 memo: dict[tuple[int, int, int, int, int], float], log: StepLog) -> None:
        self.index = index
        self.cost = cost
        self.cfg = config
        self.bs = cost.block_size
        self.pool = KvBlockPool(cost.kv_blocks)
        self.memo = memo
        self.log = log
        self.waiting: deque[LiveRequest] = deque()  # waiting + holdback queue, FIFO
        self.running: list[LiveRequest] = []  # admission order
        self.prefilling: LiveRequest | None = None  # NEURON: the one prompt in progress
        self.finishing: list[LiveRequest] = []  # requests whose last token ends this step
        self.unfinished = 0  # requests routed here and not finished (the router's load)
        self.busy = False
        blocks_per_req = -(-config.max_model_len // self.bs)
        # the plugin's `_max_kv_concurrent`: requests of max_model_len the cache holds
        self.kv_concurrent = max(1, cost.kv_blocks // blocks_per_req)
        self.caching = config.enable_prefix_caching and config.kind is not SchedulerKind.STATIC
        self.steps = 0
        self.prefill_steps = 0
        self.prompt_tokens = 0
        self.hit_tokens = 0
        self.preemptions = 0
        self.busy_s = 0.0

    # --- requests in and out -------------------------------------------------------------
    def enqueue(self, r: LiveRequest) -> None:
        """A request routed here joins the waiting queue."""
        r.replica = self.index
        self.waiting.append(r)
        self.unfinished += 1

    def end_step(self, t: float) -> list[LiveRequest]:
        """The step ending at `t` delivers its last tokens: finished requests leave (their
        blocks are freed) and are returned."""
        done = self.finishing
        if not done:
            return done
        self.finishing = []
        for r in done:
            r.finish_s = t
        self.unfinished -= len(done)
        if self.cfg.kind is SchedulerKind.STATIC:
            if self.unfinished_in_batch() == 0:
                for r in self.running:
                    self._release(r)
                self.running = []
        else:
            for r in done:
                self._release(r)
            self.running = [r for r in self.running if r.finish_s < 0]
        return done

    def unfinished_in_batch(self) -> int:
        """STATIC: requests of the current batch still generating."""
        return sum(1 for r in self.running if r.finish_s < 0)

    # --- blocks --------------------------------------------------------------------------
    def _grow(self, r: LiveRequest, n: int) -> bool:
        """Give `r` the blocks its next `n` tokens need (vLLM's allocate_slots)."""
        need = -(-(r.computed + n) // self.bs) - r.cap // self.bs
        if need > 0:
            if not self.pool.allocate(need):
                return False
            r.private += need
            r.cap += need * self.bs
        return True

    def _release(self, r: LiveRequest) -> None:
        self.pool.release(r.shared, r.private)
        r.shared = []
        r.private = 0
        r.cap = 0
        r.published = 0

    def _chunk(self, r: LiveRequest, budget: int) -> int:
        """Tokens `r` would compute next, within `budget` [V1SCHED, NPREFIX]."""
        n = r.prompt + r.generated - r.computed
        cap = self.cfg.long_prefill_token_threshold
        if 0 < cap < n:
            n = cap
        return min(n, budget)

    def _admit(self, r: LiveRequest, budget: int) -> int:
        """Start a waiting request: reuse its cached prefix blocks, then allocate for its
        first chunk. Returns the chunk's tokens, or 0 (and nothing changed) when the
        blocks are not there or the whole prompt must fit and does not."""
        hit = 0
        if self.caching and r.prefix_blocks and r.computed == 0:
            most = min(r.prefix_blocks, (r.prompt + r.generated - 1) // self.bs)
            hit = self.pool.cached_run(r.prefix_id, most)
        remaining = r.prompt + r.generated - hit * self.bs
        if not self.cfg.enable_chunked_prefill and remaining > budget:
            return 0
        n = min(remaining, budget)
        cap = self.cfg.long_prefill_token_threshold
        if 0 < cap < n:
            n = cap
        need = -(-(hit * self.bs + n) // self.bs) - hit
        evicted_hits = self.pool.evictable_among(r.prefix_id, hit) if hit else 0
        if need > self.pool.free - evicted_hits:
            return 0
        if hit:
            r.shared = self.pool.take_cached(r.prefix_id, hit)
            r.computed = hit * self.bs
            r.cap = r.computed
            r.published = hit
            self.hit_tokens += r.computed
        if not self._grow(r, n):  # cannot fail: checked above
            raise ServeError(f"replica {self.index}: KV allocation failed after its check")
        return n

    def _publish(self, r: LiveRequest) -> None:
        """Newly computed full prefix blocks become cached for later requests."""
        upto = min(r.prefix_blocks, r.computed // self.bs)
        pool = self.pool
        for j in range(r.published, upto):
            if pool.publish((r.prefix_id, j)):
                r.private -= 1
                r.shared.append((r.prefix_id, j))
        r.published = upto

    def _preempt(self, victim: LiveRequest) -> None:
        """Recompute preemption [V1SCHED]: free everything, back to the queue's front."""
        self._release(victim)
        victim.computed = 0
        victim.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(victim)

    # --- the step ------------------------------------------------------------------------
    def begin_step(self, t: float) -> float | None:
        """Schedule and run the next step from `t`; its duration, or None when idle."""
        kind = self.cfg.kind
        if kind is SchedulerKind.NEURON:
            batch = self._schedule_neuron()
        elif kind is SchedulerKind.VLLM:
            batch = self._schedule_vllm()
        else:
            batch = self._schedule_static()
        if not batch:
            return None
        return self._run(t, batch)

    def _schedule_neuron(self) -> list[tuple[LiveRequest, int]]:
        budget = self.cfg.max_num_batched_tokens
        pre = self.prefilling
        if pre is not None:  # the next segment of a long prompt, decodes hidden
            n = self._chunk(pre, budget)
            if not self._grow(pre, n):
                raise ServeError(f"replica {self.index}: no KV blocks for a prefill segment "
                                 "inside the Neuron admission bound")
            return [(pre, n)]
        running = self.running
        if (self.waiting and len(running) < self.cfg.max_num_seqs
                and len(running) < self.kv_concurrent):
            r = self.waiting[0]
            n = self._admit(r, budget)
            if n == 0:
                raise ServeError(f"replica {self.index}: no KV blocks for a new prefill inside "
                                 "the Neuron admission bound")
            self.waiting.popleft()
            running.append(r)
            return [(r, n)]
        if not running:
            return []
        for r in running:
            if r.computed + 1 > r.cap and not self._grow(r, 1):
                raise ServeError(f"replica {self.index}: a decode ran out of KV blocks inside "
                                 "the Neuron admission bound (Neuron cannot preempt)")
        return [(r, 1) for r in running]

    def _schedule_vllm(self) -> list[tuple[LiveRequest, int]]:
        budget = self.cfg.max_num_batched_tokens
        running = self.running
        batch: list[tuple[LiveRequest, int]] = []
        preempted = False
        i = 0
        while i < len(running) and budget > 0:
            r = running[i]
            c = r.computed
            if c + 1 == r.prompt + r.generated and c < r.cap:  # a decode with room: the
                batch.append((r, 1))  # common case, kept short
                budget -= 1
                i += 1
                continue
            n = self._chunk(r, budget)
            while not self._grow(r, n):
                victim = running.pop()
                self._preempt(victim)
                preempted = True
                if victim is r:
                    break
            else:
                batch.append((r, n))
                budget -= n
                i += 1
                continue
            break
        if not preempted:
            waiting = self.waiting
            limit = self.cfg.max_num_seqs
            while waiting and len(running) < limit and budget > 0:
                r = waiting[0]
                n = self._admit(r, budget)
                if n == 0:
                    break
                waiting.popleft()
                running.append(r)
                batch.append((r, n))
                budget -= n
        return batch

    def _schedule_static(self) -> list[tuple[LiveRequest, int]]:
        running = self.running
        if not running:
            waiting = self.waiting
            while waiting and len(running) < self.cfg.max_num_seqs:
                r = waiting[0]
                if not self._grow(r, r.prompt + r.output):  # the whole sequence, up front
                    break
                running.append(waiting.popleft())
            if not running:
                return []
        budget = self.cfg.max_num_batched_tokens
        batch = []
        for r in running:
            if r.computed < r.prompt and budget > 0:
                n = min(r.prompt - r.computed, budget)
                batch.append((r, n))
                budget -= n
        if batch:
            return batch
        return [(r, 1) for r in running if r.generated < r.output]

    def _run(self, t: float, batch: list[tuple[LiveRequest, int]]) -> float:
        """Advance the step's requests, price the step and record it. A token is stored as
        the index of the step that produced it (it comes out when that step ends; the
        result maps indices to times), so one pass does it all; `end_step` hands back the
        requests that finish."""
        prefill_tokens = prefill_seqs = decode_seqs = longest = total_ctx = 0
        if self.cfg.kind is SchedulerKind.STATIC and batch[0][1] == 1:
            # the whole batch runs each decode step, finished requests as padding
            for r in self.running:
                if r.generated == r.output:
                    decode_seqs += 1
                    total_ctx += r.prompt + r.output
        log = self.log
        step = len(log.start_s)
        finishing = self.finishing
        caching = self.caching
        for r, n in batch:
            ctx = r.computed + n
            if ctx > longest:
                longest = ctx
            g = r.generated
            done = ctx == r.prompt + g  # the step samples a token for r
            if n == 1 and g and done:
                decode_seqs += 1
                total_ctx += ctx
            else:
                prefill_seqs += 1
                prefill_tokens += n
            r.computed = ctx
            if caching and r.published < r.prefix_blocks:
                self._publish(r)
            if done:
                g += 1
                r.generated = g
                r.times.append(step)
                if g == r.output:
                    finishing.append(r)
        key = (prefill_tokens, prefill_seqs, decode_seqs, longest, total_ctx)
        dt = self.memo.get(key)
        if dt is None:
            dt = float(self.cost.step_s(StepBatch(*key)))
            if not dt > 0:
                raise ServeError(f"the cost model priced a step at {dt!r} s: {StepBatch(*key)}")
            self.memo[key] = dt
        log.start_s.append(t)
        log.end_s.append(t + dt)
        log.replica.append(self.index)
        log.step_seqs.append(len(batch))
        log.running.append(len(self.running))
        log.kv_used.append(self.pool.used)
        log.queued.append(len(self.waiting))
        self.steps += 1
        self.busy_s += dt
        if prefill_seqs:
            self.prefill_steps += 1
            self.prompt_tokens += prefill_tokens
        if self.cfg.kind is SchedulerKind.NEURON:
            first = batch[0][0]
            self.prefilling = first if first.computed < first.prompt else None
        return dt
