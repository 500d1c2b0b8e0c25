import pytest

from scanner.core.errors import UsageError
from scanner.core.scope import in_scope
from scanner.engine.targets import build_target_set, expand_target


def test_address_cidr_range_and_name_expand():
    assert [str(a) for a in expand_target("127.0.0.5")[0]] == ["127.0.0.5"]
    assert [str(a) for a in expand_target("127.0.0.0/30")[0]] == ["127.0.0.1", "127.0.0.2"]
    assert [str(a) for a in expand_target("127.0.0.8-10")[0]] == ["127.0.0.8", "127.0.0.9", "127.0.0.10"]
    assert [str(a) for a in expand_target("127.0.0.8-127.0.0.9")[0]] == ["127.0.0.8", "127.0.0.9"]
    addrs, name = expand_target("localhost")
    assert name == "localhost" and addrs[0].is_loopback
    assert [str(a) for a in expand_target("::1")[0]] == ["::1"]


def test_scope_allowlist_refuses_any_address_outside():
    with pytest.raises(UsageError, match=r"target '127.0.0.0/29' \(127.0.0.1\) is outside the scope 127.0.0.4/30"):
        build_target_set(["127.0.0.0/29"], ["127.0.0.4/30"])
    with pytest.raises(UsageError, match="a scope is required"):
        build_target_set(["127.0.0.1"], [])


def test_excludes_are_dropped_and_reported():
    ts = build_target_set(["127.0.0.1-4"], ["127.0.0.0/24"], ["127.0.0.2", "127.0.0.4/32"])
    assert ts.addresses == ["127.0.0.1", "127.0.0.3"]
    assert ts.excluded == ["127.0.0.2", "127.0.0.4"]


@pytest.mark.parametrize("bad,msg", [
    ("10.0.0.300", "cannot resolve target name"),
    ("127.0.0.9-3", "runs backwards"),
    ("10.0.0.0/8", "larger than 65536"),
    ("bad name", "not a valid target"),
    ("", "empty target"),
])
def test_malformed_targets_are_one_line_errors(bad, msg):
    with pytest.raises(UsageError, match=msg):
        build_target_set([bad], ["0.0.0.0/0"])


def test_in_scope_is_the_last_guard():
    assert in_scope("127.0.0.1", ["127.0.0.0/8"])
    assert not in_scope("127.0.0.1", ["127.0.0.0/8"], ["127.0.0.1"])
    assert not in_scope("10.1.2.3", ["127.0.0.0/8"])
    assert not in_scope("not-an-ip", ["0.0.0.0/0"])
