"""The token-gather example (examples/kernels/token_gather.py: a device loop bounded by a
count read into a register at run time, indirect DMAs) against its numpy reference. The
register and loop instructions themselves: tests/nki/test_isa_registers.py, test_loops.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tessera import nki, sim
from tessera.nki.errors import NkiError
from tessera.nki.kernel_files import load_kernel_file
from tessera.nki.stream import Opcode

GATHER = Path(__file__).resolve().parents[2] / "examples" / "kernels" / "token_gather.py"


@pytest.fixture(scope="module")
def gather():
    return load_kernel_file(GATHER)


@pytest.mark.parametrize("count", [0, 1, 128, 150, 256])
def test_token_gather_matches_numpy(gather, count):
    inputs = gather.module.example_inputs(tokens=300, hidden=64, capacity=256, count=count)
    res = nki.trace(gather.kernel("token_gather"))(*inputs)
    np.testing.assert_array_equal(res.outputs, gather.module.reference(*inputs))
    controls = [i for i in res.instructions if i.opcode is Opcode.REGISTER_MOVE]
    assert len(controls) == 1 + -(-count // 128)  # entry + one per 128-token block
    assert sim.schedule(res, "trn2").total_s > 0


def test_token_gather_checks_capacity(gather):
    hidden, ids, count = gather.module.example_inputs(tokens=300, hidden=64, capacity=256)
    with pytest.raises((AssertionError, NkiError), match="multiple of 128"):
        nki.trace(gather.kernel("token_gather"))(hidden, ids[:200], count)
