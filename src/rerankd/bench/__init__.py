"""`rerankd bench`: throughput and latency of the engine and the server against today's baseline."""
