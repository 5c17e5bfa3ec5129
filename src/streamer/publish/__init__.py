"""Publishing the test clip into a platform's RTMP(S) ingest."""
