"""WASI ``poll_oneoff`` that a run's stop switch can interrupt.

wasmtime's own ``poll_oneoff`` sleeps in native code, where neither the epoch (which acts only
inside wasm code) nor anything else reaches it: a module sleeping 20 s would ignore a 2 s
timeout or a cancel. The executor shadows it with this one, which waits on the run's
:class:`RunControl` instead. When the switch is thrown mid-wait the call returns ``EINTR``
with no events; the epoch has moved by then, so the module traps at its next call or loop,
and the run ends with the switch's outcome whatever the module does next.

The WASI preview1 ABI (wasm32, little-endian):

* ``poll_oneoff(in, out, nsubscriptions, *nevents) -> errno``
* subscription, 48 bytes: ``userdata`` u64 @0, tag u8 @8 (0 clock, 1 fd_read, 2 fd_write),
  then @16 either a clock (``id`` u32 @16, ``timeout`` u64 @24, ``precision`` u64 @32,
  ``flags`` u16 @40, bit 0 = abstime) or a ``file_descriptor`` u32 @16
* event, 32 bytes: ``userdata`` u64 @0, ``error`` u16 @8, ``type`` u8 @10, ``nbytes`` u64
  @16, ``flags`` u16 @24

As in wasmtime, fd subscriptions are ready at once (files and stdio always are, and runs have
no sockets), clock ids other than realtime and monotonic are ``EINVAL``, and a monotonic
clock counts from the moment the run's WASI context was made.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

import wasmtime

from compute.executors.interrupts import RunControl

__all__ = ["WASI_MODULE", "define_poll_oneoff"]

WASI_MODULE = "wasi_snapshot_preview1"
SUBSCRIPTION_BYTES = 48
EVENT_BYTES = 32
EVENTTYPE_CLOCK = 0
EVENTTYPE_FD_READ = 1
EVENTTYPE_FD_WRITE = 2
CLOCK_REALTIME = 0
CLOCK_MONOTONIC = 1
SUBCLOCKFLAGS_ABSTIME = 1
ERRNO_SUCCESS = 0
ERRNO_FAULT = 21
ERRNO_INTR = 27
ERRNO_INVAL = 28
U32_MASK = 0xFFFF_FFFF
NS_PER_S = 1_000_000_000
MAX_WAIT_S = 3600.0  # waits longer than this are made of several (threading's limit is finite)

_HEAD = struct.Struct("<QB")  # userdata, tag
_CLOCK = struct.Struct("<I4xQQH")  # id, (pad), timeout, precision, flags
_EVENT = struct.Struct("<QHB5xQH6x")  # userdata, error, type, nbytes, flags
_U32 = struct.Struct("<I")


class PollError(Exception):
    """A call the module got wrong; ``errno`` is what poll_oneoff returns for it."""

    def __init__(self, errno: int) -> None:
        super().__init__(errno)
        self.errno = errno


@dataclass(frozen=True)
class Subscription:
    userdata: int
    eventtype: int
    deadline_ns: int = 0  # host monotonic ns, for clocks


class InterruptiblePoll:
    """``poll_oneoff`` for one run. ``monotonic_origin_ns`` is the host's ``monotonic_ns``
    when the run's WASI context was made: the zero of the module's monotonic clock."""

    def __init__(self, control: RunControl, monotonic_origin_ns: int) -> None:
        self._control = control
        self._origin_ns = monotonic_origin_ns

    def __call__(
        self, caller: wasmtime.Caller, in_ptr: int, out_ptr: int, count: int, nevents_ptr: int
    ) -> int:
        in_ptr, out_ptr, count, nevents_ptr = (
            value & U32_MASK for value in (in_ptr, out_ptr, count, nevents_ptr)
        )
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            return ERRNO_FAULT
        size = memory.data_len(caller)
        if count == 0:
            return ERRNO_INVAL
        if (
            in_ptr + count * SUBSCRIPTION_BYTES > size
            or out_ptr + count * EVENT_BYTES > size
            or nevents_ptr + _U32.size > size
        ):
            return ERRNO_FAULT
        raw = bytes(memory.read(caller, in_ptr, in_ptr + count * SUBSCRIPTION_BYTES))
        try:
            subscriptions = [
                self._subscription(raw, index * SUBSCRIPTION_BYTES) for index in range(count)
            ]
            ready = self._wait(subscriptions)
        except PollError as exc:
            return exc.errno
        events = bytearray(EVENT_BYTES * len(ready))
        for index, sub in enumerate(ready):
            nbytes = 0 if sub.eventtype == EVENTTYPE_CLOCK else 1
            _EVENT.pack_into(
                events, index * EVENT_BYTES, sub.userdata, ERRNO_SUCCESS, sub.eventtype, nbytes, 0
            )
        if events:
            memory.write(caller, events, out_ptr)
        memory.write(caller, _U32.pack(len(ready)), nevents_ptr)
        return ERRNO_SUCCESS

    def _subscription(self, raw: bytes, offset: int) -> Subscription:
        userdata, tag = _HEAD.unpack_from(raw, offset)
        if tag in (EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE):
            return Subscription(userdata, tag)
        if tag != EVENTTYPE_CLOCK:
            raise PollError(ERRNO_INVAL)
        clock_id, timeout_ns, _precision, flags = _CLOCK.unpack_from(raw, offset + 16)
        if clock_id not in (CLOCK_REALTIME, CLOCK_MONOTONIC):
            raise PollError(ERRNO_INVAL)
        now_ns = time.monotonic_ns()
        if not flags & SUBCLOCKFLAGS_ABSTIME:
            deadline_ns = now_ns + timeout_ns
        elif clock_id == CLOCK_MONOTONIC:
            deadline_ns = self._origin_ns + timeout_ns
        else:
            deadline_ns = now_ns + max(0, timeout_ns - time.time_ns())
        return Subscription(userdata, EVENTTYPE_CLOCK, deadline_ns)

    def _wait(self, subscriptions: list[Subscription]) -> list[Subscription]:
        """The subscriptions ready once at least one is: fd ones at once, clocks when due."""
        clocks = [sub for sub in subscriptions if sub.eventtype == EVENTTYPE_CLOCK]
        if len(clocks) == len(subscriptions):
            first_ns = min(sub.deadline_ns for sub in clocks)
            while (remaining_ns := first_ns - time.monotonic_ns()) > 0:
                if self._control.wait(min(remaining_ns / NS_PER_S, MAX_WAIT_S)) is not None:
                    raise PollError(ERRNO_INTR)
        now_ns = time.monotonic_ns()
        return [
            sub
            for sub in subscriptions
            if sub.eventtype != EVENTTYPE_CLOCK or sub.deadline_ns <= now_ns
        ]


def define_poll_oneoff(
    linker: wasmtime.Linker, control: RunControl, monotonic_origin_ns: int
) -> None:
    """Put the interruptible ``poll_oneoff`` in ``linker`` in place of WASI's own (defined
    already by ``define_wasi``)."""
    i32 = wasmtime.ValType.i32()
    signature = wasmtime.FuncType([i32, i32, i32, i32], [i32])
    linker.allow_shadowing = True
    linker.define_func(
        WASI_MODULE,
        "poll_oneoff",
        signature,
        InterruptiblePoll(control, monotonic_origin_ns),
        access_caller=True,
    )
    linker.allow_shadowing = False
