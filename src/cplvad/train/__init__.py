"""Training: samples in memory, balanced batches, the resumable training loop."""
