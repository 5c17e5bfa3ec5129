"""Playing a platform's HLS output back like a viewer: playlists, segments, followers."""
