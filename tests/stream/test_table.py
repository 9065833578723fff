"""The CSV table (rt_mer.stream.table): resume after a stop at any byte."""
from __future__ import annotations

from support.files import read_csv


def test_resume_reads_any_file_name_and_every_place_a_stop_can_cut(tmp_path):
    """The journal cut at every byte: resume keeps exactly the files before
    the last one it can see, and leaves whole rows only (names with commas,
    quotes and a newline included)."""
    from rt_mer.stream.table import HEADER as COLUMNS, Table, resume
    names = ["plain.wav", 'a, "quoted"\nname.wav', "third.wav"]
    out = tmp_path / "va.csv"
    table = Table(out, COLUMNS, journal=True)
    for name in names:
        table.write([[name, f"{t:.3f}", "4.000", "0.1000", "0.2000", "1", "happy"] for t in range(2)])
    table.close(True)
    whole = out.read_bytes()
    row_ends = [i + len(b"happy\r\n") for i in range(len(whole)) if whole.startswith(b"happy\r\n", i)]
    first_row_ends = row_ends[::2]      # two rows a file
    for cut in range(len(whole) + 1):
        out.write_bytes(whole[:cut])
        done = resume(out, None)
        kept = out.read_bytes()
        assert whole.startswith(kept)
        rows = read_csv(out) if kept else []
        assert all(len(row) == len(COLUMNS) and row["mood"] == "happy" for row in rows), cut
        assert done == {row["file"] for row in rows}
        seen = [name for name, end in zip(names, first_row_ends) if end <= cut]   # with a whole row
        assert done == set(seen[:-1]), cut
