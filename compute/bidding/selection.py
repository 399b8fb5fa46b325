"""The operator's job selection policy (Bacalhau's ``--job-selection-*`` flags), as bid rules
that follow the built-in ones: the cheap checks first, the probes last."""

from __future__ import annotations

from dataclasses import dataclass

from compute.bidding.base import BidRule
from compute.bidding.probe_exec import ExecProbeRule
from compute.bidding.probe_http import HTTPProbeRule
from compute.bidding.stateless import StatelessRule

DEFAULT_PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class JobSelection:
    reject_stateless: bool = False
    probe_http: str = ""  # URL
    probe_exec: str = ""  # command, run through sh -c
    probe_timeout_s: float = DEFAULT_PROBE_TIMEOUT_S


def selection_rules(selection: JobSelection, node_id: str) -> list[BidRule]:
    rules: list[BidRule] = []
    if selection.reject_stateless:
        rules.append(StatelessRule())
    if selection.probe_http:
        rules.append(HTTPProbeRule(selection.probe_http, node_id, selection.probe_timeout_s))
    if selection.probe_exec:
        rules.append(ExecProbeRule(selection.probe_exec, node_id, selection.probe_timeout_s))
    return rules
