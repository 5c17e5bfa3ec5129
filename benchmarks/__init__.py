"""streamer's benchmarks: listed-time accuracy, density, detection time, soak (`make bench`)."""
