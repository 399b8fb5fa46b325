"""Requester (orchestrator): API, job store, node table, selection, scheduler, planner."""
