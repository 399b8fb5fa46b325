"""The error tree of bacalao, rooted at :class:`BacalaoError`.

BacalaoError
├── ValidationError        bad input: a field and what is wrong with it
├── NotFoundError          a job, execution or node that does not exist
├── StateTransitionError   a lifecycle step that the transition table forbids
├── TransportError         the message bus cannot deliver or receive
│   └── UnknownPeerError   a ``peer://`` destination nobody has announced
├── MessageError           a wire message that cannot be decoded or trusted
└── ExecutionError         a task could not be staged, run or published
    └── RetryableExecutionError   ... and another node may well succeed
"""

from __future__ import annotations


class BacalaoError(Exception):
    """Root of every error bacalao raises on purpose."""


class ValidationError(BacalaoError):
    """Bad input. ``field`` is a dotted path such as ``Tasks[0].Engine.Type``."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)


class NotFoundError(BacalaoError):
    """A job, execution or node that does not exist."""


class StateTransitionError(BacalaoError):
    """A transition that the lifecycle's table does not allow."""


class TransportError(BacalaoError):
    """The bus cannot deliver or receive messages."""


class UnknownPeerError(TransportError):
    """A ``peer://`` destination that no peer has announced."""


class MessageError(BacalaoError):
    """A wire message that cannot be decoded, validated or authenticated."""


class ExecutionError(BacalaoError):
    """A task could not be staged, run or published; not worth retrying elsewhere."""


class RetryableExecutionError(ExecutionError):
    """A failure of the node rather than the task: another node may succeed."""
