"""Livepeer Studio: API client (test streams, ingests) and playback JWT signing."""
