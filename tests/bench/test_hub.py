"""`rt-mer bench hub`: the hub measured against direct PUB/SUB."""
from __future__ import annotations

import pytest

from rt_mer.bench.hub import bench_hub, hub_lines


@pytest.mark.slow
def test_bench_hub_measures_the_hub_against_direct_pub_sub():
    result = bench_hub(count=20_000)
    for key in ("direct", "hub"):
        r = result[key]
        assert 0 < r["received"] <= 3 * 20_000 and r["rate"] > 0 and r["seconds"] > 0
    assert result["ratio"] == pytest.approx(result["hub"]["rate"] / result["direct"]["rate"])
    lines = hub_lines(result)
    assert len(lines) == 3 and "messages/s" in lines[0] and lines[2].startswith("hub / direct: ")
