"""Kubernetes label syntax, which Bacalhau's selectors check through ``labels.NewRequirement``.

A key is a qualified name: an optional DNS subdomain prefix and ``/``, then a name of at most
63 characters that starts and ends with a letter or digit and has ``-``, ``_`` or ``.``
between (``region``, ``example.com/tier``). A value is empty or such a name. The ``gt`` and
``lt`` operators compare 64-bit integers.

Each check returns the problem as a readable phrase, or None when the text is fine.
"""

from __future__ import annotations

import re

from protocol.units import INT64_MAX, shown

NAME_MAX_CHARS = 63
PREFIX_MAX_CHARS = 253
_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NAME_RULE = (
    "must consist of letters, digits, '-', '_' and '.', and start and end with a letter or digit"
)


def _name_problem(name: str) -> str | None:
    if len(name) > NAME_MAX_CHARS:
        return f"is longer than {NAME_MAX_CHARS} characters"
    if not _NAME.fullmatch(name):
        return _NAME_RULE
    return None


def key_problem(key: str) -> str | None:
    """Why ``key`` is not a label key (Kubernetes ``IsQualifiedName``), or None."""
    if not key.strip():
        return "selector key cannot be blank"
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return f"key {shown(key)} has an empty prefix before '/'"
    if prefix and (len(prefix) > PREFIX_MAX_CHARS or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return (
            f"key {shown(key)} has a prefix that is not a lowercase DNS subdomain "
            f"(such as example.com) of at most {PREFIX_MAX_CHARS} characters"
        )
    if not name:
        return f"key {shown(key)} has no name after its prefix"
    problem = _name_problem(name)
    if problem is None:
        return None
    return (
        f"key {shown(key)}: the name after '/' {problem}"
        if slash
        else f"key {shown(key)} {problem}"
    )


def value_problem(value: str) -> str | None:
    """Why ``value`` is not a label value (Kubernetes ``IsValidLabelValue``), or None."""
    if not value:
        return None
    problem = _name_problem(value)
    return f"value {shown(value)} {problem}" if problem else None


def parse_integer(text: str) -> int | None:
    """``text`` as Go's ``strconv.ParseInt(text, 10, 64)`` reads it, or None."""
    if not _INTEGER.fullmatch(text):
        return None
    digits = text.lstrip("+-").lstrip("0") or "0"
    if len(digits) > len(str(INT64_MAX)):
        return None
    number = -int(digits) if text.startswith("-") else int(digits)
    return number if -INT64_MAX - 1 <= number <= INT64_MAX else None


# Go's names, as Bacalhau's nodes label themselves (runtime.GOOS, runtime.GOARCH)
_GO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_GO_ARCH.update({"i386": "386", "i686": "386", "armv7l": "arm", "armv6l": "arm"})


def runtime_labels(system: str, machine: str, hostname: str) -> dict[str, str]:
    """The labels a node gives itself, as Bacalhau's do (``Operating-System``,
    ``Architecture``), and its ``hostname``; a value the label rules refuse (a hostname over
    63 characters, say) is left out. Those given by the operator take precedence."""
    found = {
        "Operating-System": system.lower(),
        "Architecture": _GO_ARCH.get(machine.lower(), machine.lower()),
        "hostname": hostname.split(".", 1)[0] if len(hostname) > NAME_MAX_CHARS else hostname,
    }
    return {key: value for key, value in found.items() if value and value_problem(value) is None}
