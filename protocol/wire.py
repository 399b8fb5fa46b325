"""The base of every wire and API model: PascalCase aliases, keys matched case-insensitively.

Go's JSON decoder matches keys without regard to case, so Bacalhau's clients and job files may
write ``count`` or ``COUNT`` for ``Count``. Output always uses Bacalhau's own casing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, model_validator
from pydantic import ValidationError as PydanticValidationError

from protocol.errors import ValidationError


class FieldValueError(ValueError):
    """A problem that a model validator finds in one of the model's own fields.

    ``loc`` is that field's path below the model (``("InputSources", 1, "Target")``), so the
    error names it rather than the whole model.
    """

    def __init__(self, loc: tuple[int | str, ...], problem: str) -> None:
        super().__init__(problem)
        self.loc = loc


def _whole_number(value: Any) -> Any:
    """Go's rule for an integer field: a JSON number without fraction or exponent, nothing
    else (not ``"3"``, ``true`` or ``3.0``)."""
    if value is None:
        return 0  # Go leaves an integer at its zero value for a JSON null
    if isinstance(value, bool):
        raise ValueError(f"must be an integer, not {str(value).lower()}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        raise ValueError(f"must be an integer, not {value!r}")
    if isinstance(value, str):
        raise ValueError(f"must be an integer, not the string {value[:24]!r}")
    raise ValueError(f"must be an integer, not a {type(value).__name__}")


# Validation context for what this node wrote itself (the job store): rules added after a job
# was stored must not make it unreadable, so they apply to new input only.
STORED: dict[str, Any] = {"stored": True}


def is_stored(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("stored"))


# An ``int`` field that takes only integers, as Go does (pydantic would coerce "3" and 3.0).
WireInt = Annotated[int, BeforeValidator(_whole_number)]


class WireModel(BaseModel):
    """PascalCase on the wire, snake_case in Python, unknown keys ignored as Go does."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", validate_default=True)
    _key_table: ClassVar[dict[str, str]]
    _wire_keys: ClassVar[frozenset[str]]  # the keys that the table leaves as they are

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        table: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            wire = field.alias or name
            table[wire.lower()] = wire
            table[name.lower()] = wire
        cls._key_table = table
        cls._wire_keys = frozenset(key for key in table.values() if table[key.lower()] == key)

    @model_validator(mode="before")
    @classmethod
    def _match_keys_case_insensitively(cls, data: Any) -> Any:
        if type(data) is dict and cls._wire_keys.issuperset(data):
            return data  # already spelled as on the wire, as everything bacalao wrote is
        if not isinstance(data, Mapping):
            return data
        table = cls._key_table
        return {table.get(str(key).lower(), key): value for key, value in data.items()}

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_wire(
        cls, data: Any, *, prefix: str = "", context: dict[str, Any] | None = None
    ) -> Self:
        """Validate ``data``; a failure raises :class:`ValidationError` naming the field.
        ``context=STORED`` for what bacalao itself accepted earlier (see :data:`STORED`)."""
        try:
            return cls.model_validate(data, context=context)
        except PydanticValidationError as exc:
            raise validation_error(exc, prefix) from None


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """``("Tasks", 0, "Engine", "Type")`` -> ``Tasks[0].Engine.Type``."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part and not str(part).startswith(("function-", "tagged-union")):
            path += f".{part}" if path else str(part)
    return path


def validation_error(exc: PydanticValidationError, prefix: str = "") -> ValidationError:
    """The first problem of a pydantic error, as one readable line with its field path."""
    first = exc.errors(include_url=False)[0]
    loc = tuple(first["loc"])
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, FieldValueError):
        loc += cause.loc
    message = str(first["msg"]).removeprefix("Value error, ")
    others = exc.error_count() - 1
    if others:
        message += f" (and {others} more problem{'s' if others > 1 else ''})"
    return ValidationError(field_path(loc, prefix), message)
