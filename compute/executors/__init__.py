"""Executors, one module per engine Type: ``wasm``, ``noop`` (``docker`` later)."""
