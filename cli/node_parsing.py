"""Checks of a node's settings, each a ValidationError naming the flag (or config key) at
fault, made before any node starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.errors import ValidationError
from protocol.labels import key_problem, value_problem
from protocol.units import parse_bytes, parse_cpu

if TYPE_CHECKING:
    from compute.bidding.selection import JobSelection
    from requester.accept_probes import AcceptProbeConfig

NODE_TYPES = {"requester", "compute"}


def parse_job_selection(
    reject_stateless: bool, probe_http: str | None, probe_exec: str | None, probe_timeout: float
) -> JobSelection:
    from compute.bidding.selection import JobSelection

    url = (probe_http or "").strip()
    if url and not url.startswith(("http://", "https://")):
        raise ValidationError("job-selection-probe-http", f"{url!r} is not an http(s) URL")
    return JobSelection(
        reject_stateless=reject_stateless,
        probe_http=url,
        probe_exec=(probe_exec or "").strip(),
        probe_timeout_s=probe_timeout,
    )


def parse_accept_probes(
    probe_http: str | None, probe_exec: str | None, probe_timeout: float
) -> AcceptProbeConfig:
    from requester.accept_probes import AcceptProbeConfig

    url = (probe_http or "").strip()
    if url and not url.startswith(("http://", "https://")):
        raise ValidationError("bid-accept-probe-http", f"{url!r} is not an http(s) URL")
    return AcceptProbeConfig(http=url, exec=(probe_exec or "").strip(), timeout_s=probe_timeout)


def parse_labels(values: list[str] | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values or []:
        for item in value.split(","):
            if not item.strip():
                continue
            key, sep, val = item.partition("=")
            if not sep or not key.strip():
                raise ValidationError("labels", f"{item!r} is not of the form key=value")
            # Constraints follow Kubernetes' label rules: a label outside them never matches.
            problem = key_problem(key.strip()) or value_problem(val.strip())
            if problem:
                raise ValidationError("labels", f"{item!r}: {problem}")
            labels[key.strip()] = val.strip()
    return labels


def parse_node_type(text: str) -> tuple[bool, bool]:
    roles = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = roles - NODE_TYPES
    if unknown or not roles:
        raise ValidationError("node-type", f"{text!r}: use requester, compute or requester,compute")
    return "requester" in roles, "compute" in roles


def parse_total_limits(cpu: str | None, memory: str | None) -> tuple[float | None, int | None]:
    try:
        return (
            parse_cpu(cpu) if cpu else None,
            parse_bytes(memory) if memory else None,
        )
    except ValueError as exc:
        raise ValidationError("limit-total-cpu/memory", str(exc)) from None


def parse_data_locality(text: str) -> str:
    from compute.bidding.locality import DataLocality

    try:
        return DataLocality.parse(text).value
    except ValidationError as exc:
        raise ValidationError("data-locality", exc.problem) from None


def parse_allowed_paths(values: list[str] | None) -> tuple[str, ...]:
    """The ``--allow-listed-local-paths`` values, each checked before any node starts."""
    from compute.storage.local import parse_allowed_path

    for value in values or ():
        try:
            parse_allowed_path(value)
        except ValidationError as exc:
            raise ValidationError("allow-listed-local-paths", exc.problem) from None
    return tuple(values or ())


def parse_ipfs_api(text: str | None) -> str | None:
    """The ``--ipfs-connect`` address as a multiaddr, checked before any node starts."""
    if not text:
        return None
    from protocol.ipfs import parse_api_address

    return parse_api_address(text, field="ipfs-connect").multiaddr


STORE_FLAG = "--store"


def store_problem(target: str, problem: object) -> ValidationError:
    """What is wrong with the job store ``target``, naming the flag (never its password)."""
    from requester.store import describe

    return ValidationError(STORE_FLAG, f"{describe(target)}: {problem}")


def parse_store(target: str | None) -> str | None:
    """The job store ``--store`` names, checked without opening it (its scheme, a
    PostgreSQL URL's syntax); None: SQLite, jobs.db in the data dir."""
    from requester.store import StoreError, check_target

    text = (target or "").strip()
    if not text:
        return None
    try:
        check_target(text)
    except StoreError as exc:
        raise store_problem(text, exc) from None
    return text


def parse_lease_ttl(lease_ttl_s: float, heartbeat_interval_s: float) -> float:
    """A lease renewed each heartbeat must outlast one, or it lapses between two."""
    if lease_ttl_s <= heartbeat_interval_s:
        raise ValidationError(
            "lease-ttl",
            f"{lease_ttl_s:g} s must be longer than --heartbeat-interval ({heartbeat_interval_s:g}"
            " s): a lease is renewed on each heartbeat",
        )
    return lease_ttl_s
