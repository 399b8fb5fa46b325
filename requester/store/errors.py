"""The job store's errors.

BacalaoError (protocol.errors)
└── StoreError   the store cannot be opened: a target that names no database, a server that
                 cannot be reached, a database written by a newer bacalao
"""

from __future__ import annotations

from protocol.errors import BacalaoError


class StoreError(BacalaoError):
    """The job store cannot be opened; the message says what to fix."""
