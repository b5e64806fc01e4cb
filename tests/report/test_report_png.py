"""Timeline PNG: a real image is written, and big streams are merged into few bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tessera import sim
from tessera.nki import TensorSpec
from tessera.nki.kernel_files import load_kernel_file
from tessera.report import lanes, timeline_png, write_timeline_png
from tessera.report.lanes import LaneKind, queue_lanes

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "kernels"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiled() -> sim.Profile:
    kernel = load_kernel_file(EXAMPLES / "matmul_tutorial.py").kernel("matmul_tiled")
    return sim.profile(kernel, TensorSpec((1024, 512), "bfloat16"),
                       TensorSpec((1024, 2048), "bfloat16"), chip="trn1", symbolic=True)


def test_png_is_written_and_non_trivial(tiled: sim.Profile, tmp_path: Path) -> None:
    path = write_timeline_png(tiled, tmp_path / "t.png", kernel="matmul_tiled",
                              overrides={"calibration.cross_engine_sync_s": "0"})
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 20_000  # a blank figure of this size compresses to far less
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 1500 and height > 500


def test_merge_joins_only_small_gaps() -> None:
    starts = np.array([0.0, 1.0, 1.05, 5.0, 5.6])
    ends = np.array([1.0, 1.04, 2.0, 5.4, 6.0])
    s, e = timeline_png.merge_intervals(starts, ends, 0.1)  # 0.01 gaps go, 0.2 stays
    assert s.tolist() == [0.0, 5.0, 5.6] and e.tolist() == [2.0, 5.4, 6.0]
    s, e = timeline_png.merge_intervals(starts, ends, 0.25)
    assert s.tolist() == [0.0, 5.0] and e.tolist() == [2.0, 6.0]
    empty = np.array([])
    assert timeline_png.merge_intervals(empty, empty, 1.0)[0].size == 0


def test_merge_keeps_a_long_bar_that_contains_later_ones() -> None:
    s, e = timeline_png.merge_intervals(np.array([0.0, 1.0, 2.5]), np.array([3.0, 2.0, 2.6]),
                                        0.0)
    assert s.tolist() == [0.0] and e.tolist() == [3.0]


def test_bars_are_capped_for_big_streams(tiled: sim.Profile,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rows = lanes(tiled)
    pieces = sum(len(lane.pieces) for lane in rows)
    exact, whole = timeline_png._bars(rows, tiled.total_s)
    assert whole and sum(s.size for s, _ in exact) == pieces  # every instruction its bar
    monkeypatch.setattr(timeline_png, "MAX_BARS", 100)
    capped, whole = timeline_png._bars(rows, tiled.total_s)
    assert pieces > 1000 and not whole
    assert sum(s.size for s, _ in capped) <= 100
    for (s, e), lane in zip(capped, rows, strict=True):
        # merging only fills gaps: the first start and the last end of every row survive
        assert s[0] == pytest.approx(lane.pieces[0].start_s)
        assert e[-1] == pytest.approx(max(p.start_s + p.duration_s for p in lane.pieces))


def test_dma_engines_are_grouped_into_queues_and_hot_lines_labelled(tiled: sim.Profile
                                                                    ) -> None:
    rows = queue_lanes(tiled)
    labels = [lane.label for lane in rows]
    assert "dma loads" in labels and "dma stores" in labels
    assert not any(label.startswith("dma ") and label[4:].isdigit() for label in labels)
    dmas = sum(len(lane.pieces) for lane in rows if lane.kind is LaneKind.DMA_QUEUE)
    assert dmas == len(tiled.timeline.dma_engines)  # each DMA once, not once per engine
    labelled = timeline_png._hot_labels(tiled, rows)
    assert len(labelled) == 3 and all(":" in where for _, _, where in labelled)
    assert labelled[0][2].startswith("matmul_tutorial.py:")


def test_the_hbm_lane_moves_the_profiles_bytes(tiled: sim.Profile) -> None:
    edges, rate = timeline_png._hbm_rate(tiled, 300)
    moved = float(np.sum(rate * np.diff(edges)))
    assert moved == pytest.approx(tiled.hbm_read_bytes + tiled.hbm_write_bytes, rel=1e-6)
