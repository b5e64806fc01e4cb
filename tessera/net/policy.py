"""The Neuron runtime's documented choice of collective algorithm (`Algorithm.RUNTIME`).

AUTO answers "what is the fastest this topology allows"; RUNTIME answers "what does the
Neuron runtime run", which is what a compiled model pays. The rules, each from the vendor's
pages (keys as in calibration/collectives.yaml):

- Inside one instance [CCI, "Algorithm Summary", sweet ranges stated empirically]: Mesh below
  1 MiB, RDH from 1 to 56 MiB, KangaRing above 56 MiB; Ring is "fallback only". KangaRing is
  "only relevant for TP replica-groups where all ranks in chip are in same rank-list"; on a
  one-rank-per-chip group "Ring is used rather than KangaRing" [CCI, "KangaRing Algorithm"].
  RDH needs N = 2^p ranks [CCX, "Recursive Doubling and Halving"]; other sizes fall back to
  Ring. The bounds are the calibration's `runtime_mesh_max_bytes` / `runtime_rdh_max_bytes`.
  KangaRing is described for Trn2 (four ranks per chip at LNC=2, two pairs); it is applied
  wherever a chip's ranks pair up, Trn1's two cores included (an assumption).
- Across instances with several ranks per instance [CCX, "Communication Groups - Multiple
  Ranks per Node"]: Hierarchical (intra-node reduce-scatter, inter-node all-reduce, intra-node
  all-gather; all-gather runs inter first), each stage by the algorithm best for it
  ("plug-and-play", `hierarchy`): inside, the intra-node rule above at the buffer's size;
  across, the fastest of Mesh, RDH and Ring (no thresholds published). Flat Ring only where
  no hierarchy applies ("edge cases only").
- Across instances with one rank per instance [CCX, "Algorithm Summary"]: Ring, Mesh or RDH
  by group and message size, with no numbers published: the fastest of the three.
- Send/recv and permute: the direct write, the only schedule that runs them.
- All-to-all and broadcast: the pages name no algorithm, so AUTO (the fastest of all).
- Topologies not driven by the Neuron runtime (GPUs: NCCL picks its own; ideal test rings):
  AUTO.

A choice is a short list of algorithms with how to pick among them: the first that applies
(a documented preference with its fallback) or the fastest that applies (no documented rule),
and what to run if none of them applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tessera.net.graphs import RuntimeFamily
from tessera.net.hierarchy import Hierarchy
from tessera.net.ops import CHOOSERS, Algorithm, CollectiveOp
from tessera.net.steps import GroupLayout

Op = CollectiveOp
EVERY: tuple[Algorithm, ...] = tuple(a for a in Algorithm if a not in CHOOSERS)


@dataclass(frozen=True)
class Choice:
    """Algorithms the policy allows, in order, and whether to take the fastest of them."""

    algorithms: tuple[Algorithm | Hierarchy, ...]
    fastest: bool  # True: the fastest that applies; False: the first that applies
    reason: str  # the rule, with its source
    fallback: tuple[Algorithm, ...] = ()  # the first that applies, if none of `algorithms`

    @property
    def is_auto(self) -> bool:
        """True where the policy defers to AUTO over every algorithm."""
        return self.fastest and self.algorithms == EVERY


def _first(reason: str, *algorithms: Algorithm) -> Choice:
    return Choice(algorithms, False, reason)


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB"


def runtime_choice(op: CollectiveOp, n_bytes: int, lay: GroupLayout) -> Choice:
    """The algorithm(s) the Neuron runtime's documented policy names for `op` on `n_bytes`
    over the group `lay` (see module doc for every rule and its source)."""
    topo = lay.rm.topology
    if topo.runtime is not RuntimeFamily.NEURON:
        return Choice(EVERY, True, "not the Neuron runtime (NCCL picks its own): AUTO")
    if op in (Op.SEND_RECV, Op.PERMUTE):
        return _first("point-to-point: a direct write [CCA]", Algorithm.DIRECT)
    if op in (Op.ALL_TO_ALL, Op.BROADCAST):
        return Choice(EVERY, True, f"the runtime pages name no algorithm for {op.value}: AUTO")
    per_instance = np.bincount(lay.rm.instance[lay.members])
    per_instance = per_instance[per_instance > 0]
    inter = (Algorithm.MESH, Algorithm.RHD, Algorithm.RING)
    intra = intra_node_choice(n_bytes, topo.runtime_size_bounds)
    if per_instance.size > 1:
        if per_instance.max() > 1:
            stages = tuple(Hierarchy(intra.algorithms, a) for a in inter)
            return Choice(stages, True, f"several ranks per instance: hierarchical, inside "
                          f"{intra.reason}, across the fastest of mesh, RDH and ring [CCX]",
                          (Algorithm.RING,))
        return Choice(inter, True, "one rank per instance: ring, mesh or RDH by size, no "
                      "thresholds published [CCX]: the fastest of the three")
    return intra


def intra_node_choice(n_bytes: int, bounds: tuple[int, int]) -> Choice:
    """The intra-node rule [CCI]: Mesh, then RDH, then KangaRing by size; Ring as fallback."""
    mesh_max, rdh_max = bounds
    if n_bytes < mesh_max:
        return _first(f"intra-node < {_mib(mesh_max)}: mesh [CCI]", Algorithm.MESH)
    if n_bytes < rdh_max:
        return _first(f"intra-node {_mib(mesh_max)} - {_mib(rdh_max)}: RDH, ring if the "
                      f"group is not 2^p [CCI, CCX]", Algorithm.RHD, Algorithm.RING)
    return _first(f"intra-node >= {_mib(rdh_max)}: KangaRing where every rank of each chip "
                  f"is in the group, else ring [CCI]", Algorithm.KANGARING, Algorithm.RING)


def default_algorithm(runtime: RuntimeFamily) -> Algorithm:
    """RUNTIME on Neuron topologies (the runtime's documented policy), AUTO elsewhere."""
    return Algorithm.RUNTIME if runtime is RuntimeFamily.NEURON else Algorithm.AUTO
