from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from streamer.playback.segment import _luma
from streamer.testsignal import timecode
from streamer.testsignal.clip import Clip


@pytest.mark.parametrize("number", [0, 1, 29, 30, 1799, 4095, timecode.MAX_FRAME_NUMBER])
def test_round_trip_on_a_clean_frame(number: int) -> None:
    luma = np.full((360, 640), 100, dtype=np.uint8)
    timecode.draw(luma, number)
    assert timecode.read(luma) == number


def test_unreadable_picture_is_rejected_not_misread() -> None:
    rng = np.random.default_rng(1)
    reads = [timecode.read(rng.integers(0, 256, (144, 256), dtype=np.uint8)) for _ in range(200)]
    assert reads.count(None) == 200
    assert timecode.read(np.full((144, 256), 128, dtype=np.uint8)) is None


def test_a_flipped_cell_fails_the_checksum() -> None:
    luma = np.zeros((360, 640), dtype=np.uint8)
    timecode.draw(luma, 1234)
    luma[40:60, 100:140] = 255 - luma[40:60, 100:140]  # invert one cell of the grid
    assert timecode.read(luma) is None


def test_out_of_range_frame_numbers_are_refused() -> None:
    with pytest.raises(ValueError):
        timecode.draw(np.zeros((360, 640), dtype=np.uint8), timecode.MAX_FRAME_NUMBER + 1)


def test_survives_downscale_to_144p_at_200_kbits(clip: Clip) -> None:
    """The clip, scaled to 256x144 and re-encoded at 200 kbit/s, still reads exactly."""
    encoded: list[av.Packet] = []  # type: ignore[type-arg]
    with av.open(str(clip.path)) as source:
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height, encoder.pix_fmt = 256, 144, "yuv420p"
        encoder.bit_rate = 200_000
        encoder.time_base = source.streams.video[0].time_base or Fraction(1, 30)
        encoder.options = {"preset": "ultrafast", "x264-params": "vbv-maxrate=200:vbv-bufsize=200"}
        for n, frame in enumerate(source.decode(video=0)):
            if n >= 150:
                break
            small = frame.reformat(width=256, height=144, format="yuv420p")
            encoded.extend(encoder.encode(small))
        encoded.extend(encoder.encode(None))
    decoder = av.CodecContext.create("h264", "r")
    decoded = []
    for packet in encoded:
        for frame in decoder.decode(packet):
            decoded.append(timecode.read(_luma(frame)))
    assert len(decoded) == 150
    # x264 starts a VBV-starved encode with a couple of flat grey frames: no picture to read.
    # Every frame that has one reads exactly; none is ever misread as another frame.
    assert all(code in (None, n) for n, code in enumerate(decoded))
    assert sum(code is not None for code in decoded) >= 147
