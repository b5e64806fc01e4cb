"""What a folder of safetensors files holds, checked against what a model expects; and the
file and rank helpers the checkpoint modules share.

A safetensors file is an 8-byte little-endian header length, a JSON header (per tensor:
dtype, shape, byte range in the data section; plus `__metadata__`, string to string) and the
raw bytes. DCP's Hugging Face storage writes one such file per rank and puts each shard's
offset in the global tensor into `__metadata__["DCP_SHARDING_INFO"]`. `read_index` parses
every header itself, with no unpickling and without trusting the file's length, so that a
truncated or corrupt file, a missing tensor, a wrong shape or a lost shard file turns into
a `CheckpointError` naming the file and the tensor before DCP reads a byte (DCP's reader
would copy what it finds and silently leave the rest of a tensor as it was).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from tessera.parallel.errors import CheckpointError

SHARDING_KEY = "DCP_SHARDING_INFO"  # DCP's own metadata key (torch/distributed/checkpoint)
_HEADER_LEN_BYTES = 8
# safetensors dtype codes and their widths in bytes
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2,
                "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
_DTYPE_CODES = {torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16",
                torch.int32: "I32", torch.int64: "I64", torch.float16: "F16",
                torch.bfloat16: "BF16", torch.float32: "F32", torch.float64: "F64",
                torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2"}


@dataclass(frozen=True)
class Chunk:
    """One stored piece of a tensor: its file, and where it sits in the global tensor."""

    file: Path
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]


@dataclass(frozen=True)
class SavedTensor:
    """A tensor as the files of one folder hold it: dtype code, global shape, pieces."""

    name: str
    dtype: str  # safetensors code: F32, BF16, ...
    shape: tuple[int, ...]  # the global shape: the furthest any chunk reaches
    chunks: tuple[Chunk, ...]

    @property
    def first_file(self) -> Path:
        """The file of the first chunk, for error messages."""
        return self.chunks[0].file


def dtype_code(dtype: torch.dtype) -> str:
    """The safetensors code of a torch dtype (its name when safetensors has none)."""
    return _DTYPE_CODES.get(dtype, str(dtype).removeprefix("torch."))


def read_index(files: Iterable[Path]) -> dict[str, SavedTensor]:
    """Every tensor the given safetensors files hold, with its chunks; a file that is
    truncated or whose header is corrupt raises `CheckpointError` naming it."""
    pieces: dict[str, list[tuple[str, Chunk]]] = {}
    for file in sorted(files):
        for name, (dtype, chunk) in _read_header(file).items():
            pieces.setdefault(name, []).append((dtype, chunk))
    index = {}
    for name, found in pieces.items():
        dtypes = {dtype for dtype, _ in found}
        if len(dtypes) > 1:
            raise CheckpointError(f"{found[1][1].file}: tensor {name} is stored as "
                                  f"{' and '.join(sorted(dtypes))} in different files")
        chunks = tuple(chunk for _, chunk in found)
        ndim = len(chunks[0].sizes)
        if any(len(c.sizes) != ndim for c in chunks):
            raise CheckpointError(f"{found[1][1].file}: tensor {name} has pieces of "
                                  "different ranks in different files")
        shape = tuple(max(c.offsets[d] + c.sizes[d] for c in chunks) for d in range(ndim))
        index[name] = SavedTensor(name, dtypes.pop(), shape, chunks)
    return index


def check_index(index: Mapping[str, SavedTensor], expected: Mapping[str, torch.Tensor],
                folder: Path, *, check_dtype: bool = True) -> None:
    """Raise `CheckpointError` unless `index` holds every tensor of `expected` (name ->
    a tensor or DTensor of the model's global shape), whole, with its shape (and dtype)."""
    for name, tensor in expected.items():
        saved = index.get(name)
        if saved is None:
            raise CheckpointError(f"{folder}: tensor {name} is in none of the safetensors "
                                  f"files")
        shape = tuple(tensor.shape)
        if saved.shape != shape:
            raise CheckpointError(f"{saved.first_file}: tensor {name} has shape "
                                  f"{list(saved.shape)}; the model's is {list(shape)}")
        if check_dtype and saved.dtype != dtype_code(tensor.dtype):
            raise CheckpointError(f"{saved.first_file}: tensor {name} is {saved.dtype}; the "
                                  f"model's is {dtype_code(tensor.dtype)}")
        # DCP writes each element once (replicas are deduplicated), so fewer stored elements
        # than the tensor has means a shard is missing
        stored = sum(math.prod(c.sizes) for c in saved.chunks)
        if stored < math.prod(shape):
            raise CheckpointError(f"{saved.first_file}: tensor {name}: the files hold "
                                  f"{stored} of its {math.prod(shape)} elements (a shard "
                                  "file is missing)")


def _read_header(file: Path) -> dict[str, tuple[str, Chunk]]:
    """name -> (dtype code, chunk) of one safetensors file, checked against its length."""
    try:
        size_bytes = file.stat().st_size
        with file.open("rb") as stream:
            head = stream.read(_HEADER_LEN_BYTES)
            if len(head) < _HEADER_LEN_BYTES:
                raise CheckpointError(f"{file}: truncated ({size_bytes} bytes, no header)")
            (header_bytes,) = struct.unpack("<Q", head)
            if header_bytes > size_bytes - _HEADER_LEN_BYTES:
                raise CheckpointError(f"{file}: truncated inside its header ({size_bytes} "
                                      f"bytes, header of {header_bytes})")
            header = json.loads(stream.read(header_bytes))
    except OSError as err:
        raise CheckpointError(f"{file}: cannot be read: {err}") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{file}: corrupt header: {err}") from err
    if not isinstance(header, dict):
        raise CheckpointError(f"{file}: corrupt header: not a JSON object")
    data_bytes = size_bytes - _HEADER_LEN_BYTES - header_bytes
    sharding = _sharding(file, header.pop("__metadata__", None))
    entries = {}
    for name, entry in header.items():
        dtype, shape, (begin, end) = _entry(file, name, entry)
        if end > data_bytes:
            raise CheckpointError(f"{file}: tensor {name} ends at byte {end} of the data but "
                                  f"the file holds {data_bytes} (truncated)")
        if end - begin != math.prod(shape) * _DTYPE_BYTES[dtype]:
            raise CheckpointError(f"{file}: tensor {name}: {end - begin} bytes for shape "
                                  f"{shape} of {dtype} (corrupt header)")
        offsets = sharding.get(name, [0] * len(shape))
        if len(offsets) != len(shape):
            raise CheckpointError(f"{file}: tensor {name}: offsets {offsets} do not match "
                                  f"shape {shape} (corrupt header)")
        entries[name] = (dtype, Chunk(file, tuple(offsets), tuple(shape)))
    return entries


def _entry(file: Path, name: str, entry: object) -> tuple[str, list[int], list[int]]:
    try:
        dtype, shape, span = entry["dtype"], entry["shape"], entry["data_offsets"]  # type: ignore[index]
        if dtype not in _DTYPE_BYTES or len(span) != 2 or any(d < 0 for d in shape):
            raise ValueError(entry)
        return dtype, [int(d) for d in shape], [int(b) for b in span]
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{file}: tensor {name}: corrupt header entry {entry!r}") from err


def _sharding(file: Path, metadata: object) -> dict[str, list[int]]:
    """name -> offset in the global tensor, from DCP's metadata (none: a whole tensor)."""
    if not isinstance(metadata, dict) or SHARDING_KEY not in metadata:
        return {}
    try:
        info = json.loads(metadata[SHARDING_KEY])
        return {name: [int(o) for o in item["saved_offsets"]] for name, item in info.items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{file}: corrupt {SHARDING_KEY} metadata: {err}") from err


def write_synced(path: Path, text: str) -> None:
    """Write `text` to `path` and fsync it, so a crash after this leaves the whole file."""
    with path.open("w") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())


def fsync_dir(path: Path) -> None:
    """fsync a folder, so the names created or renamed in it survive a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def one_line(err: BaseException) -> str:
    """An exception as one line: its type and the first line of its message (DCP's span
    every failing rank's traceback)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


@contextlib.contextmanager
def single_process_quiet() -> Iterator[None]:
    """Without DCP's warning that it runs in one process: here that is meant."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def distributed() -> bool:
    """Whether a default process group is up (else everything runs in this process)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank, 0 without a process group."""
    return dist.get_rank() if distributed() else 0


def world_size() -> int:
    """The number of ranks, 1 without a process group."""
    return dist.get_world_size() if distributed() else 1


def barrier() -> None:
    """Wait for every rank (nothing to wait for without a process group)."""
    if distributed():
        dist.barrier()


def load_checked(path: Path, tensors: dict[str, torch.Tensor],
                 index: Mapping[str, SavedTensor], unexpected: Iterable[str]) -> None:
    """Refuse the first saved tensor in `unexpected` (naming its file), then read the
    checkpoint at `path` into `tensors` through DCP's safetensors reader, any failure as
    one CheckpointError line."""
    import torch.distributed.checkpoint as dcp

    extra = sorted(unexpected)
    if extra:
        raise CheckpointError(f"{index[extra[0]].first_file}: tensor {extra[0]} is not in "
                              "the model")
    try:
        with single_process_quiet():
            dcp.load(tensors, storage_reader=dcp.HuggingFaceStorageReader(str(path)),
                     no_dist=not distributed())
    except Exception as err:  # DCP wraps every rank's failure; keep the message one line
        raise CheckpointError(f"{path}: loading failed: {one_line(err)}") from err
