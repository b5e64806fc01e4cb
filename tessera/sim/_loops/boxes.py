"""The address box of every access pattern (see `tessera.sim.flat` for what a box is)."""

from __future__ import annotations

import numpy as np

from tessera.sim._loops.njit import njit


@njit
def boxes(view, offset, pitch, views):  # pragma: no cover - compiled
    """Box of every access `a`: view `view[a]` (a row of the `ViewTable` `views`) at
    `offset[a]` elements, in a tensor whose HBM rows are `pitch[a]` elements."""
    m = view.shape[0]
    v_pe, v_isz, v_len, v_pattern = views.partition_elems, views.itemsize, views.dims, \
        views.pattern
    out = np.zeros((m, 4), np.int64)
    for a in range(m):
        v = view[a]
        pe, isz, n = v_pe[v], v_isz[v], v_len[v]
        off = offset[a]
        empty = False
        for d in range(n):
            if v_pattern[v, d, 1] == 0:
                empty = True
        if empty:
            continue
        if pe:  # partitions x bytes within a partition; dimension 0 walks partitions
            lo = hi = off % pe
            for d in range(1, n):
                reach = v_pattern[v, d, 0] * (v_pattern[v, d, 1] - 1)
                if reach >= 0:
                    hi += reach
                else:
                    lo += reach
            p0 = off // pe
            count = v_pattern[v, 0, 1] if n else 1
            step = max(1, v_pattern[v, 0, 0] // pe) if n else 1
            out[a, 0] = p0
            out[a, 1] = p0 + (count - 1) * step + 1
            out[a, 2] = lo * isz
            out[a, 3] = (hi + 1) * isz
            continue
        # HBM: rows of `row` elements x bytes within a row
        row = pitch[a]
        lo = hi = 0  # reach of the whole pattern
        ilo = ihi = 0  # reach of the inner dimensions
        for d in range(n):
            reach = v_pattern[v, d, 0] * (v_pattern[v, d, 1] - 1)
            if reach >= 0:
                hi += reach
                if d:
                    ihi += reach
            else:
                lo += reach
                if d:
                    ilo += reach
        first, last = off + lo, off + hi
        outer_stride = v_pattern[v, 0, 0] if n else 0
        outer_count = v_pattern[v, 0, 1] if n else 1
        col = off % row
        if first // row == last // row:  # inside one row
            out[a, 0] = first // row
            out[a, 1] = first // row + 1
            out[a, 2] = (first % row) * isz
            out[a, 3] = (last % row + 1) * isz
        elif (outer_stride > 0 and outer_stride % row == 0 and 0 <= col + ilo
              and col + ihi < row):  # the outer dimension steps whole rows
            r0 = off // row
            out[a, 0] = r0
            out[a, 1] = r0 + (outer_count - 1) * outer_stride // row + 1
            out[a, 2] = (col + ilo) * isz
            out[a, 3] = (col + ihi + 1) * isz
        else:  # wraps rows otherwise: whole rows
            out[a, 0] = first // row
            out[a, 1] = last // row + 1
            out[a, 2] = 0
            out[a, 3] = row * isz
    return out
