"""The job store as a state machine, driven by generated sequences of changes: every change
the transition tables allow (and its compare-and-set ``expect`` matches) is stored with one
history entry; every other is refused and writes nothing, alone or inside a batch."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from protocol.errors import StateTransitionError
from protocol.execution import ComputeState, Execution
from protocol.job import Job, JobStateType
from protocol.states import EXECUTION_TRANSITIONS, JOB_TRANSITIONS
from protocol.states import ExecutionStateType as S
from requester.store import JobStore

EXECUTION_STATES = [state for state in S if state != S.UNDEFINED]
JOB_STATES = list(JobStateType)
EXPECTS = st.none() | st.frozensets(st.sampled_from(EXECUTION_STATES), max_size=3)


class StoreMachine(RuleBasedStateMachine):
    """A model of what the store should hold (states and history lengths) beside a real one."""

    def __init__(self) -> None:
        super().__init__()
        self._folder = TemporaryDirectory()
        self.store = JobStore(Path(self._folder.name) / "jobs.db")
        job = self.store.create_job(
            Job.model_validate({"ID": "j-1", "Tasks": [{"Engine": {"Type": "noop"}}]}), "v-1"
        )
        self.job_id = job.id
        self.job_state = job.state.state_type
        self.execution_states: dict[str, S] = {}
        self.history = len(self.store.history(self.job_id))

    def teardown(self) -> None:
        self.store.close()
        self._folder.cleanup()

    def allowed(self, execution_id: str, state: S, expect: frozenset[S] | None) -> bool:
        old = self.execution_states[execution_id]
        matches = expect is None or old in expect
        return matches and (state == old or state in EXECUTION_TRANSITIONS[old])

    @precondition(lambda self: len(self.execution_states) < 4)
    @rule(node=st.sampled_from(["n-a", "n-b"]))
    def add_execution(self, node: str) -> None:
        execution_id = f"e-{len(self.execution_states)}"
        self.store.create_execution(
            Execution(
                id=execution_id,
                job_id=self.job_id,
                node_id=node,
                compute_state=ComputeState(state_type=S.NEW),
            )
        )
        self.execution_states[execution_id] = S.NEW
        self.history += 1

    @precondition(lambda self: self.execution_states)
    @rule(data=st.data(), state=st.sampled_from(EXECUTION_STATES), expect=EXPECTS)
    def change_execution(self, data: st.DataObject, state: S, expect: frozenset[S] | None) -> None:
        execution_id = data.draw(st.sampled_from(sorted(self.execution_states)))
        if self.allowed(execution_id, state, expect):
            self.store.update_execution(execution_id, state=state, expect=expect, message="m")
            self.execution_states[execution_id] = state
            self.history += 1
        else:
            with pytest.raises(StateTransitionError):
                self.store.update_execution(execution_id, state=state, expect=expect, message="m")

    @rule(state=st.sampled_from(JOB_STATES), message=st.sampled_from(["", "why"]))
    def change_job(self, state: JobStateType, message: str) -> None:
        old = self.store.get_job(self.job_id).state
        if state not in JOB_TRANSITIONS[self.job_state]:
            with pytest.raises(StateTransitionError):
                self.store.update_job_state(self.job_id, state, message)
            return
        self.store.update_job_state(self.job_id, state, message)
        if state != old.state_type or message != old.message:
            self.history += 1
        self.job_state = state

    @precondition(lambda self: len(self.execution_states) >= 2)
    @rule(data=st.data(), first=st.sampled_from(EXECUTION_STATES))
    def batch_with_a_refused_change(self, data: st.DataObject, first: S) -> None:
        """A batch where one change is refused: the others commit, the refused one is not."""
        ids = sorted(self.execution_states)
        good, bad = data.draw(st.permutations(ids))[:2]
        with self.store.batch():
            if self.allowed(good, first, None):
                self.store.update_execution(good, state=first, message="in a batch")
                self.execution_states[good] = first
                self.history += 1
            with pytest.raises(StateTransitionError):
                self.store.update_execution(bad, state=S.RUNNING, expect=frozenset())

    @invariant()
    def the_store_holds_what_the_model_says(self) -> None:
        assert self.store.get_job(self.job_id).state.state_type == self.job_state
        for execution_id, state in self.execution_states.items():
            assert self.store.get_execution(execution_id).state == state
        assert len(self.store.history(self.job_id)) == self.history


StoreMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=25, deadline=None)
test_the_store_follows_its_transition_tables = StoreMachine.TestCase
