"""What crosses a process boundary: the job model, bprotocol messages, envelope and transport.

This package imports nothing from ``requester``, ``compute`` or ``cli``.
"""

__version__ = "0.1.0"
