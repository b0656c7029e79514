"""Video and audio files in and out with PyAV (no ffmpeg binary, no shell), plus resampling."""
