"""Compute bid rules, one per module, chained."""
