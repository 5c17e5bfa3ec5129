"""FLV tag bodies for the clip's packets: what RTMP audio and video messages carry."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from streamer.testsignal.clip import AUDIO_RATE, Clip

_AVC_KEYFRAME, _AVC_INTERFRAME = 0x17, 0x27  # frame type << 4 | codec id 7 (AVC)
_AAC_HEADER = 0xAF  # sound format 10 (AAC), 44 kHz flag, 16-bit, stereo (fixed for AAC)
_SEQUENCE_HEADER, _RAW = 0, 1


@dataclass(frozen=True)
class FlvTag:
    is_video: bool
    dts: Fraction  # seconds from the clip's start
    frame: int | None
    is_keyframe: bool
    body: bytes


@dataclass(frozen=True)
class FlvClip:
    video_sequence_header: bytes
    audio_sequence_header: bytes
    metadata: dict[str, float | str | bool]
    tags: tuple[FlvTag, ...]


def _video_body(is_keyframe: bool, composition_ms: int, data: bytes) -> bytes:
    frame_type = _AVC_KEYFRAME if is_keyframe else _AVC_INTERFRAME
    return bytes([frame_type, _RAW]) + (composition_ms & 0xFFFFFF).to_bytes(3, "big") + data


def to_flv(clip: Clip) -> FlvClip:
    tags = tuple(
        FlvTag(
            is_video=p.is_video,
            dts=p.dts,
            frame=p.frame,
            is_keyframe=p.is_keyframe,
            body=(
                _video_body(p.is_keyframe, round((p.pts - p.dts) * 1000), p.data)
                if p.is_video
                else bytes([_AAC_HEADER, _RAW]) + p.data
            ),
        )
        for p in clip.packets
    )
    spec = clip.spec
    return FlvClip(
        video_sequence_header=bytes([_AVC_KEYFRAME, _SEQUENCE_HEADER, 0, 0, 0])
        + clip.video_extradata,
        audio_sequence_header=bytes([_AAC_HEADER, _SEQUENCE_HEADER]) + clip.audio_extradata,
        metadata={
            "width": float(spec.width),
            "height": float(spec.height),
            "framerate": float(spec.fps),
            "videocodecid": 7.0,
            "videodatarate": spec.video_bitrate / 1000,
            "audiocodecid": 10.0,
            "audiosamplerate": float(AUDIO_RATE),
            "audiodatarate": spec.audio_bitrate / 1000,
            "stereo": True,
            "encoder": "streamer",
        },
        tags=tags,
    )
