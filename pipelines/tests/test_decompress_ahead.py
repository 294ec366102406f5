"""Decompression in a thread of its own (issue 16, item 7): same bytes, errors in order, no thread left behind."""

import gzip
import threading

import pytest

from atlas.warehouse.filereader import IngestError
from pipelines import hygiene


def _threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "atlas-decompress"]


def test_the_threaded_decompression_yields_the_same_bytes(tmp_path):
    data = b"".join(b"%d,name %d,2024-03-01\n" % (i, i) for i in range(300_000))
    path = tmp_path / "f.csv.gz"
    path.write_bytes(gzip.compress(data[: len(data) // 2]) + gzip.compress(data[len(data) // 2 :]))  # two members
    assert b"".join(hygiene._decompressed(str(path), "gzip", "f", 1 << 16)) == data
    assert not _threads()


def test_a_truncated_archive_is_refused_through_the_thread(tmp_path):
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n" * 200_000)[:-50])
    with pytest.raises(IngestError) as info:
        b"".join(hygiene._decompressed(str(path), "gzip", "cut.csv.gz"))
    assert info.value.reason_class == "corrupt_archive"
    assert not _threads()


def test_a_consumer_that_stops_early_stops_the_thread(tmp_path):
    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress((b"x" * 63 + b"\n") * 400_000))
    chunks = hygiene._decompressed(str(path), "gzip", "big", 1 << 14)
    assert next(chunks)
    chunks.close()
    assert not _threads()


def test_gzip_pieces_are_bounded_however_well_the_file_compresses(tmp_path):
    import gzip

    from pipelines import hygiene

    first, second = b"x,y\n" * 300_000, b"\0" * (8 << 20)  # the second compresses about 1000:1
    path = tmp_path / "two.gz"
    path.write_bytes(gzip.compress(first) + gzip.compress(second))
    pieces = list(hygiene._read(str(path), "gzip", "two.gz"))
    assert b"".join(pieces) == first + second
    assert max(len(p) for p in pieces) <= hygiene.CHUNK
