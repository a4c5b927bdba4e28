"""Values: per-tensor statistics and diffs, streamed in bounded windows (``stats``, ``diff``),
the threads that run the scans (``parallel``) and fp8 block dequantisation (``fp8``)."""
