from __future__ import annotations

import pytest

from protocol.errors import ValidationError
from protocol.job import LabelSelectorRequirement
from protocol.selectors import (
    describe,
    hard_unmet,
    is_preference,
    matches,
    parse_selector,
    preferences,
    unmet,
)


def req(key: str, operator: str, *values: str) -> LabelSelectorRequirement:
    return LabelSelectorRequirement(key=key, operator=operator, values=list(values))


LABELS = {"region": "eu", "zone": "a", "cores": "8", "name": "gpu-box", "load": "2.5"}


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        (req("region", "=", "eu"), True),
        (req("region", "==", "eu"), True),
        (req("region", "=", "us"), False),
        (req("missing", "=", "eu"), False),
        (req("region", "=", "EU"), False),
        (req("region", "in", "us", "eu"), True),
        (req("region", "in", "us", "asia"), False),
        (req("missing", "in", "eu"), False),
        (req("region", "!=", "us"), True),
        (req("region", "!=", "eu"), False),
        (req("missing", "!=", "eu"), True),
        (req("region", "notin", "us", "asia"), True),
        (req("region", "notin", "us", "eu"), False),
        (req("missing", "notin", "eu"), True),
        (req("region", "exists"), True),
        (req("missing", "exists"), False),
        (req("region", "!"), False),
        (req("missing", "!"), True),
        (req("cores", "gt", "4"), True),
        (req("cores", "gt", "8"), False),
        (req("cores", "gt", "7"), True),
        (req("cores", "gt", "007"), True),
        (req("cores", "lt", "009"), True),
        (req("cores", "lt", "16"), True),
        (req("cores", "lt", "8"), False),
        (req("missing", "gt", "1"), False),
        (req("missing", "lt", "1"), False),
        (req("name", "gt", "1"), False),
        (req("name", "lt", "1"), False),
        (req("load", "gt", "1"), False),  # Kubernetes compares integers only
        (req("load", "lt", "3"), False),
    ],
)
def test_matches(requirement: LabelSelectorRequirement, expected: bool) -> None:
    assert matches(LABELS, requirement) is expected


def test_operator_is_case_insensitive_on_input() -> None:
    assert matches(LABELS, req("region", "NotIn", "us"))


@pytest.mark.parametrize(
    ("requirement", "text"),
    [
        (req("region", "in", "eu", "us"), "region in (eu, us)"),
        (req("region", "notin", "asia"), "region notin (asia)"),
        (req("region", "=", "us"), "region = us"),
        (req("region", "==", "us"), "region = us"),
        (req("zone", "!=", "a"), "zone != a"),
        (req("gpu", "exists"), "gpu exists"),
        (req("spot", "!"), "spot does not exist"),
        (req("cores", "gt", "16"), "cores > 16"),
        (req("cores", "lt", "2"), "cores < 2"),
    ],
)
def test_describe(requirement: LabelSelectorRequirement, text: str) -> None:
    assert describe(requirement) == text


def test_unmet_lists_only_failures_in_order() -> None:
    requirements = [
        req("region", "in", "us", "asia"),
        req("zone", "=", "a"),
        req("gpu", "exists"),
        req("cores", "gt", "4"),
    ]
    assert unmet(LABELS, requirements) == ["region in (us, asia)", "gpu exists"]
    assert unmet(LABELS, []) == []
    assert unmet({}, [req("spot", "!")]) == []


def as_tuples(text: str) -> list[tuple[str, str, list[str]]]:
    return [(r.key, r.operator, r.values) for r in parse_selector(text)]


def test_parse_every_operator() -> None:
    text = (
        "region=eu,region==eu, zone!=a,env in (prod, staging),env notin (dev),"
        "gpu,!spot,cores>4,mem<16"
    )
    assert as_tuples(text) == [
        ("region", "=", ["eu"]),
        ("region", "==", ["eu"]),
        ("zone", "!=", ["a"]),
        ("env", "in", ["prod", "staging"]),
        ("env", "notin", ["dev"]),
        ("gpu", "exists", []),
        ("spot", "!", []),
        ("cores", "gt", ["4"]),
        ("mem", "lt", ["16"]),
    ]


def test_parse_whitespace_prefixed_keys_and_empty_value() -> None:
    assert as_tuples("  example.com/tier = gold ,  ! spot , env in(prod)") == [
        ("example.com/tier", "=", ["gold"]),
        ("spot", "!", []),
        ("env", "in", ["prod"]),
    ]
    assert as_tuples("owner=") == [("owner", "=", [""])]


@pytest.mark.parametrize("text", ["", "   "])
def test_parse_empty_is_no_requirements(text: str) -> None:
    assert parse_selector(text) == []


def test_parsed_selector_matches_like_kubernetes() -> None:
    selector = parse_selector("region in (eu,us),!spot,cores>4")
    assert unmet({"region": "eu", "cores": "8"}, selector) == []
    assert unmet({"region": "eu", "cores": "2", "spot": "yes"}, selector) == [
        "spot does not exist",
        "cores > 4",
    ]


def test_description_parses_back_for_comparisons() -> None:
    for text in ["region in (eu, us)", "zone != a", "cores > 4", "region = eu"]:
        (requirement,) = parse_selector(text)
        assert describe(requirement) == text


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("region=eu,,zone=a", "empty requirement"),
        ("region=eu,", "empty requirement"),
        ("env in (prod", "unbalanced parentheses"),
        ("env in prod)", "unbalanced parentheses"),
        ("env in ((prod))", "nested parentheses"),
        ("env in ()", "'env in ()' has an empty value"),
        ("env in (prod,)", "'env in (prod,)' has an empty value"),
        ("env in (pr od)", "'env in (pr od)' has value 'pr od'"),
        ("cores>many", "'cores>many'"),
        ("cores>", "'cores>': operator 'gt' needs an integer"),
        ("cores>7.5", "'cores>7.5': operator 'gt' needs an integer, not '7.5'"),
        ("a//b=1", "'a//b=1': key 'a//b' has a prefix that is not a lowercase DNS subdomain"),
        ("Example.com/tier=1", "key 'Example.com/tier' has a prefix that is not a lowercase"),
        (f"{'k' * 64}=1", "(64 characters) is longer than 63 characters"),
        (f"k={'v' * 64}", "(64 characters) is longer than 63 characters"),
        ("region=eu=us", "cannot parse 'region=eu=us'"),
        ("region eu", "cannot parse 'region eu'"),
        ("-bad=1", "cannot parse '-bad=1'"),
        ("a=b,zone~a", "cannot parse 'zone~a'"),
    ],
)
def test_parse_errors_name_constraints_and_the_bad_part(text: str, names: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_selector(text)
    assert caught.value.field == "constraints"
    assert names in caught.value.problem


def requirement_error(wire: dict[str, object]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        LabelSelectorRequirement.from_wire(wire, prefix="Job.Constraints[0]")
    return caught.value


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "selector key cannot be blank"),
        ("   ", "selector key cannot be blank"),
        ("a b", "key 'a b' must consist of letters, digits, '-', '_' and '.'"),
        ("-a", "start and end with a letter or digit"),
        ("a/b/c", "key 'a/b/c' has a prefix that is not a lowercase DNS subdomain"),
        ("/a", "key '/a' has an empty prefix before '/'"),
        ("example.com/", "key 'example.com/' has no name after its prefix"),
        ("example.com/a b", "the name after '/' must consist of letters"),
        ("k" * 64, "is longer than 63 characters"),
    ],
)
def test_model_rejects_keys_kubernetes_rejects(key: str, problem: str) -> None:
    error = requirement_error({"Key": key, "Operator": "exists"})
    assert error.field == "Job.Constraints[0].Key"
    assert problem in error.problem


@pytest.mark.parametrize(
    "key", ["region", "a", "a.b_c-d", "example.com/tier", "node-1.example.com/GPU_0", "k" * 63]
)
def test_model_accepts_qualified_names(key: str) -> None:
    assert req(key, "exists").key == key


@pytest.mark.parametrize(
    ("operator", "values", "field", "problem"),
    [
        ("in", ["eu", "has space"], "Values[1]", "value 'has space' must consist of letters"),
        ("=", ["v" * 64], "Values[0]", "is longer than 63 characters"),
        ("=", ["-v"], "Values[0]", "start and end with a letter or digit"),
        ("in", [], "Values", "operator 'in' needs at least one value"),
        ("notin", [], "Values", "operator 'notin' needs at least one value"),
        ("exists", ["x"], "Values", "operator 'exists' takes no values"),
        ("!", ["x"], "Values", "operator '!' takes no values"),
        ("=", [], "Values", "operator '=' takes exactly one value"),
        ("!=", ["a", "b"], "Values", "operator '!=' takes exactly one value"),
        ("gt", ["1", "2"], "Values", "operator 'gt' takes exactly one value"),
        ("lt", [], "Values", "operator 'lt' takes exactly one value"),
        ("gt", ["1.5"], "Values[0]", "operator 'gt' needs an integer, not '1.5'"),
        ("lt", ["9223372036854775808"], "Values[0]", "needs an integer"),
    ],
)
def test_model_checks_values_against_operator(
    operator: str, values: list[str], field: str, problem: str
) -> None:
    error = requirement_error({"Key": "k", "Operator": operator, "Values": values})
    assert error.field == f"Job.Constraints[0].{field}"
    assert problem in error.problem


def test_model_accepts_empty_value_and_int64_bounds() -> None:
    assert req("owner", "=", "").values == [""]
    assert req("n", "gt", "9223372036854775807").values == ["9223372036854775807"]
    assert req("n", "in", "a", "").values == ["a", ""]


def test_favour_keys_are_soft_preferences_on_the_label_they_name() -> None:
    constraints = [req("favour_region", "=", "us"), req("region", "=", "eu")]
    assert hard_unmet({"region": "eu"}, constraints) == []  # the preference does not exclude
    assert hard_unmet({"region": "us"}, constraints) == ["region = eu"]
    (preference,) = preferences(constraints)
    assert (preference.key, preference.values) == ("region", ["us"])
    assert is_preference(constraints[0])
    assert not is_preference(constraints[1])
