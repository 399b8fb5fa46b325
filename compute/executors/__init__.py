"""Executors, one module per engine Type: ``wasm``, ``docker``, ``noop``."""
