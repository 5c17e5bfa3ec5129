"""The origin's WHIP ingest: which forwarded access units a new WHEP viewer can start at."""

from __future__ import annotations

from streamer.origin.whip import has_idr

SPS = b"\x00\x00\x00\x01\x67\x42\xc0\x1e"
PPS = b"\x00\x00\x00\x01\x68\xce\x3c\x80"
IDR = b"\x00\x00\x01\x65\x88\x84\x00"
NON_IDR = b"\x00\x00\x00\x01\x41\x9a\x02"


def test_an_access_unit_with_an_idr_slice_is_a_start_point() -> None:
    assert has_idr(SPS + PPS + IDR)
    assert has_idr(IDR)


def test_other_access_units_are_not() -> None:
    assert not has_idr(NON_IDR)
    assert not has_idr(SPS + PPS)  # parameter sets alone: nothing to show yet
    assert not has_idr(b"")
    assert not has_idr(b"\x00\x00\x01")  # a start code cut short
    # A payload byte pattern that only looks like an IDR header inside a NAL unit's data
    # is preceded by no start code: not an IDR.
    assert not has_idr(b"\x00\x00\x00\x01\x41\x65\x65")
