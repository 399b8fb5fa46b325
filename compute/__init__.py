"""Compute nodes: bidding, capacity, executors, storage providers, publishers, the runner."""
