"""An embedded local live origin: RTMP in, a transcoded HLS ladder out (`streamer origin`)."""
