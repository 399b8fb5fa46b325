"""Bid rules that look at the data: data locality and the size of inputs to download."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from compute.bidding.base import BidDecision
from compute.bidding.chain import decide, default_rules
from compute.bidding.input_size import InputSizeRule
from compute.bidding.locality import DataLocality, DataLocalityRule, LocalityProbe
from protocol.errors import ExecutionError, ValidationError
from protocol.job import Job, SourceSpec
from protocol.resources import Resources
from protocol.wire import STORED
from tests.unit.test_bidding import GI, make_request

YES = BidDecision(should_bid=True)


@dataclass
class FakeProvider:
    """Says which paths/URLs are here and how big things are; counts questions."""

    here: set[str] = field(default_factory=set)
    sizes: dict[str, int] = field(default_factory=dict)
    fails: bool = False
    asked: list[str] = field(default_factory=list)

    @staticmethod
    def key(spec: SourceSpec) -> str:
        return str(next(iter(spec.params.to_wire().values()), ""))

    def has_locally(self, spec: SourceSpec) -> bool:
        self.asked.append(f"has_locally {self.key(spec)}")
        if self.fails:
            raise ExecutionError("provider broke")
        return self.key(spec) in self.here

    def size_bytes(self, spec: SourceSpec) -> int | None:
        self.asked.append(f"size_bytes {self.key(spec)}")
        if self.fails:
            raise OSError("provider broke")
        return self.sizes.get(self.key(spec))


@dataclass
class FakeStorage:
    providers: dict[str, FakeProvider]

    def get(self, type_name: str) -> LocalityProbe:
        try:
            return self.providers[type_name.lower()]
        except KeyError:
            raise ValidationError(
                "Type", f"storage source {type_name!r} is not available"
            ) from None


@pytest.fixture
def storage() -> FakeStorage:
    return FakeStorage(
        {
            "inline": FakeProvider(here={"data:,x"}),
            "local": FakeProvider(here={"/data/here.csv"}, sizes={"/data/here.csv": 5 * GI}),
            "urldownload": FakeProvider(sizes={"http://h/big.bin": 3 * GI}),
            "s3": FakeProvider(sizes={"b": GI}),
        }
    )


def source(type_name: str, target: str, **params: Any) -> dict[str, Any]:
    return {"Source": {"Type": type_name, "Params": params}, "Target": target}


def job(*sources: dict[str, Any], engine: dict[str, Any] | None = None) -> Job:
    return Job.model_validate(  # as a compute node reads an AskForBid
        {"Tasks": [{"Engine": engine or {"Type": "noop"}, "InputSources": list(sources)}]},
        context=STORED,
    )


LOCAL_HERE = source("localDirectory", "/inputs", SourcePath="/data/here.csv")
LOCAL_AWAY = source("local", "/other", SourcePath="/data/away.csv")
INLINE = source("inline", "/in", URL="data:,x")
URL = source("urlDownload", "/web", URL="http://h/big.bin")


# --- data locality ------------------------------------------------------------------------


def test_anywhere_bids_without_asking_the_providers(storage: FakeStorage) -> None:
    rule = DataLocalityRule(storage, DataLocality.ANYWHERE)
    assert rule.check(make_request(job(LOCAL_AWAY, URL))) == YES
    assert all(not provider.asked for provider in storage.providers.values())


def test_local_bids_when_every_input_is_here(storage: FakeStorage) -> None:
    rule = DataLocalityRule(storage, DataLocality.LOCAL)
    assert rule.check(make_request(job())) == YES
    assert rule.check(make_request(job(LOCAL_HERE, INLINE))) == YES


def test_local_refuses_naming_the_input_that_is_not_here(storage: FakeStorage) -> None:
    rule = DataLocalityRule(storage, DataLocality.LOCAL)
    assert rule.check(make_request(job(LOCAL_HERE, LOCAL_AWAY))) == BidDecision(
        False,
        "this node only runs jobs whose data is local, and input local /data/away.csv "
        "(at /other) is not on this node",
    )
    assert rule.check(make_request(job(URL, INLINE, LOCAL_AWAY))).reason == (
        "this node only runs jobs whose data is local, and inputs urlDownload http://h/big.bin "
        "(at /web); local /data/away.csv (at /other) are not on this node"
    )


def test_local_counts_embedded_wasm_modules(storage: FakeStorage) -> None:
    rule = DataLocalityRule(storage, DataLocality.LOCAL)
    wasm = {"Type": "wasm", "Params": {"EntryModule": URL}}
    decision = rule.check(make_request(job(LOCAL_HERE, engine=wasm)))
    assert not decision.should_bid
    assert "urlDownload http://h/big.bin (at /web)" in decision.reason
    unreadable = rule.check(make_request(job(engine={"Type": "wasm"})))
    assert unreadable.reason.startswith("cannot read the job's wasm engine params")


def test_local_treats_unknown_sources_and_failing_providers_as_not_here(
    storage: FakeStorage,
) -> None:
    rule = DataLocalityRule(storage, DataLocality.LOCAL)
    ipfs = source("ipfs", "/ipfs", CID="bafy")
    assert "input ipfs bafy (at /ipfs) is not" in rule.check(make_request(job(ipfs))).reason
    storage.providers["local"].fails = True
    assert not rule.check(make_request(job(LOCAL_HERE))).should_bid


@pytest.mark.parametrize(
    ("text", "value"), [("local", "local"), (" Anywhere ", "anywhere"), ("LOCAL", "local")]
)
def test_data_locality_parse(text: str, value: str) -> None:
    assert DataLocality.parse(text).value == value


def test_data_locality_parse_names_the_choices() -> None:
    with pytest.raises(ValidationError, match="data_locality: 'near': use local or anywhere"):
        DataLocality.parse("near")


# --- input size ---------------------------------------------------------------------------


def sized_request(limit_bytes: int, *sources: dict[str, Any]) -> Any:
    return make_request(
        job(*sources), max_job_resources=Resources(cpu=2, memory=2 * GI, disk=limit_bytes)
    )


def test_input_size_counts_only_inputs_to_download(storage: FakeStorage) -> None:
    rule = InputSizeRule(storage)
    assert rule.check(sized_request(4 * GI, LOCAL_HERE, URL, INLINE)) == YES
    s3 = source("s3", "/s3", Bucket="b", Key="k")
    assert rule.check(sized_request(4 * GI, URL, s3)) == YES
    s3_again = source("s3", "/s3-again", Bucket="b", Key="k")
    assert rule.check(sized_request(4 * GI, URL, s3, s3_again)) == BidDecision(
        False,
        "inputs to download total 5Gi, more than the 4Gi of disk this node gives a job: "
        "urlDownload http://h/big.bin (at /web) is 3Gi; s3 s3://b/k (at /s3) is 1Gi; "
        "s3 s3://b/k (at /s3-again) is 1Gi",
    )


def test_input_size_single_input_over_the_limit_names_it(storage: FakeStorage) -> None:
    decision = InputSizeRule(storage).check(sized_request(GI + 1, URL))
    assert decision.reason == (
        "inputs to download total 3Gi, more than the 1073741825 bytes of disk this node gives "
        "a job: urlDownload http://h/big.bin (at /web) is 3Gi"
    )


def test_input_size_passes_unknown_sizes_and_nodes_without_a_disk_limit(
    storage: FakeStorage,
) -> None:
    rule = InputSizeRule(storage)
    unknown = source("urlDownload", "/web", URL="http://h/unknown")
    assert rule.check(sized_request(1, unknown, LOCAL_AWAY)) == YES
    storage.providers["urldownload"].asked.clear()
    assert rule.check(sized_request(0, URL)) == YES
    assert storage.providers["urldownload"].asked == []
    storage.providers["urldownload"].fails = True
    assert rule.check(sized_request(1, URL)) == YES


# --- the chain ----------------------------------------------------------------------------


def test_default_rules_without_storage_leave_data_alone(storage: FakeStorage) -> None:
    names = [rule.name for rule in default_rules()]
    assert names[:3] == ["engine", "publisher", "storage"]
    assert "data locality" not in names
    assert "input size" not in names
    rules = default_rules(storage, DataLocality.LOCAL)
    assert [rule.name for rule in rules][-2:] == ["data locality", "input size"]
    request = replace(sized_request(GI, LOCAL_AWAY), engines=frozenset({"noop"}))
    assert "not on this node" in decide(request, rules).reason
    assert decide(replace(request, engines=frozenset()), rules).reason.startswith("engine noop")
