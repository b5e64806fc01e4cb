"""Beta-1 entry points of the top-level `nki` package (`neuronxcc.nki`, NKI 0.1).

Legacy tests run kernels as `nki.simulate_kernel(nki.baremetal(kernel)[grid], *arrays)`:
- `baremetal(kernel)` compiled a kernel to run on a NeuronDevice with numpy arrays; here it
  makes the same `Kernel` as `nki.jit`, which runs on the CPU with numpy arrays;
- `simulate_kernel(kernel, *args)` ran a kernel in the simulator and returned its outputs,
  as `nki.simulate(kernel)(*args)` does;
- `benchmark` measured latency on a NeuronDevice; there is none here (profile kernels with
  `tessera.sim`), so it is refused.
"""

from __future__ import annotations

from collections.abc import Callable

from tessera.nki.launch import jit, simulate
from tessera.nki.refusals import Refused

benchmark = Refused("nki.benchmark", "it measures latency on a NeuronDevice; profile the "
                    "kernel with tessera.sim instead")


def baremetal(kernel: Callable[..., object] | None = None, **options: object) -> object:
    """`@nki.baremetal` / `@nki.baremetal(...)`: the kernel as `nki.jit` makes it (launch
    options such as `save_neff_name` are accepted and unused)."""
    return jit(kernel, **options)


def simulate_kernel(kernel: object, *args: object, **kwargs: object) -> object:
    """Run `kernel` on `args` in the CPU simulator and return its outputs."""
    return simulate(kernel)(*args, **kwargs)
