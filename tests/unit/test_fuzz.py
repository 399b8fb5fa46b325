"""Hostile input, 10,000 cases each: envelopes and job specs made by mutating valid ones at
random places (a value replaced by any JSON, a key dropped, renamed, recased or added), from a
fixed seed so that every run tries the same cases and a failure names the one to replay.
Whatever comes, decoding an envelope raises MessageError at worst and parsing a job
ValidationError at worst (naming a field): never anything a node would crash on."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from typing import Any

from protocol.envelope import Codec
from protocol.errors import MessageError, ValidationError
from protocol.execution import ComputeState, Execution, RunCommandResult
from protocol.job import Job, SpecConfig
from protocol.logs import LogChunk
from protocol.messages import (
    AskForBid,
    BidAccepted,
    BidRejected,
    BidResult,
    CancelExecution,
    ComputeError,
    ExecutionLogs,
    ExecutionLogsRequest,
    ExecutionStarted,
    Message,
    RunResult,
)
from protocol.specs import validate_job
from protocol.states import ExecutionStateType as S

CASES = 10_000

JOB: dict[str, Any] = {
    "ID": "j-1",
    "Name": "fuzz",
    "Namespace": "default",
    "Type": "batch",
    "Count": 2,
    "Priority": 0,
    "Labels": {"team": "data"},
    "Meta": {"owner": "me"},
    "Constraints": [{"Key": "arch", "Operator": "in", "Values": ["amd64", "arm64"]}],
    "Tasks": [
        {
            "Name": "main",
            "Engine": {
                "Type": "wasm",
                "Params": {
                    "EntryModule": "/inputs/main.wasm",
                    "Entrypoint": "_start",
                    "Parameters": ["a", "b"],
                    "EnvironmentVariables": {"A": "1"},
                },
            },
            "Publisher": {"Type": "local", "Params": {}},
            "Env": {"GREETING": "hello"},
            "InputSources": [
                {
                    "Target": "/inputs/main.wasm",
                    "Source": {"Type": "urlDownload", "Params": {"URL": "https://x/y.wasm"}},
                },
                {
                    "Target": "/data",
                    "Source": {"Type": "s3", "Params": {"Bucket": "b", "Key": "k/"}},
                },
            ],
            "ResultPaths": [{"Name": "out", "Path": "/outputs"}],
            "Resources": {"CPU": "500m", "Memory": "256Mb", "Disk": "1Gb", "GPU": "0"},
            "Network": {"Type": "None"},
            "Timeouts": {"ExecutionTimeout": 60, "QueueTimeout": 30},
        }
    ],
}


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value, small: what a hostile sender might put anywhere."""
    kind = rng.randrange(9 if depth < 2 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**31, -(2**63), 2**70, rng.randrange(-1000, 1000)])
    if kind == 3:
        return rng.choice([0.0, -0.5, 1e308, 1e-300, rng.uniform(-1e6, 1e6)])
    if kind in (4, 5, 6):
        return rng.choice(_STRINGS) if kind != 6 else _text(rng)
    if kind == 7:
        return [_json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {_text(rng): _json_value(rng, depth + 1) for _ in range(rng.randrange(4))}


_STRINGS = [
    "",
    " ",
    "0",
    "-1",
    "1e999",
    "500m",
    "1Gi",
    "-1Gb",
    "NaN",
    "null",
    "true",
    "../../etc/passwd",
    "/",
    "//x",
    "\\x00",
    "\u0000",
    "é",
    "\ud83d\ude00",
    "x" * 5000,
    "j-1",
    "e-1",
    "n-a",
    "wasm",
    "docker",
    "local",
    "s3",
    "urlDownload",
    "ipfs",
    "inline",
    "in",
    "notin",
    "exists",
    "gt",
    "http://127.0.0.1:1/x",
    "file:///etc/passwd",
    "AskForBid",
    "Batch",
    "RunResult",
]
_ALPHABET = "abcXYZ019_-./:\\ \u00e9\u0000\U0001f600"


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(12)))


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value, the root first."""
    found = [here]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*here, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*here, index))
    return found


def mutated(original: Any, rng: random.Random) -> Any:
    """``original`` with one to three random changes."""
    data = copy.deepcopy(original)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(_paths(data))
        if not path:
            if rng.randrange(20) == 0:
                data = _json_value(rng)
            continue
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        change = rng.choice(["replace", "replace", "drop", "rename", "add", "case"])
        if change == "replace":
            parent[last] = _json_value(rng)
        elif change == "drop":
            del parent[last]
        elif isinstance(parent, dict) and change == "rename":
            parent[_text(rng)] = parent.pop(last)
        elif isinstance(parent, dict) and change == "case":
            parent[str(last).swapcase()] = parent.pop(last)
        elif isinstance(parent, dict):
            parent[_text(rng)] = _json_value(rng)
        else:
            parent.insert(int(last), _json_value(rng))
        if not isinstance(data, (dict, list)):
            break
    return data


def fuzz(originals: list[Any], seed: int) -> Iterator[tuple[int, Any]]:
    """``CASES`` mutations of ``originals``, the same ones every run (a failure names its
    case, and the seed reproduces it)."""
    rng = random.Random(seed)
    for case in range(CASES):
        yield case, mutated(rng.choice(originals), rng)


def _messages() -> list[Message]:
    job = Job.from_wire(JOB)
    execution = Execution(
        id="e-1",
        job_id=job.id,
        node_id="n-b",
        compute_state=ComputeState(state_type=S.ASK_FOR_BID),
        job=job,
    )
    return [
        AskForBid(execution=execution, wait_for_approval=False),
        BidResult(execution_id="e-1", job_id="j-1", accepted=False, reason="busy", busy=True),
        BidAccepted(execution_id="e-1", job_id="j-1"),
        BidRejected(execution_id="e-1", job_id="j-1", reason="enough"),
        CancelExecution(execution_id="e-1", job_id="j-1", reason="stop"),
        ExecutionStarted(execution_id="e-1", job_id="j-1"),
        ComputeError(execution_id="e-1", job_id="j-1", message="boom", retryable=True),
        RunResult(
            execution_id="e-1",
            job_id="j-1",
            published_result=SpecConfig(type="local", params={"URL": "file:///r"}),
            run_output=RunCommandResult(stdout="hi", exit_code=0),
        ),
        ExecutionLogsRequest(
            execution_id="e-1", job_id="j-1", stream_id="s-1", seq=3, stdout_offset=5, tail_lines=2
        ),
        ExecutionLogs(
            execution_id="e-1",
            job_id="j-1",
            stream_id="s-1",
            seq=3,
            chunks=[LogChunk(stream="stdout", offset=5, data=b"hi\n\xff")],
            end=True,
        ),
    ]


SENDER = Codec("n-a")
ENVELOPES = [json.loads(SENDER.encode(message)) for message in _messages()]
ENVELOPES.append(json.loads(SENDER.encode_many(_messages()[1:4])[0]))  # a Batch


def test_a_mutated_envelope_is_a_message_error_at_worst() -> None:
    receiver = Codec("n-b")
    for case, envelope in fuzz(ENVELOPES, seed=11):
        body = json.dumps(envelope).encode()
        try:
            decoded = receiver.decode_all(body)
        except MessageError:
            continue
        except Exception as exc:
            raise AssertionError(f"case {case}: {exc!r} decoding {body[:2000]!r}") from exc
        for item in decoded:  # what got through is a whole, typed message
            assert isinstance(item.payload, Message), f"case {case}"
            assert isinstance(item.sender, str), f"case {case}"


def test_a_mutated_job_spec_is_a_validation_error_at_worst() -> None:
    refusals: list[tuple[int, ValidationError]] = []
    for case, spec in fuzz([JOB], seed=12):
        try:
            job = Job.from_wire(spec)
            validate_job(job)
            Job.from_wire(job.to_wire())  # what was accepted travels and comes back
        except ValidationError as refused:
            refusals.append((case, refused))
        except Exception as exc:
            raise AssertionError(f"case {case}: {exc!r} parsing {spec!r}") from exc
    assert refusals, "the mutations never made an invalid job"
    for case, error in refusals:
        assert isinstance(error.field, str), f"case {case}"
        assert error.problem, f"case {case}: {error!r}"
