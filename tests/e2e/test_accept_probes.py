"""``bacalao serve --bid-accept-probe-exec``: a requester whose operator's program vetoes one of
two compute nodes, over real Redis, as separate processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.jobs import noop_job
from tests.support.nodes import start_node
from tests.support.services import RedisServer
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

FAVOUR_Z0 = {"Key": "favour_zone", "Operator": "=", "Values": ["z0"]}


def test_a_vetoed_node_never_runs_the_job_and_the_veto_says_why(
    redis: RedisServer, tmp_path: Path
) -> None:
    vetoed = tmp_path / "vetoed"  # one pattern per line: the NodeIDs the probe says no to
    probe = f"grep -q -F -f {vetoed} && {{ echo 'not on my watch' >&2; exit 1; }}; exit 0"
    broker = str(redis.url)
    requester = start_node(
        tmp_path, "requester", broker, "requester", "--bid-accept-probe-exec", probe, api=True
    )
    computes = []
    try:
        for index in range(2):
            label = ("--labels", f"zone=z{index}")
            computes.append(start_node(tmp_path, f"compute-{index}", broker, "compute", *label))
        wait_until(lambda: requester.compute_count() == 2, 30, message="2 compute nodes")
        bad, good = (node.node_id() for node in computes)
        vetoed.write_text(f'"NodeID": "{bad}"\n')

        for _ in range(3):
            # favours the node to veto: it ranks first, so it is asked first, every time
            job_id = requester.submit({**noop_job(), "Constraints": [FAVOUR_Z0]})
            state = requester.wait_terminal(job_id, 60)["State"]
            assert state["StateType"] == "Completed", state
            executions = requester.executions(job_id)
            ran = [e["NodeID"] for e in executions if e["ComputeState"]["StateType"] == 7]
            assert ran == [good]
            [refused] = [e for e in executions if e["NodeID"] == bad]
            assert refused["ComputeState"]["StateType"] == 6, refused["ComputeState"]  # BidRejected
            message = refused["ComputeState"]["Message"]
            assert message.startswith("bid vetoed: bid accept probe `grep")
            assert message.endswith("said no: not on my watch")
        assert "event=bid_reviewed" in requester.log()
    finally:
        for node in (requester, *computes):
            node.stop()
