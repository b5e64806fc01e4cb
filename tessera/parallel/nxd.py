"""NxD's names over PyTorch DTensor: a porting aid for users of the retired neuronx-distributed.

    from tessera.parallel import nxd

    nxd.initialize_model_parallel(tensor_model_parallel_size=2)   # default group already up
    up = nxd.ColumnParallelLinear(1024, 4096, gather_output=False)
    down = nxd.RowParallelLinear(4096, 1024, input_is_parallel=True)
    y = down(torch.relu(up(x)))                                    # x and y: full, plain tensors

`initialize_model_parallel` builds one `DeviceMesh` ("pp", "dp", "tp"; tp innermost, as NxD
and Megatron order the ranks) over the initialised default process group, and the query
functions read it. The layers keep their weights as DTensors sharded over the "tp" mesh
dimension (checkpointable with `torch.distributed.checkpoint`) and do every collective with
DTensor's own `from_local` / `redistribute`, whose backward passes PyTorch defines; no
autograd function here moves data between ranks. Inputs and outputs are plain local tensors,
as NxD's are. Data parallelism is the caller's, over `get_data_parallel_group()` or the
mesh's "dp" dimension (DDP, FSDP2); pipeline stages are `torch.distributed.pipelining`'s.

Weights are built whole on every rank, in float32, with the init of `nn.Linear` /
`nn.Embedding` (or NxD's `init_method`), then sharded: seeded alike (`torch.manual_seed`),
a layer holds exactly the slices of the plain PyTorch module built with that seed. The
shards are scattered from the first rank of each tensor-parallel group, so its ranks agree
even if their generators do not.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor

from tessera.parallel.errors import ParallelError

__all__ = [
    "ColumnParallelLinear", "NxdError", "ParallelEmbedding", "RowParallelLinear",
    "destroy_model_parallel", "get_data_parallel_group", "get_data_parallel_rank",
    "get_data_parallel_size", "get_device_mesh", "get_pipeline_model_parallel_group",
    "get_pipeline_model_parallel_rank", "get_pipeline_model_parallel_size",
    "get_tensor_model_parallel_group", "get_tensor_model_parallel_rank",
    "get_tensor_model_parallel_size", "initialize_model_parallel",
    "model_parallel_is_initialized",
]

MESH_DIMS = ("pp", "dp", "tp")
_MESH: DeviceMesh | None = None  # this process's model-parallel state, as NxD keeps it


class NxdError(ParallelError, ValueError):
    """An NxD call that cannot run as asked: sizes that do not divide, a layer or query
    before `initialize_model_parallel`, an NxD option this port does not implement."""


# --- parallel state ------------------------------------------------------------------------

def initialize_model_parallel(tensor_model_parallel_size: int = 1,
                              pipeline_model_parallel_size: int = 1) -> None:
    """Split the default group's ranks into a (pp, dp, tp) mesh, tp innermost: ranks
    `r` and `r + 1` share a tensor-parallel group, dp is what the world size leaves.
    Every rank must call it (the sub-groups are made collectively)."""
    global _MESH
    if not dist.is_available() or not dist.is_initialized():
        raise NxdError("initialize_model_parallel: no default process group; call "
                       "torch.distributed.init_process_group first (torchrun, or spawn)")
    tp, pp = tensor_model_parallel_size, pipeline_model_parallel_size
    for name, size in (("tensor_model_parallel_size", tp),
                       ("pipeline_model_parallel_size", pp)):
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise NxdError(f"initialize_model_parallel: {name}={size!r}; give an int >= 1")
    world = dist.get_world_size()
    if world % (tp * pp):
        raise NxdError(f"initialize_model_parallel: tensor_model_parallel_size {tp} x "
                       f"pipeline_model_parallel_size {pp} = {tp * pp} does not divide the "
                       f"world size {world}; choose sizes whose product divides it")
    # gloo's DTensors live on the CPU; NCCL's on the GPU of each rank
    device = "cuda" if "nccl" in str(dist.get_backend()).lower() else "cpu"
    _MESH = init_device_mesh(device, (pp, world // (tp * pp), tp), mesh_dim_names=MESH_DIMS)


def model_parallel_is_initialized() -> bool:
    """Whether `initialize_model_parallel` has run (and `destroy_model_parallel` has not)."""
    return _MESH is not None


def destroy_model_parallel() -> None:
    """Forget the mesh; the default group stays (destroy it with torch.distributed)."""
    global _MESH
    _MESH = None


def get_device_mesh() -> DeviceMesh:
    """The ("pp", "dp", "tp") mesh (not an NxD name): for `fully_shard(m, mesh=mesh["dp"])`,
    `parallelize_module(m, mesh["tp"], plan)` or DCP."""
    return _mesh("get_device_mesh")


def get_tensor_model_parallel_size() -> int:
    """Ranks in this rank's tensor-parallel group."""
    return _mesh("get_tensor_model_parallel_size").size(MESH_DIMS.index("tp"))


def get_tensor_model_parallel_rank() -> int:
    """This rank's index in its tensor-parallel group."""
    return _mesh("get_tensor_model_parallel_rank").get_local_rank("tp")


def get_tensor_model_parallel_group(as_list: bool = False) -> dist.ProcessGroup | list:
    """This rank's tensor-parallel process group, or with `as_list` (NxD's XLA form) the
    global ranks of every tensor-parallel group, one list per group."""
    return _group("tp", as_list, "get_tensor_model_parallel_group")


def get_data_parallel_size() -> int:
    """Ranks in this rank's data-parallel group: world / (tp x pp)."""
    return _mesh("get_data_parallel_size").size(MESH_DIMS.index("dp"))


def get_data_parallel_rank() -> int:
    """This rank's index in its data-parallel group."""
    return _mesh("get_data_parallel_rank").get_local_rank("dp")


def get_data_parallel_group(as_list: bool = False) -> dist.ProcessGroup | list:
    """This rank's data-parallel process group (the one to all-reduce gradients over), or
    with `as_list` the global ranks of every data-parallel group."""
    return _group("dp", as_list, "get_data_parallel_group")


def get_pipeline_model_parallel_size() -> int:
    """Pipeline stages."""
    return _mesh("get_pipeline_model_parallel_size").size(MESH_DIMS.index("pp"))


def get_pipeline_model_parallel_rank() -> int:
    """This rank's pipeline stage."""
    return _mesh("get_pipeline_model_parallel_rank").get_local_rank("pp")


def get_pipeline_model_parallel_group(as_list: bool = False) -> dist.ProcessGroup | list:
    """This rank's pipeline group (one rank per stage), or with `as_list` every such group."""
    return _group("pp", as_list, "get_pipeline_model_parallel_group")


def _mesh(caller: str) -> DeviceMesh:
    if _MESH is None:
        raise NxdError(f"{caller} before initialize_model_parallel(); call it first, on "
                       "every rank")
    return _MESH


def _group(dim: str, as_list: bool, caller: str) -> dist.ProcessGroup | list:
    mesh = _mesh(caller)
    if not as_list:
        return mesh.get_group(dim)
    # move `dim` last and flatten the rest: each row is one group's global ranks
    ranks = mesh.mesh.movedim(MESH_DIMS.index(dim), -1)
    return ranks.reshape(-1, ranks.shape[-1]).tolist()


# --- layers --------------------------------------------------------------------------------

def _tp_mesh(layer: str) -> DeviceMesh:
    if _MESH is None:
        raise NxdError(f"{layer} built before initialize_model_parallel(); call it first, "
                       "on every rank")
    return _MESH["tp"]


def _per_rank(size: int, tp: int, what: str, layer: str) -> int:
    # NxD's `divide`: uneven shards are refused rather than padded (pad=True is not ported)
    if size % tp:
        raise NxdError(f"{layer}: {what} {size} does not divide by "
                       f"tensor_model_parallel_size {tp}; choose a multiple of {tp}")
    return size // tp


def _refuse(layer: str, **options: tuple[object, object]) -> None:
    """NxD options this port lacks are accepted at their defaults and refused otherwise."""
    for name, (value, default) in options.items():
        if value != default:
            raise NxdError(f"{layer}: {name}={value!r} is not supported by "
                           f"tessera.parallel.nxd (see docs/parallel_nxd.md); leave it at "
                           f"{default!r}")


def _linear_init(out_features: int, in_features: int, bias: bool,
                 init_method: Callable[[torch.Tensor], object] | None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The whole weight and bias, drawn in nn.Linear's order and bounds (so the same seed
    gives the same numbers); float32 first, as NxD draws its master weight."""
    weight = torch.empty(out_features, in_features)
    if init_method is None:
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    else:
        init_method(weight)
    if not bias:
        return weight, None
    bound = 1 / math.sqrt(in_features) if in_features > 0 else 0.0
    return weight, torch.empty(out_features).uniform_(-bound, bound)


def _param(full: torch.Tensor, mesh: DeviceMesh, placement, dtype: torch.dtype  # noqa: ANN001
           ) -> nn.Parameter:
    return nn.Parameter(distribute_tensor(full.to(dtype), mesh, [placement]))


class _TpLayer(nn.Module):
    """Shared bookkeeping: the tp mesh and the NxD options accepted but not ported."""

    def __init__(self, layer: str, stride: int, sequence_parallel_enabled: bool,
                 pad: bool, device: torch.device | str | None) -> None:
        super().__init__()
        self.mesh = _tp_mesh(layer)
        self.tensor_model_parallel_size = self.mesh.size()
        _refuse(layer, stride=(stride, 1), pad=(pad, False),
                sequence_parallel_enabled=(sequence_parallel_enabled, False))
        if device is not None and torch.device(device).type not in ("cpu",
                                                                    self.mesh.device_type):
            raise NxdError(f"{layer}: device={device!r}; weights live on the mesh's "
                           f"{self.mesh.device_type!r} devices, leave device unset")

    def _from_local(self, tensor: torch.Tensor, placement) -> DTensor:  # noqa: ANN001
        return DTensor.from_local(tensor, self.mesh, [placement], run_check=False)

    def _init_linear(self, input_size: int, output_size: int, bias: bool,
                     init_method: Callable[[torch.Tensor], object] | None, dtype: torch.dtype,
                     keep_master_weight: bool, weight_placement, bias_placement) -> None:  # noqa: ANN001
        """The whole [output, input] weight (and bias) initialised once, then placed on the
        tp mesh; `master_weight` keeps the unsplit weight when asked."""
        with torch.no_grad():
            weight, b = _linear_init(output_size, input_size, bias, init_method)
            self.weight = _param(weight, self.mesh, weight_placement, dtype)
            self.bias = None if b is None else _param(b, self.mesh, bias_placement, dtype)
        self.master_weight = weight.to(dtype) if keep_master_weight else None


class ColumnParallelLinear(_TpLayer):
    """`y = x A^T + b` with A's rows (the output features) split over the tp ranks.

    `forward(x)` takes the full input `[..., input_size]` (the same on every tp rank) and
    returns the full output, or with `gather_output=False` this rank's slice
    `[..., output_size / tp]` (the input a `RowParallelLinear(input_is_parallel=True)` wants).
    With `skip_bias_add` it returns `(output without bias, bias)`, the bias matching the
    output's extent. `init_method(weight)` initialises the whole `[output, input]` weight.
    """

    def __init__(self, input_size: int, output_size: int, bias: bool = True,
                 gather_output: bool = True, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None, stride: int = 1,
                 init_method: Callable[[torch.Tensor], object] | None = None,
                 sequence_parallel_enabled: bool = False, keep_master_weight: bool = False,
                 skip_bias_add: bool = False, pad: bool = False) -> None:
        name = type(self).__name__
        super().__init__(name, stride, sequence_parallel_enabled, pad, device)
        self.input_size, self.output_size = input_size, output_size
        self.output_size_per_partition = _per_rank(output_size, self.tensor_model_parallel_size,
                                                   "output_size", name)
        self.gather_output, self.skip_bias_add = gather_output, skip_bias_add
        # the bias is split like the output features it is added to
        self._init_linear(input_size, output_size, bias, init_method, dtype,
                          keep_master_weight, Shard(0), Shard(0))

    def forward(self, input: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Full input in; full output (`gather_output`) or this rank's output slice out."""
        if input.shape[-1] != self.input_size:
            raise NxdError(f"ColumnParallelLinear: input's last dim is {input.shape[-1]}, "
                           f"the layer's input_size is {self.input_size}")
        # Replicate in, so backward sums the input gradient over the tp ranks (all-reduce)
        x = self._from_local(input, Replicate())
        y = F.linear(x, self.weight, None if self.skip_bias_add else self.bias)
        out = self._local(y)
        if not self.skip_bias_add:
            return out
        return out, None if self.bias is None else self._local(self.bias)

    def _local(self, t: DTensor) -> torch.Tensor:
        # gathered: all-gather forward, slice backward; else the slice itself
        return (t.redistribute(self.mesh, [Replicate()]) if self.gather_output else t).to_local()

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, output_size={self.output_size}, "
                f"tp={self.tensor_model_parallel_size}, gather_output={self.gather_output}")


class RowParallelLinear(_TpLayer):
    """`y = x A^T + b` with A's columns (the input features) split over the tp ranks.

    `forward(x)` takes the full input `[..., input_size]`, or with `input_is_parallel` this
    rank's slice `[..., input_size / tp]` of it (a `ColumnParallelLinear(gather_output=False)`
    output), and returns the full output, the partial products summed over the tp ranks
    (all-reduce) and the bias (not split) added once. With `skip_bias_add`:
    `(output without bias, bias)`.
    """

    def __init__(self, input_size: int, output_size: int, bias: bool = True,
                 input_is_parallel: bool = False, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None, stride: int = 1,
                 init_method: Callable[[torch.Tensor], object] | None = None,
                 sequence_parallel_enabled: bool = False, keep_master_weight: bool = False,
                 skip_bias_add: bool = False, pad: bool = False) -> None:
        name = type(self).__name__
        super().__init__(name, stride, sequence_parallel_enabled, pad, device)
        self.input_size, self.output_size = input_size, output_size
        self.input_size_per_partition = _per_rank(input_size, self.tensor_model_parallel_size,
                                                  "input_size", name)
        self.input_is_parallel, self.skip_bias_add = input_is_parallel, skip_bias_add
        self._init_linear(input_size, output_size, bias, init_method, dtype,
                          keep_master_weight, Shard(1), Replicate())

    def forward(self, input: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Full input (or its local slice, `input_is_parallel`) in; full output out."""
        last = input.dim() - 1
        want = self.input_size_per_partition if self.input_is_parallel else self.input_size
        if input.shape[-1] != want:
            raise NxdError(f"RowParallelLinear: input's last dim is {input.shape[-1]}, "
                           f"expected {want} (input_is_parallel={self.input_is_parallel})")
        if self.input_is_parallel:
            x = self._from_local(input, Shard(last))
        else:
            # keep this rank's slice; backward all-gathers the input gradient
            x = self._from_local(input, Replicate()).redistribute(self.mesh, [Shard(last)])
        # the product is Partial (one summand per rank): all-reduce it, then add the bias
        y = F.linear(x, self.weight).redistribute(self.mesh, [Replicate()])
        if self.skip_bias_add:
            return y.to_local(), None if self.bias is None else self.bias.to_local()
        return (y if self.bias is None else y + self.bias).to_local()

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, output_size={self.output_size}, "
                f"tp={self.tensor_model_parallel_size}, "
                f"input_is_parallel={self.input_is_parallel}")


class ParallelEmbedding(_TpLayer):
    """An embedding whose table is split over the tp ranks by vocabulary rows (NxD's
    default) or, with `shard_across_embedding`, by embedding columns.

    `forward(ids)` takes the full id tensor (the same on every tp rank) and returns the full
    `[..., embedding_dim]` output: each rank looks up the ids in its rows (zeros elsewhere)
    and the parts are summed (all-reduce), or its columns are all-gathered.
    `init_method(weight)` initialises the whole table (default: `nn.init.normal_`, as
    nn.Embedding).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 padding_idx: int | None = None, max_norm: float | None = None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False,
                 init_method: Callable[[torch.Tensor], object] = nn.init.normal_,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                 shard_across_embedding: bool = False, pad: bool = False) -> None:
        name = type(self).__name__
        super().__init__(name, 1, False, pad, device)
        # padding_idx and max_norm index or renormalise rows of the whole table, which no
        # rank holds; the flags are refused rather than applied to the wrong rows
        _refuse(name, padding_idx=(padding_idx, None), max_norm=(max_norm, None),
                norm_type=(norm_type, 2.0), scale_grad_by_freq=(scale_grad_by_freq, False),
                sparse=(sparse, False))
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.shard_across_embedding = shard_across_embedding
        split, what = ((embedding_dim, "embedding_dim") if shard_across_embedding
                       else (num_embeddings, "num_embeddings"))
        _per_rank(split, self.tensor_model_parallel_size, what, name)
        with torch.no_grad():
            weight = torch.empty(num_embeddings, embedding_dim)
            init_method(weight)
            self.weight = _param(weight, self.mesh, Shard(1 if shard_across_embedding else 0),
                                 dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Full ids in, full embeddings out."""
        ids = self._from_local(input, Replicate())
        # vocabulary-split: DTensor masks out-of-range ids per rank and leaves a partial sum
        out = F.embedding(ids, self.weight)
        return out.redistribute(self.mesh, [Replicate()]).to_local()

    def extra_repr(self) -> str:
        return (f"{self.num_embeddings}, {self.embedding_dim}, "
                f"tp={self.tensor_model_parallel_size}, "
                f"shard_across_embedding={self.shard_across_embedding}")
