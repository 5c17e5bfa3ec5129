"""The decode policy: every frame of the cheapest rendition, keyframes of the others;
`full` and `keyframe` decode every rendition alike."""

from __future__ import annotations

import pytest

from streamer.playback.decoding import DecodePlan, cheapest, policy_from_env
from streamer.playback.playlist import Variant


def variant(resolution: str | None, bandwidth: int | None = None) -> Variant:
    return Variant(uri="u", bandwidth=bandwidth, resolution=resolution, codecs=None)


LADDER = {
    "1280x720": variant("1280x720", 3_000_000),
    "256x144": variant("256x144", 300_000),
    "640x360": variant("640x360", 900_000),
}


def test_the_cheapest_rendition_has_the_fewest_pixels_then_the_lowest_bandwidth() -> None:
    assert cheapest(LADDER) == "256x144"
    same_size = {"a": variant("640x360", 900_000), "b": variant("640x360", 500_000)}
    assert cheapest(same_size) == "b"
    assert cheapest({"audio": variant(None, 64_000), "v": variant("640x360", 900_000)}) == "v"
    assert cheapest({"x": variant(None), "y": variant(None)}) == "x"
    assert cheapest({}) is None


def test_lowest_decodes_every_frame_of_one_rendition_and_keyframes_of_the_others() -> None:
    decodings = DecodePlan("lowest").assign(LADDER)
    assert decodings["256x144"].mode == "full"
    assert decodings["640x360"].mode == decodings["1280x720"].mode == "keyframe"


def test_the_fully_decoded_rendition_stays_while_it_is_followed() -> None:
    plan = DecodePlan("lowest")
    plan.assign(LADDER)
    # A new, even smaller rendition appears: the frame walk of 256x144 is not cut short.
    grown = {**LADDER, "160x90": variant("160x90", 100_000)}
    assert plan.assign(grown)["256x144"].every_frame
    assert not plan.assign(grown)["160x90"].every_frame
    # Once 256x144 is gone, the cheapest of the rest takes over.
    rest = {k: v for k, v in grown.items() if k != "256x144"}
    assert plan.assign(rest)["160x90"].every_frame
    assert plan.primary == "160x90"


@pytest.mark.parametrize(("policy", "every_frame"), [("full", True), ("keyframe", False)])
def test_full_and_keyframe_treat_every_rendition_alike(policy: str, every_frame: bool) -> None:
    decodings = DecodePlan(policy).assign(LADDER)  # type: ignore[arg-type]
    for decoding in decodings.values():
        assert decoding.every_frame is every_frame
        assert decoding.mode == ("full" if every_frame else "keyframe")


@pytest.mark.parametrize(
    ("policy", "every_frame"), [("lowest", True), ("full", True), ("keyframe", False)]
)
def test_a_single_rendition_is_decoded_frame_by_frame_unless_keyframe(
    policy: str, every_frame: bool
) -> None:
    assert DecodePlan(policy).single().every_frame is every_frame  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "policy"),
    [("", "lowest"), ("full", "full"), (" KEYFRAME ", "keyframe"), ("bogus", "lowest")],
)
def test_policy_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, policy: str
) -> None:
    monkeypatch.setenv("STREAMER_DECODE_MODE", value)
    assert policy_from_env() == policy
