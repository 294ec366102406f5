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


def test_gzip_is_inflated_by_isa_l_with_zlib_s_bytes(tmp_path):
    import zlib

    from isal import isal_zlib

    assert hygiene._gzip_inflater() is isal_zlib.decompressobj
    data = b"".join(b"%d,x%d\n" % (i, i * 7) for i in range(100_000))
    path = tmp_path / "f.csv.gz"
    path.write_bytes(gzip.compress(data, compresslevel=9))
    inflated = b"".join(hygiene._read(str(path), "gzip", "f"))
    assert inflated == data == zlib.decompress(path.read_bytes(), wbits=31)


def test_a_damaged_deflate_stream_is_a_corrupt_archive_not_a_crash(tmp_path):
    # Not truncated: bytes in the middle of the stream overwritten (ISA-L's own error class).
    packed = bytearray(gzip.compress(bytes(range(256)) * 4000, compresslevel=1))
    packed[30:60] = b"\xff" * 30
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(IngestError) as info:
        b"".join(hygiene._decompressed(str(path), "gzip", "bad.csv.gz"))
    assert info.value.reason_class == "corrupt_archive" and "bad.csv.gz" in str(info.value)
    assert not _threads()
