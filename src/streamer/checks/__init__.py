"""Playback checks: one module per check, a common interface (base.py) and a registry."""
