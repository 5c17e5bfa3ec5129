"""The embedded origin's LL-HLS pieces: CMAF fragments read back from the mp4 muxer, part
timing, and blocking requests held until their part exists."""

from __future__ import annotations

import asyncio
import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.frame import PictureType

from streamer.origin.cmaf import BoxStream
from streamer.origin.llhls import (
    LiveState,
    LlhlsOutput,
    audio_specific_config,
    parameter_sets,
    part_timing,
)
from streamer.origin.llhls_http import BlockingRequestError, LiveUpdates


def test_fragments_are_parts_of_whole_frames_and_keyframes_start_them() -> None:
    boxes = BoxStream()
    options = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "frag_duration": "332000"}
    out = av.open(boxes, "w", format="mp4", options=options)
    stream = out.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    stream.codec_context.time_base = Fraction(1, 1000)
    stream.options = {"preset": "ultrafast", "tune": "zerolatency", "forced-idr": "1"}
    for i in range(121):
        frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i, np.uint8), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts, frame.time_base = round(i * 1000 / 30), Fraction(1, 1000)
        frame.pict_type = PictureType.I if i % 60 == 0 else PictureType.NONE
        out.mux(stream.encode(frame))
    fragments = boxes.take()
    out.close()
    assert boxes.init is not None and b"moov" in boxes.init
    assert len(fragments) == 12  # 10 frames each: 120 frames written out
    durations = [f.duration / boxes.timescale for f in fragments]
    assert all(d == pytest.approx(1 / 3, abs=0.002) for d in durations)
    assert [f.independent for f in fragments] == [i % 6 == 0 for i in range(12)]
    starts = [f.decode_time / boxes.timescale for f in fragments]
    assert starts == pytest.approx([i / 3 for i in range(12)], abs=0.002)


def test_part_timing_is_whole_frames() -> None:
    assert part_timing(30) == (0.335, 332333)
    target, frag = part_timing(25)  # 8 frames: 320 ms
    assert target == pytest.approx(0.321) and frag == 319000


def test_parameter_sets_are_taken_from_an_annex_b_access_unit() -> None:
    sps, pps, idr = b"\x67\x42\xc0\x1e\x01", b"\x68\xce\x3c\x80", b"\x65\x88\x84"
    unit = b"\x00\x00\x00\x01" + sps + b"\x00\x00\x01" + pps + b"\x00\x00\x01" + idr
    assert parameter_sets(unit) == b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps


def test_live_state_lists_a_part_or_a_complete_segment() -> None:
    state = LiveState(msn=10, parts=2, next_part="part_32.m4s", target_duration=2.0)
    assert state.has(9, None) and state.has(10, 1) and not state.has(10, 2)
    assert not state.has(10, None)  # segment 10 is not complete yet
    assert not state.has(11, 0)


async def test_a_blocking_reload_is_held_until_its_part_is_listed(tmp_path: Path) -> None:
    updates = LiveUpdates()
    state = LiveState(msn=10, parts=2, next_part="part_32.m4s", target_duration=0.2)
    updates._set(tmp_path, state)
    waiter = asyncio.create_task(
        updates.hold_playlist(tmp_path, {"_HLS_msn": "10", "_HLS_part": "2"})
    )
    await asyncio.sleep(0.05)
    assert not waiter.done()
    updates.update(tmp_path, LiveState(10, 3, "part_33.m4s", 0.2))
    await asyncio.wait_for(waiter, 1)
    hinted = asyncio.create_task(updates.hold_part(tmp_path, "part_33.m4s"))
    await asyncio.sleep(0.05)
    assert not hinted.done()
    updates.update(tmp_path, LiveState(10, 4, "part_34.m4s", 0.2))
    assert await asyncio.wait_for(hinted, 1)
    assert not await updates.hold_part(tmp_path, "part_99.m4s")  # not the hinted one


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"_HLS_msn": "13"}, 400),  # more than two segments ahead
        ({"_HLS_part": "1"}, 400),  # a part without a segment
        ({"_HLS_msn": "x"}, 400),
        ({"_HLS_msn": "11", "_HLS_part": "0"}, 503),  # never comes: 3 target durations
    ],
)
async def test_refused_and_timed_out_blocking_reloads(
    tmp_path: Path, query: dict[str, str], status: int
) -> None:
    updates = LiveUpdates()
    updates._set(tmp_path, LiveState(10, 2, "part_32.m4s", 0.05))
    with pytest.raises(BlockingRequestError) as raised:
        await updates.hold_playlist(tmp_path, query)
    assert raised.value.status == status


def _mpegts_with_adts_audio(seconds: float) -> bytes:
    """An MPEG-TS stream as an SRT publisher sends it: H.264, and AAC in ADTS frames."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        video.options = {"preset": "ultrafast", "tune": "zerolatency", "g": "30"}
        audio = out.add_stream("aac", rate=44100)
        samples = 0
        for i in range(round(seconds * 30)):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i, np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
            while samples < (i + 1) * 44100 / 30:
                tone = av.AudioFrame.from_ndarray(
                    np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
                )
                tone.sample_rate, tone.pts = 44100, samples
                samples += 1024
                out.mux(audio.encode(tone))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return buffer.getvalue()


def test_adts_audio_from_mpegts_gets_an_audio_specific_config(tmp_path: Path) -> None:
    with av.open(io.BytesIO(_mpegts_with_adts_audio(2.5)), "r", format="mpegts") as source:
        video, audio = source.streams.video[0], source.streams.audio[0]
        assert not audio.codec_context.extradata  # ADTS: the config is in every frame
        assert audio_specific_config(audio.codec_context) == bytes([0x12, 0x10])  # LC 44.1k 2ch
        output = LlhlsOutput(tmp_path, [("64p", 64, 64, 100_000, video)], audio, 30)
        for packet in source.demux(video, audio):
            if packet.dts is None:
                continue
            if packet.stream is video:
                output.video(0, packet)
            else:
                output.audio(packet)
        output.close()
    rendition = tmp_path / "64p"
    init = (rendition / "init.mp4").read_bytes()
    esds = init.find(b"esds")
    assert esds > 0 and b"\x05\x80\x80\x80\x02\x12\x10" in init[esds:]  # DecoderSpecificInfo
    segment = sorted(rendition.glob("seg_*.m4s"))[0].read_bytes()  # the first, complete
    with av.open(io.BytesIO(init + segment), "r", format="mp4") as played:
        frames = list(played.decode(played.streams.audio[0]))
    assert len(frames) >= 40  # 2 s of AAC decodes


def test_a_failing_ll_output_stops_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with av.open(io.BytesIO(_mpegts_with_adts_audio(1.0)), "r", format="mpegts") as source:
        video = source.streams.video[0]
        output = LlhlsOutput(tmp_path, [("64p", 64, 64, 100_000, video)], None, 30)
        packets = [p for p in source.demux() if p.stream is video and p.dts is not None]
        output.video(0, packets[5])
        output.video(0, packets[1])  # timestamps going back: the mp4 muxer refuses it
        output.video(0, packets[6])  # no longer fed, and no exception into the ladder
    assert "LL-HLS output of 64p stopped" in caplog.text
