"""Test helpers: waiting on conditions, real services started on loopback, node processes."""
