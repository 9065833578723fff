"""`rt-mer plot` drawing (rt_mer.ui.plot): one panel per file, black-and-white
cues, corner labels kept clear, and the missing extra named."""
from __future__ import annotations

import pytest

pytest.importorskip("matplotlib", reason="the [plot] extra is not installed")

from rt_mer.ui import plot  # noqa: E402


def test_black_and_white_cues_and_the_layout_of_a_section(analysis):
    figure, = plot.figures(plot.read_trajectories(analysis))
    sections = figure.subfigs
    assert len(sections) == 2 and sections[0]._suptitle.get_text() == "first.wav (va.csv)"
    series, band, plane, colourbar = sections[1].axes
    valence, arousal = series.get_lines()[:2]
    assert valence.get_linestyle() != arousal.get_linestyle()                   # not colour alone
    assert {text.get_text() for text in plane.texts} == {"1 happy", "2 tense", "3 sad", "4 calm"}
    assert colourbar.get_ylabel() == "time"
    hatches = [hatch for _, _, hatch in plot.QUADRANTS.values()]
    assert len(set(hatches)) == 4                                               # every quadrant its own pattern
    shown = set(plot.read_trajectories(analysis)[1].quadrant)
    assert {collection.get_hatch() or "" for collection in band.collections} == \
        {plot.QUADRANTS[number][2] for number in shown}


def test_a_path_through_every_corner_covers_no_quadrant_name(tmp_path):
    """The quadrant names sit outside the plane, clear of the frame, the
    path, the start and end markers (which may overhang the frame) and the
    tick labels, even for a path that visits all four corners."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox
    corners = [(0.99, 0.99), (-1, 1), (-0.99, -0.99), (1, -1), (0.98, 0.99)]
    csv_path = tmp_path / "corners.csv"
    csv_path.write_text("file,t_start,t_end,valence,arousal,quadrant,mood\n" + "".join(
        f"c.wav,{i},{i + 4},{v},{a},{1 if v >= 0 <= a else 2 if a >= 0 else 3 if v < 0 else 4},x\n"
        for i, (v, a) in enumerate(corners)))
    figure, = plot.figures(plot.read_trajectories(csv_path))
    renderer = FigureCanvasAgg(figure).get_renderer()
    plane = figure.subfigs[0].axes[2]
    reach = plot.MARKER_REACH * figure.dpi / 72                     # points to pixels
    frame = plane.get_window_extent(renderer)
    covered = Bbox.from_extents(frame.x0 - reach, frame.y0 - reach, frame.x1 + reach, frame.y1 + reach)
    ticks = [label.get_window_extent(renderer) for label in plane.get_xticklabels() + plane.get_yticklabels()]
    names = {text.get_text(): text.get_window_extent(renderer) for text in plane.texts}
    assert set(names) == {"1 happy", "2 tense", "3 sad", "4 calm"}
    whole = figure.bbox
    for name, box in names.items():
        assert not box.overlaps(covered), name
        assert not any(box.overlaps(tick) for tick in ticks), name
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1 and whole.y0 <= box.y0 and box.y1 <= whole.y1, name
