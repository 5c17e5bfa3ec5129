"""The test signal: a pre-encoded clip whose every frame carries a readable timecode."""
