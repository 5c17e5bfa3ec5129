"""What the WebRTC client (playback/webrtc.py) and the embedded origin's WHEP server share:
ICE configuration (ice.py) and media conversions (media.py), on top of aiortc."""
