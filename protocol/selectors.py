"""Label selectors with Kubernetes semantics: match, explain, and parse ``--constraints``.

Shared by the requester (which nodes to ask) and the compute node (whose own labels decide,
since the requester's view may be stale). Keys and values are case-sensitive, as in
Kubernetes, and ``gt``/``lt`` compare integers: a label that is not one never matches them.
The syntax of keys and values is checked by the model (:mod:`protocol.labels`).

Syntax of :func:`parse_selector`, requirements separated by commas::

    region=eu  region==eu  zone!=a  env in (prod,staging)  env notin (dev)  gpu  !spot
    cores>4  cores<16

A requirement whose key starts with ``favour_`` is a soft preference (``favour_zone=eu``:
nodes labelled ``zone=eu`` rank first, the others still run the job).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from protocol.errors import ValidationError
from protocol.job import LabelSelectorRequirement
from protocol.labels import parse_integer

_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE_ONLY = re.compile(rf"^{_VALUE}$")
_ABSENT = re.compile(rf"^!\s*({_KEY})$")
_EXISTS = re.compile(rf"^({_KEY})$")
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s*\((.*)\)$")
_COMPARE = re.compile(rf"^({_KEY})\s*(==|!=|=|>|<)\s*({_VALUE})?$")
_SYMBOLS = {"=": "=", "==": "==", "!=": "!=", ">": "gt", "<": "lt"}
_FIELD = "constraints"
PREFERENCE_PREFIX = "favour_"


def matches(labels: Mapping[str, str], requirement: LabelSelectorRequirement) -> bool:
    """True when ``labels`` satisfy ``requirement``."""
    key, operator, values = requirement.key, requirement.operator, requirement.values
    value = labels.get(key)
    if operator in ("=", "==", "in"):
        return value is not None and value in values
    if operator in ("!=", "notin"):
        return value is None or value not in values
    if operator == "exists":
        return value is not None
    if operator == "!":
        return value is None
    if operator in ("gt", "lt"):
        have = parse_integer(value) if value is not None else None
        want = parse_integer(values[0]) if values else None
        if have is None or want is None:
            return False
        return have > want if operator == "gt" else have < want
    raise ValueError(f"unknown selector operator {operator!r}")


def describe(requirement: LabelSelectorRequirement) -> str:
    """A requirement as a person reads it: ``region in (eu, us)``, ``gpu exists``."""
    key, operator, values = requirement.key, requirement.operator, requirement.values
    if operator in ("in", "notin"):
        return f"{key} {operator} ({', '.join(values)})"
    if operator == "exists":
        return f"{key} exists"
    if operator == "!":
        return f"{key} does not exist"
    symbol = {"==": "=", "gt": ">", "lt": "<"}.get(operator, operator)
    return f"{key} {symbol} {values[0] if values else ''}".rstrip()


def unmet(labels: Mapping[str, str], requirements: Iterable[LabelSelectorRequirement]) -> list[str]:
    """Descriptions of the requirements that ``labels`` do not satisfy, in order."""
    return [describe(req) for req in requirements if not matches(labels, req)]


def is_preference(requirement: LabelSelectorRequirement) -> bool:
    """A constraint whose key is ``favour_<label>``: a soft preference for nodes whose
    ``<label>`` meets it. It orders the nodes that can run a job, never excludes one."""
    return requirement.key.startswith(PREFERENCE_PREFIX) and len(requirement.key) > len(
        PREFERENCE_PREFIX
    )


def hard_unmet(
    labels: Mapping[str, str], constraints: Iterable[LabelSelectorRequirement]
) -> list[str]:
    """:func:`unmet` for a job's Constraints: what excludes a node (preferences do not)."""
    return unmet(labels, [req for req in constraints if not is_preference(req)])


def preferences(constraints: Iterable[LabelSelectorRequirement]) -> list[LabelSelectorRequirement]:
    """The job's soft preferences, as requirements on the labels they name."""
    return [
        req.model_copy(update={"key": req.key.removeprefix(PREFERENCE_PREFIX)})
        for req in constraints
        if is_preference(req)
    ]


def _split(text: str) -> list[str]:
    """Top-level comma-separated parts; commas inside ``( )`` belong to a value set."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
            if depth > 1:
                raise ValidationError(_FIELD, f"nested parentheses in {text!r}")
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValidationError(_FIELD, f"unbalanced parentheses in {text!r}")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise ValidationError(_FIELD, f"unbalanced parentheses in {text!r}")
    parts.append(current)
    return [part.strip() for part in parts]


def _set_values(part: str, inside: str) -> list[str]:
    values = [value.strip() for value in inside.split(",")]
    for value in values:
        if not _VALUE_ONLY.match(value):
            shown = f"value {value!r}" if value else "an empty value"
            raise ValidationError(_FIELD, f"{part!r} has {shown} in its set")
    return values


def _requirement(part: str) -> LabelSelectorRequirement:
    values: list[str]
    if match := _ABSENT.match(part):
        key, operator, values = match.group(1), "!", []
    elif match := _EXISTS.match(part):
        key, operator, values = match.group(1), "exists", []
    elif match := _SET.match(part):
        key, operator = match.group(1), match.group(2)
        values = _set_values(part, match.group(3))
    elif match := _COMPARE.match(part):
        key, operator, values = match.group(1), _SYMBOLS[match.group(2)], [match.group(3) or ""]
    else:
        raise ValidationError(
            _FIELD,
            f"cannot parse {part!r} (examples: region=eu, zone!=a, env in (prod,staging), "
            "gpu, !spot, cores>4)",
        )
    try:
        return LabelSelectorRequirement.from_wire(
            {"Key": key, "Operator": operator, "Values": values}
        )
    except ValidationError as exc:
        raise ValidationError(_FIELD, f"{part!r}: {exc.problem}") from None


def parse_selector(text: str) -> list[LabelSelectorRequirement]:
    """``"region=eu,env in (prod,staging),!spot"`` -> requirements; "" -> none.

    Raises :class:`ValidationError` on field ``constraints`` naming the part that is wrong.
    """
    if not text.strip():
        return []
    requirements = []
    for part in _split(text):
        if not part:
            raise ValidationError(_FIELD, f"empty requirement in {text!r} (stray comma?)")
        requirements.append(_requirement(part))
    return requirements
