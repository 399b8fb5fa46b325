"""A spec family, and the typed ``{Type, Params}`` spec that each family's jobs carry.

A :class:`SpecFamily` (engines, input sources, publishers) maps each Type (any case, with
aliases) to its params model. A :class:`TypedSpec` subclass names its family; validating one
spells its Type as registered and parses its Params into that type's model, once, where the
spec enters the node, so the code that runs it reads fields rather than dicts.

A Type this node does not know (a newer peer's), and Params that no longer parse in what
bacalao stored or a peer sent (``context=STORED``), are kept as they came in
:class:`OtherParams`: the spec travels on unchanged and the code that needs the params says
why it cannot use them (:meth:`TypedSpec.params_as`). Fresh input with bad Params fails to
validate, naming the field (``Tasks[0].Engine.Params.EntryModule``).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pydantic import ConfigDict, Field, GetCoreSchemaHandler, ValidationInfo, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import CoreSchema, core_schema

from protocol.errors import ValidationError
from protocol.wire import FieldValueError, WireModel, is_stored, validation_error

P = TypeVar("P", bound=WireModel)


class OtherParams(WireModel):
    """Params kept as they came, every key and value, and written back the same."""

    model_config = ConfigDict(extra="allow")

    @property
    def raw(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


@dataclass(frozen=True)
class SpecFamily:
    """One plugin family (engines, sources, publishers): its types and their params models."""

    noun: str
    models: Mapping[str, type[WireModel]]
    aliases: Mapping[str, str] = field(default_factory=dict)
    _by_lowered: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lowered = {name.lower(): name for name in self.models}
        for alias, target in self.aliases.items():
            lowered[alias.lower()] = lowered[target.lower()]
        object.__setattr__(self, "_by_lowered", lowered)

    def canonical(self, type_name: str) -> str | None:
        """The registered spelling of ``type_name`` (case-insensitive, aliases), or None."""
        return self._by_lowered.get(type_name.strip().lower())

    @property
    def known(self) -> str:
        return ", ".join(sorted(self.models))

    def unknown(self, type_name: str, where: str) -> ValidationError:
        return ValidationError(
            f"{where}.Type", f"unknown {self.noun} {type_name!r} (known: {self.known})"
        )

    def parse(self, type_name: str, params: Any, where: str) -> WireModel:
        """Typed params of a ``type_name`` spec; ValidationError names ``where`` and the bad
        field."""
        name = self.canonical(type_name)
        if name is None:
            raise self.unknown(type_name, where)
        return self.models[name].from_wire(params, prefix=f"{where}.Params")


class ParsedParams:
    """Marks a typed spec's ``params`` field (``Annotated[WasmParams | ..., PARSED]``).

    :meth:`TypedSpec._typed_params` has parsed the Params already, so the field takes the
    instance as it is (checking it against the union again costs 1.3 us a spec), writes it
    with the instance's own model, and its JSON schema is the union's.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.json_or_python_schema(
            json_schema=handler(source),
            python_schema=core_schema.any_schema(),
            serialization=core_schema.simple_ser_schema("any"),
        )


PARSED = ParsedParams()


class TypedSpec(WireModel):
    """``{Type: wasm, Params: {...}}`` of one family, Params parsed into the Type's model.

    Subclasses name their ``family`` and narrow ``params`` to the union of its models and
    :class:`OtherParams`, marked :data:`PARSED`.
    """

    model_config = ConfigDict(frozen=True)
    family: ClassVar[SpecFamily]

    type: str = Field(alias="Type")
    params: WireModel = Field(default_factory=OtherParams, alias="Params")

    @model_validator(mode="before")
    @classmethod
    def _typed_params(cls, data: Any, info: ValidationInfo) -> Any:
        """Spell the Type as registered and parse the Params into its model."""
        if not isinstance(data, Mapping):
            return data
        type_key, params_key = _keys(data)
        type_name = data.get(type_key) if type_key is not None else None
        params = data.get(params_key) if params_key is not None else None
        typed = {**data}
        model = None
        if isinstance(type_name, str):  # else the Type field says what is wrong with it
            if not type_name.strip():
                raise FieldValueError(("Type",), "must not be empty")
            name = cls.family.canonical(type_name)
            typed[type_key] = name or type_name.strip()  # an unknown type: as given
            model = cls.family.models[name] if name else None
        typed[params_key if params_key is not None else "Params"] = _params_of(model, params, info)
        return typed

    def params_as(self, model: builtins.type[P], where: str) -> P:
        """The params as ``model``. ValidationError naming ``where``'s field when they are
        not: an unknown type, another type, or params kept because they did not parse."""
        if isinstance(self.params, model):
            return self.params
        raw = self.params.raw if isinstance(self.params, OtherParams) else self.params.to_wire()
        parsed = self.family.parse(self.type, raw, where)
        if not isinstance(parsed, model):
            raise ValidationError(f"{where}.Type", f"expected a {model.__name__} spec")
        return parsed


def _keys(data: Mapping[Any, Any]) -> tuple[Any, Any]:
    """The keys of ``data`` that hold the Type and the Params, in whatever case they are."""
    if "Type" in data and ("Params" in data or len(data) == 1):
        return "Type", "Params" if "Params" in data else None
    type_key: Any = None
    params_key: Any = None
    for key in data:
        lowered = str(key).lower()
        if lowered == "type":
            type_key = key
        elif lowered == "params":
            params_key = key
    return type_key, params_key


def _params_of(model: type[WireModel] | None, params: Any, info: ValidationInfo) -> WireModel:
    """``params`` as ``model`` (OtherParams when there is none, or when what was stored no
    longer parses); a problem with them raises naming the field below ``Params``."""
    if isinstance(params, WireModel):
        if model is not None and isinstance(params, model):
            return params  # built in code, already typed
        params = params.raw if isinstance(params, OtherParams) else params.to_wire()
    elif params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise FieldValueError(("Params",), f"must be an object, not {type(params).__name__}")
    if model is None:
        return OtherParams.model_validate(params)
    try:
        return model.model_validate(params, context=info.context)
    except PydanticValidationError as exc:
        if is_stored(info):
            return OtherParams.model_validate(params)
        raise _in_params(exc) from None


def _in_params(exc: PydanticValidationError) -> FieldValueError:
    """A params model's first problem, as a problem of the spec's ``Params`` field."""
    first = exc.errors(include_url=False)[0]
    loc = ("Params", *first["loc"])
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, FieldValueError):
        loc += cause.loc
    return FieldValueError(loc, validation_error(exc).problem)
