import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.assess.expr import ExprError, compile_expr, evaluate


def test_rule_expressions_read_data_params_and_knowledge():
    names = {"data": {"versions": {"TLSv1.0": ["A"], "TLSv1.2": ["B"]}, "port": 23},
             "params": {"legacy": ["SSLv3", "TLSv1.0"]}, "k": {"risky": {23: "telnet"}}}
    assert evaluate("[v for v in params.legacy if data.versions.get(v)]", names) == ["TLSv1.0"]
    assert evaluate("data.port in k.risky and k.risky[data.port] == 'telnet'", names) is True
    assert evaluate("intersect(['a', 'b'], ['b', 'c'])", {}) == ["b"]
    assert evaluate("version_lt('3.6.2', '3.6.10') and not version_lt('3.6.7', '3.6.7')", {}) is True
    assert evaluate("hours_since('2026-01-01T00:00:00Z', '2026-01-02T06:00:00Z')", {}) == 30.0


def test_absent_value_never_meets_a_threshold():
    assert evaluate("data.min_len < 8", {"data": {"min_len": None}}) is False


@pytest.mark.parametrize("text", ["__import__('os')", "data.__class__", "(lambda: 1)()", "open('/etc/passwd')",
                                  "[x for x in data for y in data]", "data.get.__self__"])
def test_anything_beyond_the_language_is_refused(text):
    with pytest.raises(ExprError):
        evaluate(text, {"data": {}})


def test_missing_field_is_an_error_not_false():
    with pytest.raises(ExprError, match="missing field 'nope'"):
        evaluate("data.nope == 1", {"data": {}})


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_either_compiles_or_raises_expr_error(text):
    try:
        compile_expr(text)
    except ExprError:
        return
    try:
        evaluate(text, {"data": {}, "params": {}, "k": {}})
    except ExprError:
        pass
