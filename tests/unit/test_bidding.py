from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from compute.bidding.base import BidDecision, BidRequest, BidRule
from compute.bidding.chain import decide, default_rules
from compute.bidding.engine import EngineRule
from compute.bidding.labels import LabelsRule
from compute.bidding.network import NetworkRule
from compute.bidding.publisher import PublisherRule
from compute.bidding.resources import ResourcesRule
from compute.bidding.storage import StorageRule
from compute.bidding.timeout import TimeoutRule
from protocol.job import MAX_TIMEOUT_S, Job
from protocol.resources import Resources
from protocol.wire import STORED

GI = 1024**3


def make_job(constraints: list[dict[str, Any]] | None = None, **task: Any) -> Job:
    """The job as a compute node reads it from an AskForBid (specs kept when they do not
    parse, for the rules to refuse)."""
    return Job.model_validate(
        {"Constraints": constraints, "Tasks": [{"Engine": {"Type": "noop"}, **task}]},
        context=STORED,
    )


def make_request(job: Job | None = None, **changes: Any) -> BidRequest:
    request = BidRequest(
        job=job or make_job(),
        resources=Resources(cpu=1, memory=GI),
        node_labels={"region": "eu"},
        engines=frozenset({"noop", "wasm"}),
        publishers=frozenset({"noop", "local"}),
        storage_sources=frozenset({"inline", "local", "urlDownload"}),
        max_job_resources=Resources(cpu=2, memory=2 * GI),
        accept_networked_jobs=False,
        max_execution_timeout_s=3600,
    )
    return replace(request, **changes)


YES = BidDecision(should_bid=True)


def no(reason: str, rule: str = "") -> BidDecision:
    return BidDecision(should_bid=False, reason=reason, rule=rule)


def test_engine_installed_any_case() -> None:
    rule = EngineRule()
    assert rule.check(make_request(make_job(Engine={"Type": "WASM", "Params": {}}))) == YES
    assert rule.check(make_request(engines=frozenset({"Noop"}))) == YES


def test_engine_missing() -> None:
    request = make_request(make_job(Engine={"Type": "docker", "Params": {"Image": "ubuntu"}}))
    assert EngineRule().check(request) == no(
        "engine docker is not installed (installed: noop, wasm)"
    )
    empty = replace(request, engines=frozenset())
    assert EngineRule().check(empty) == no("engine docker is not installed (installed: none)")


def test_publisher() -> None:
    rule = PublisherRule()
    assert rule.check(make_request(make_job(Publisher={"Type": "Local"}))) == YES
    assert rule.check(make_request(make_job(Publisher={"Type": "s3"}))) == no(
        "publisher s3 is not installed (installed: local, noop)"
    )


def source(type_name: str, target: str) -> dict[str, Any]:
    return {"Source": {"Type": type_name, "Params": {}}, "Target": target}


def test_storage_every_input_source_installed() -> None:
    job = make_job(InputSources=[source("inline", "/a"), source("URL", "/b")])
    assert StorageRule().check(make_request(job)) == YES
    assert StorageRule().check(make_request(make_job())) == YES


def test_storage_names_every_missing_source() -> None:
    one = make_job(InputSources=[source("inline", "/a"), source("s3", "/b")])
    assert StorageRule().check(make_request(one)) == no(
        "storage source s3 is not installed (installed: inline, local, urlDownload)"
    )
    two = make_job(InputSources=[source("ipfs", "/a"), source("s3", "/b"), source("ipfs", "/c")])
    assert StorageRule().check(make_request(two)) == no(
        "storage sources ipfs, s3 are not installed (installed: inline, local, urlDownload)"
    )


def wasm(entry_module: Any, **params: Any) -> dict[str, Any]:
    return {"Type": "wasm", "Params": {"EntryModule": entry_module, **params}}


def test_storage_includes_embedded_wasm_modules() -> None:
    target_shape = make_job(Engine=wasm("/app/main.wasm"), InputSources=[source("local", "/app")])
    assert StorageRule().check(make_request(target_shape)) == YES
    embedded = make_job(Engine=wasm(source("ipfs", "/main.wasm")))
    assert StorageRule().check(make_request(embedded)) == no(
        "storage source ipfs is not installed (installed: inline, local, urlDownload)"
    )
    imported = make_job(
        Engine=wasm(source("inline", "/main.wasm"), ImportModules=[source("s3", "/lib.wasm")])
    )
    assert StorageRule().check(make_request(imported)) == no(
        "storage source s3 is not installed (installed: inline, local, urlDownload)"
    )


def test_storage_refuses_unreadable_wasm_params() -> None:
    decision = StorageRule().check(make_request(make_job(Engine={"Type": "wasm"})))
    assert not decision.should_bid
    assert decision.reason.startswith("cannot read the job's wasm engine params: ")
    assert "EntryModule" in decision.reason


def test_resources_within_per_job_limit() -> None:
    assert ResourcesRule().check(make_request()) == YES
    big = make_request(resources=Resources(cpu=4, memory=3 * GI))
    assert ResourcesRule().check(big) == no(
        "job is larger than this node takes per job: cpu 4 > 2, memory 3Gi > 2Gi"
    )


def test_labels_checked_against_this_nodes_own_labels() -> None:
    job = make_job(constraints=[{"Key": "region", "Operator": "in", "Values": ["eu", "us"]}])
    assert LabelsRule().check(make_request(job)) == YES
    elsewhere = make_request(job, node_labels={"region": "asia", "spot": "true"})
    strict = make_job(
        constraints=[
            {"Key": "region", "Operator": "in", "Values": ["eu", "us"]},
            {"Key": "spot", "Operator": "!"},
        ]
    )
    assert LabelsRule().check(replace(elsewhere, job=strict)) == no(
        "node labels do not meet the job's constraints: region in (eu, us); spot does not exist"
    )


@pytest.mark.parametrize("network", ["None", "", "none"])
def test_network_none_is_always_fine(network: str) -> None:
    job = make_job(Network={"Type": network})
    assert NetworkRule().check(make_request(job)) == YES


def test_network_needs_acceptance() -> None:
    job = make_job(Network={"Type": "full"})
    assert NetworkRule().check(make_request(job, accept_networked_jobs=True)) == YES
    assert NetworkRule().check(make_request(job)) == no(
        "this node does not accept networked jobs (the job asks for Network Full)"
    )


@pytest.mark.parametrize(
    ("job_timeout_s", "limit_s", "should_bid"),
    [(0, 3600, True), (3600, 3600, True), (60, 0, True), (7200, 0, True), (3601, 3600, False)],
)
def test_timeout(job_timeout_s: int, limit_s: float, should_bid: bool) -> None:
    job = make_job(Timeouts={"ExecutionTimeout": job_timeout_s})
    decision = TimeoutRule().check(make_request(job, max_execution_timeout_s=limit_s))
    assert decision.should_bid is should_bid


def test_a_timeout_beyond_the_maximum_is_refused_even_without_a_node_limit() -> None:
    """Possible only for a job stored before the bound existed (new input is refused)."""
    over = MAX_TIMEOUT_S + 1
    job = Job.model_validate(
        {"Tasks": [{"Engine": {"Type": "noop"}, "Timeouts": {"ExecutionTimeout": over}}]},
        context=STORED,
    )
    assert TimeoutRule().check(make_request(job, max_execution_timeout_s=0)) == no(
        f"execution timeout {over}s is over the {MAX_TIMEOUT_S}s maximum"
    )


def test_timeout_reason() -> None:
    job = make_job(Timeouts={"ExecutionTimeout": 7200})
    assert TimeoutRule().check(make_request(job, max_execution_timeout_s=1800.0)) == no(
        "execution timeout 7200s is longer than this node allows (1800s)"
    )


@dataclass(frozen=True)
class Fixed:
    name: str
    decision: BidDecision
    calls: list[str]

    def check(self, request: BidRequest) -> BidDecision:
        self.calls.append(self.name)
        return self.decision


def test_chain_first_refusal_wins_and_stops() -> None:
    calls: list[str] = []
    rules: list[BidRule] = [
        Fixed("a", YES, calls),
        Fixed("b", no("b says no"), calls),
        Fixed("c", no("c says no"), calls),
    ]
    assert decide(make_request(), rules) == no("b says no", rule="b")  # and says who
    assert calls == ["a", "b"]


def test_chain_all_pass_bids() -> None:
    calls: list[str] = []
    assert decide(make_request(), [Fixed("a", YES, calls), Fixed("b", YES, calls)]) == YES
    assert decide(make_request(), []) == YES
    assert calls == ["a", "b"]


def test_chain_gives_a_refusal_without_reason_the_rules_name() -> None:
    assert decide(make_request(), [Fixed("hook", no(""), [])]) == no("refused by hook", "hook")


def test_default_rules_cover_every_rule_capabilities_first() -> None:
    names = [rule.name for rule in default_rules()]
    assert names == [
        "engine",
        "publisher",
        "storage",
        "labels",
        "network",
        "timeout",
        "resources",
    ]


def test_default_rules_bid_on_a_fitting_job_and_explain_the_first_problem() -> None:
    assert decide(make_request(), default_rules()) == YES
    job = make_job(
        Engine={"Type": "docker", "Params": {"Image": "ubuntu"}}, Publisher={"Type": "s3"}
    )
    assert decide(make_request(job), default_rules()) == no(
        "engine docker is not installed (installed: noop, wasm)", rule="engine"
    )


def test_a_node_never_refuses_on_a_favour_preference() -> None:
    preferring = make_job([{"Key": "favour_zone", "Operator": "=", "Values": ["x"]}])
    assert LabelsRule().check(make_request(preferring)) == YES
