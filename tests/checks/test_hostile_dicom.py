"""The DICOM checks against the lab's hostile DICOM peers on loopback. A peer dripping a byte a second held each
association read until the attempt's whole budget was spent (40 s for dicom.association, twice per device with
dicom.cfind); one read now ends PDU_SECONDS after it started."""

from __future__ import annotations

import pytest

from checks.dicom import _common, association
from scanner.sdk.errors import CheckError
from tests.checks.hostile_loopback import Hostile, context, finishes


@pytest.fixture
def short_pdu_time(monkeypatch):
    monkeypatch.setattr(_common, "PDU_SECONDS", 3.0)


def test_dripping_peer_ends_with_one_pdu_time(short_pdu_time):
    with Hostile("drip", 104) as h:
        ctx = context(h.address, 104, "dicom", "dicom.association", timeout=40)
        _, error, seconds = finishes(lambda: association.run(ctx), 60)
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("timeout", "DICOM peer did not finish its PDU within 3 s")
    assert seconds < 10


def test_absurd_pdu_length_is_refused_unread():
    with Hostile("dicom-absurd-length", 104) as h:
        ctx = context(h.address, 104, "dicom", "dicom.association", timeout=40)
        _, error, seconds = finishes(lambda: association.run(ctx), 30)
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == (
        "protocol", "peer announced a 4294967295-byte PDU (limit 1048576): refused unread")
    assert seconds < 3


def test_malformed_pdu_is_a_protocol_error():
    with Hostile("dicom-malformed-pdu", 104) as h:
        ctx = context(h.address, 104, "dicom", "dicom.association", timeout=40)
        _, error, seconds = finishes(lambda: association.run(ctx), 30)
    assert isinstance(error, CheckError)
    assert (error.reason, error.detail) == ("protocol", "no usable A-ASSOCIATE answer: the peer aborted")
    assert seconds < 3
