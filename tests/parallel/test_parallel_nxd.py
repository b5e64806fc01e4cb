"""The NxD port (`tessera.parallel.nxd`) computes what plain PyTorch modules do in one process.

Ranks are forked by `tessera.parallel.launch.spawn` (gloo, CPU) with a deadline on every run:
TP=2 on 2 ranks and TP=2 x DP=2 on 4. Each rank builds the NxD layers seeded as the
reference `nn.Linear` / `nn.Embedding` are, runs its data-parallel slice of one batch, and
returns plain tensors: its outputs and input gradients, and the weight gradients summed over
data parallelism and gathered over tensor parallelism. The parent runs the reference on the
whole batch and compares (fp32, atol 1e-6). Every tensor is a few hundred bytes.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.tensor import DTensor

from tessera.parallel import nxd
from tessera.parallel.errors import ParallelError
from tessera.parallel.launch import spawn

TIMEOUT_S = 30.0
ATOL = 1e-6
BATCH, SEQ, IN, HIDDEN, OUT = 4, 3, 8, 16, 6
VOCAB, DIM = 12, 4
LAYOUTS = {"tp2": (2, 2), "tp2xdp2": (4, 2)}  # name -> (world size, tp)
Result = dict[str, Any]


# --- the data and the reference (one process) ---------------------------------------------

def _data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"x": torch.randn(BATCH, SEQ, IN, generator=g),
            "gy": torch.randn(BATCH, SEQ, OUT, generator=g),  # d loss / d output
            "ids": torch.randint(0, VOCAB, (BATCH, SEQ), generator=g),
            "ge": torch.randn(BATCH, SEQ, DIM, generator=g)}


def _mlp_step(up: nn.Module, down: nn.Module, x: torch.Tensor, gy: torch.Tensor) -> tuple:
    x = x.clone().requires_grad_()
    y = down(F.gelu(up(x)))
    (y * gy).sum().backward()
    return y.detach(), x.grad


def _embedding_step(emb: nn.Module, ids: torch.Tensor, ge: torch.Tensor) -> torch.Tensor:
    e = emb(ids)
    (e * ge).sum().backward()
    return e.detach()


def _reference() -> Result:
    d, out = _data(), {}
    for name, variant in (("mlp", 0), ("mlp_full", 1)):
        torch.manual_seed(variant)
        up, down = nn.Linear(IN, HIDDEN), nn.Linear(HIDDEN, OUT)
        out[f"{name}.init"] = [p.detach().clone() for p in (*up.parameters(),
                                                            *down.parameters())]
        out[f"{name}.y"], out[f"{name}.dx"] = _mlp_step(up, down, d["x"], d["gy"])
        out[f"{name}.grads"] = [p.grad for p in (*up.parameters(), *down.parameters())]
    for name, variant in (("emb", 2), ("emb_cols", 3)):
        torch.manual_seed(variant)
        emb = nn.Embedding(VOCAB, DIM)
        out[f"{name}.init"] = [emb.weight.detach().clone()]
        out[f"{name}.y"] = _embedding_step(emb, d["ids"], d["ge"])
        out[f"{name}.grads"] = [emb.weight.grad]
    return out


# --- what the ranks run (module level: spawn forks) ---------------------------------------

def _full(t: torch.Tensor, dp_sum: bool) -> torch.Tensor:
    """A DTensor (or plain tensor) whole: summed over data parallelism if asked (the
    gradient all-reduce DDP would do), gathered over tensor parallelism."""
    local = (t.to_local() if isinstance(t, DTensor) else t).detach().clone()
    if dp_sum:
        dist.all_reduce(local, group=nxd.get_data_parallel_group())
    if isinstance(t, DTensor):
        local = DTensor.from_local(local, t.device_mesh, t.placements).full_tensor()
    return local


def _error(call: Any) -> str:
    try:
        call()
    except ParallelError as exc:
        return str(exc)
    return "no error"


def _queries() -> dict[str, Any]:
    return {"tp": (nxd.get_tensor_model_parallel_size(), nxd.get_tensor_model_parallel_rank()),
            "dp": (nxd.get_data_parallel_size(), nxd.get_data_parallel_rank()),
            "pp": (nxd.get_pipeline_model_parallel_size(),
                   nxd.get_pipeline_model_parallel_rank()),
            "tp_group": dist.get_process_group_ranks(nxd.get_tensor_model_parallel_group()),
            "dp_group": dist.get_process_group_ranks(nxd.get_data_parallel_group()),
            "tp_groups": nxd.get_tensor_model_parallel_group(as_list=True),
            "initialized": nxd.model_parallel_is_initialized()}


def _options(x: torch.Tensor) -> Result:
    """NxD options kept: skip_bias_add, keep_master_weight, init_method. Pairs that must
    agree."""
    out: Result = {}
    for layer, kwargs in ((nxd.ColumnParallelLinear, {"gather_output": False}),
                          (nxd.RowParallelLinear, {})):
        torch.manual_seed(4)
        plain = layer(IN, IN, **kwargs)
        torch.manual_seed(4)
        skip = layer(IN, IN, skip_bias_add=True, keep_master_weight=True, **kwargs)
        y, bias = skip(x)
        out[f"{layer.__name__} skip_bias_add"] = (plain(x).detach(), (y + bias).detach())
        out[f"{layer.__name__} master_weight"] = (skip.master_weight,
                                                  skip.weight.full_tensor().detach())
    ones = nxd.ColumnParallelLinear(IN, HIDDEN, init_method=nn.init.ones_)
    out["init_method"] = (ones.weight.full_tensor().detach(), torch.ones(HIDDEN, IN))
    return out


def _rank(rank: int, world: int, tp: int) -> Result:
    out: Result = {"errors": {
        "layer_before_init": _error(lambda: nxd.ColumnParallelLinear(IN, HIDDEN)),
        "query_before_init": _error(nxd.get_tensor_model_parallel_rank),
        "tp_not_dividing": _error(lambda: nxd.initialize_model_parallel(
            tensor_model_parallel_size=3)),
        "tp_times_pp": _error(lambda: nxd.initialize_model_parallel(
            tensor_model_parallel_size=2, pipeline_model_parallel_size=world)),
        "zero": _error(lambda: nxd.initialize_model_parallel(tensor_model_parallel_size=0))}}
    nxd.initialize_model_parallel(tensor_model_parallel_size=tp)
    out["queries"] = _queries()
    dp, dp_rank = nxd.get_data_parallel_size(), nxd.get_data_parallel_rank()
    d = {k: v.chunk(dp)[dp_rank] for k, v in _data().items()}  # this replica's batch slice
    out["errors"] |= {
        "uneven": _error(lambda: nxd.ColumnParallelLinear(IN, HIDDEN + 1)),
        "unported": _error(lambda: nxd.RowParallelLinear(HIDDEN, OUT,
                                                         sequence_parallel_enabled=True)),
        "input_shape": _error(lambda: nxd.RowParallelLinear(HIDDEN, OUT, input_is_parallel=True)(
            torch.ones(2, HIDDEN)))}
    for name, variant in (("mlp", 0), ("mlp_full", 1)):
        torch.manual_seed(variant)
        split = name == "mlp"  # Column(gather_output=False) -> Row(input_is_parallel=True)
        up = nxd.ColumnParallelLinear(IN, HIDDEN, gather_output=not split)
        down = nxd.RowParallelLinear(HIDDEN, OUT, input_is_parallel=split)
        params = [up.weight, up.bias, down.weight, down.bias]
        out[f"{name}.init"] = [_full(p, dp_sum=False) for p in params]
        out[f"{name}.y"], out[f"{name}.dx"] = _mlp_step(up, down, d["x"], d["gy"])
        out[f"{name}.grads"] = [_full(p.grad, dp_sum=True) for p in params]
    for name, variant in (("emb", 2), ("emb_cols", 3)):
        torch.manual_seed(variant)
        emb = nxd.ParallelEmbedding(VOCAB, DIM, shard_across_embedding=name == "emb_cols")
        out[f"{name}.init"] = [_full(emb.weight, dp_sum=False)]
        out[f"{name}.y"] = _embedding_step(emb, d["ids"], d["ge"])
        out[f"{name}.grads"] = [_full(emb.weight.grad, dp_sum=True)]
    out["options"] = _options(d["x"])
    if world == 4:  # the same 4 ranks as 2 pipeline stages of TP=2
        nxd.destroy_model_parallel()
        out["destroyed"] = nxd.model_parallel_is_initialized()
        nxd.initialize_model_parallel(tensor_model_parallel_size=2,
                                      pipeline_model_parallel_size=2)
        out["pp_queries"] = _queries()
    nxd.destroy_model_parallel()
    return out


# --- tests ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference() -> Result:
    return _reference()


@pytest.fixture(scope="module")
def runs() -> dict[str, list[Result]]:
    """Each layout's rank results, spawned once for the whole module."""
    return {}


def _results(runs: dict[str, list[Result]], name: str) -> list[Result]:
    if name not in runs:
        world, tp = LAYOUTS[name]
        runs[name] = spawn(_rank, world, timeout_s=TIMEOUT_S, args=(tp,))
    return runs[name]


@pytest.fixture(params=list(LAYOUTS))
def layout(request: pytest.FixtureRequest, runs: dict) -> tuple[str, list[Result]]:
    return request.param, _results(runs, request.param)


def _close(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    assert torch.allclose(got, want, atol=ATOL, rtol=0), \
        f"{what}: differs by {(got - want).abs().max().item():.2e}"


def _dp_slice(t: torch.Tensor, rank: int, world: int, tp: int) -> torch.Tensor:
    dp = world // tp
    return t.chunk(dp)[rank // tp]


def test_weights_start_as_the_seeded_plain_modules(layout: tuple, reference: Result) -> None:
    name, results = layout
    for rank, res in enumerate(results):
        for key in ("mlp", "mlp_full", "emb", "emb_cols"):
            for i, (got, want) in enumerate(zip(res[f"{key}.init"], reference[f"{key}.init"],
                                                strict=True)):
                assert torch.equal(got, want), f"{name} rank {rank}: {key} param {i}"


def test_forward_matches_one_process(layout: tuple, reference: Result) -> None:
    name, results = layout
    world, tp = LAYOUTS[name]
    for rank, res in enumerate(results):
        for key in ("mlp", "mlp_full", "emb", "emb_cols"):
            _close(res[f"{key}.y"], _dp_slice(reference[f"{key}.y"], rank, world, tp),
                   f"{name} rank {rank} {key} output")


def test_gradients_match_one_process(layout: tuple, reference: Result) -> None:
    name, results = layout
    world, tp = LAYOUTS[name]
    for rank, res in enumerate(results):
        for key in ("mlp", "mlp_full"):
            _close(res[f"{key}.dx"], _dp_slice(reference[f"{key}.dx"], rank, world, tp),
                   f"{name} rank {rank} {key} input gradient")
        for key in ("mlp", "mlp_full", "emb", "emb_cols"):
            for i, (got, want) in enumerate(zip(res[f"{key}.grads"],
                                                reference[f"{key}.grads"], strict=True)):
                _close(got, want, f"{name} rank {rank} {key} param {i} gradient")


def test_kept_nxd_options_behave_as_in_nxd(layout: tuple) -> None:
    name, results = layout
    for rank, res in enumerate(results):
        for option, (got, want) in res["options"].items():
            _close(got, want, f"{name} rank {rank} {option}")


def test_queries_name_each_ranks_place(layout: tuple) -> None:
    name, results = layout
    world, tp = LAYOUTS[name]
    dp = world // tp
    for rank, res in enumerate(results):
        q = res["queries"]
        assert q["tp"] == (tp, rank % tp) and q["dp"] == (dp, rank // tp) and q["pp"] == (1, 0)
        assert q["tp_group"] == [rank - rank % tp + i for i in range(tp)]  # tp innermost
        assert q["dp_group"] == [rank % tp + tp * i for i in range(dp)]
        assert q["tp_groups"] == [[g * tp + i for i in range(tp)] for g in range(dp)]
        assert q["initialized"]


def test_pipeline_stages_are_outermost(runs: dict) -> None:
    # the 4-rank run re-initialises as pp=2 x tp=2 after its other checks
    for rank, res in enumerate(_results(runs, "tp2xdp2")):
        q = res["pp_queries"]
        assert res["destroyed"] is False
        assert q["pp"] == (2, rank // 2) and q["tp"] == (2, rank % 2) and q["dp"] == (1, 0)
        assert q["tp_group"] == [rank - rank % 2, rank - rank % 2 + 1]


def test_bad_calls_raise_one_line(layout: tuple) -> None:
    name, results = layout
    expected = {"layer_before_init": "before initialize_model_parallel",
                "query_before_init": "before initialize_model_parallel",
                "tp_not_dividing": "does not divide the world size",
                "tp_times_pp": "does not divide the world size",
                "zero": "give an int >= 1",
                "uneven": "does not divide by tensor_model_parallel_size 2",
                "unported": "sequence_parallel_enabled=True is not supported",
                "input_shape": "expected 8 (input_is_parallel=True)"}
    for rank, res in enumerate(results):
        for case, words in expected.items():
            msg = res["errors"][case]
            assert words in msg and "\n" not in msg, f"{name} rank {rank} {case}: {msg!r}"


def test_calls_without_a_process_group_raise() -> None:
    assert not nxd.model_parallel_is_initialized()
    for call in (nxd.initialize_model_parallel, nxd.get_data_parallel_size,
                 lambda: nxd.RowParallelLinear(4, 4), lambda: nxd.ParallelEmbedding(4, 4)):
        with pytest.raises(nxd.NxdError) as info:
            call()
        assert "\n" not in str(info.value)
    assert issubclass(nxd.NxdError, ParallelError)
