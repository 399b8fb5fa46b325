"""Errors of the command line, under :class:`protocol.errors.BacalaoError`.

BacalaoError
└── CLIError              anything the command line reports as one red line, exit 1
    ├── APIError          the requester could not be reached, or refused the request
    │   └── ForeignServerError   what answers at the API address is not a requester
    ├── JobSpecError      command-line values or a job file that do not make a job
    └── WaitTimeoutError  the job did not finish within ``--wait-timeout`` (exit 124)
"""

from __future__ import annotations

from protocol.errors import BacalaoError


class CLIError(BacalaoError):
    """Root of the command line's own errors; ``exit_code``: what the command exits with."""

    exit_code = 1


class APIError(CLIError):
    """The requester could not be reached, or answered with an error.

    ``status_code`` is the HTTP status (None when no answer came); ``field`` names the input
    field the server blamed, when it did (``Tasks[0].Engine.Type``).
    """

    def __init__(self, message: str, *, status_code: int | None = None, field: str = "") -> None:
        self.message = message
        self.status_code = status_code
        self.field = field
        super().__init__(message)


class ForeignServerError(APIError):
    """Something answers at the API address, but not as a requester would."""


class JobSpecError(CLIError):
    """Values that do not make a job. ``option`` names the culprit (``--input``), if known."""

    def __init__(self, problem: str, *, option: str = "") -> None:
        self.problem = problem
        self.option = option
        super().__init__(f"{option}: {problem}" if option else problem)


class WaitTimeoutError(CLIError):
    """The job is still running when ``--wait-timeout`` ran out (it keeps running): exit 124,
    as ``timeout(1)`` does, so a pipeline can tell "still running" from "failed"."""

    exit_code = 124
