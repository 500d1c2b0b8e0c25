"""mqtt.broker: does an MQTT broker take an anonymous client, and does it hand it the hospital's messages?

One connection per port, MQTT 3.1.1 through paho-mqtt (Eclipse's client; it parses CONNACK/SUBACK/PUBLISH
for us): CONNECT with a random client id, clean session, no user name; when accepted, one SUBSCRIBE to `#`
at QoS 0 and a listening window of WINDOW seconds; then DISCONNECT. Nothing is published, nothing is
acknowledged (QoS 0 has no PUBACK), the clean session leaves no state on the broker. On the TLS ports
(8883, or a port discovery saw wrapped in TLS) the same dialogue runs over TLS without certificate checks
(certificates are tls.scan's business): the fact is "TLS offered".

Facts only, key `mqtt`: whether the CONNECT was accepted (the CONNACK's reason), whether the subscription
was granted, how many messages arrived (retained ones apart) and their topic NAMES (at most MAX_TOPICS).
Payloads are never read by us, never stored: the callback sees the message object and keeps only its topic.

Bounds: the socket paho reads is a BoundedSocket (time and bytes); at most MAX_MESSAGES messages are counted
(then we stop: "message cap"); a broker sending more than MAX_BYTES, garbage, or nothing is "not assessed".
"""

from __future__ import annotations

import secrets
import ssl
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from scanner.sdk import Asset, CheckContext, CheckError, CheckMeta, CheckNotApplicable, Observation, Service
from scanner.sdk.bounded import BoundedSocket

META = CheckMeta(
    id="mqtt.broker",
    version="1.0",
    title_zh="MQTT消息代理匿名访问与传输加密",
    title_en="MQTT broker anonymous access and transport encryption",
    granularity="service",
    services=("mqtt", "secure-mqtt"),
    ports=(1883, 8883),
    capabilities=("AUTH", "TXCF"),
    timeout=30.0,
    description="Anonymous MQTT 3.1.1 CONNECT (clean session); when accepted, SUBSCRIBE '#' at QoS 0 for a few "
                "seconds, counting messages and topic names (never payloads); nothing published.",
)
TLS_PORTS = (8883,)
WINDOW = 3.0             # seconds of listening after SUBACK: retained messages arrive at once, live ones trickle
ANSWER_WAIT = 8.0        # CONNACK / SUBACK
MAX_MESSAGES = 200
MAX_TOPICS = 50
MAX_TOPIC_CHARS = 160
MAX_BYTES = 2 * 1024 * 1024


def uses_tls(service: Service | None) -> bool:
    return service is not None and (service.port in TLS_PORTS or service.tunnel == "ssl"
                                    or service.name == "secure-mqtt")


def applies(asset: Asset, service: Service | None) -> bool:
    return service is not None and (service.name in META.services or service.port in META.ports)


class _Client(mqtt.Client):
    """paho's client, except that its connection is ours: opened by the check context (scope, pacing) and read
    through a BoundedSocket. paho opens sockets in `_create_socket` (2.x); pinned by pyproject (>=2.0,<3)."""

    def __init__(self, ctx: CheckContext, tls: bool) -> None:
        super().__init__(CallbackAPIVersion.VERSION2, client_id="tcmscan-" + secrets.token_hex(4),
                         clean_session=True, protocol=mqtt.MQTTv311)
        self.ctx, self.tls = ctx, tls
        self.bounded: BoundedSocket | None = None
        self.tls_version = ""

    def _create_socket(self) -> Any:
        sock = self.ctx.connect(timeout=min(ANSWER_WAIT, self.ctx.remaining()))
        if self.tls:
            tctx = ssl.create_default_context()
            tctx.check_hostname = False
            tctx.verify_mode = ssl.CERT_NONE     # "is TLS offered", not "is the certificate good" (tls.scan)
            try:
                sock = self.ctx.wrap_tls(sock, tctx)
            except (ssl.SSLError, OSError) as e:
                raise CheckError("protocol", f"TLS handshake failed on a TLS MQTT port: {e}") from None
            self.tls_version = sock.version() or ""
            self._ssl = True       # paho then asks the socket for decrypted bytes select() cannot see
        self.bounded = BoundedSocket(sock, seconds=min(ANSWER_WAIT * 2 + WINDOW + 2, self.ctx.remaining()),
                                     max_bytes=MAX_BYTES, what="MQTT broker")
        return self.bounded


def _observe(ctx: CheckContext, tls: bool) -> dict[str, Any]:
    client = _Client(ctx, tls)
    state: dict[str, Any] = {"connack": None, "suback": None, "messages": 0, "retained": 0, "topics": [],
                             "topics_truncated": False}

    def on_connect(_c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        state["connack"] = reason

    def on_subscribe(_c: Any, _u: Any, _mid: int, reasons: list[Any], _props: Any) -> None:
        state["suback"] = reasons

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        # the topic and the retain flag only: msg.payload is never looked at
        state["messages"] += 1
        state["retained"] += 1 if msg.retain else 0
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = "<topic not UTF-8>"
        topic = topic[:MAX_TOPIC_CHARS]
        if topic not in state["topics"]:
            if len(state["topics"]) < MAX_TOPICS:
                state["topics"].append(topic)
            else:
                state["topics_truncated"] = True

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    data: dict[str, Any] = {"tls": tls, "tls_version": "", "connected": False, "accepted": False, "connack": "",
                            "subscribed": None, "suback": "", "window_s": 0.0, "messages": 0, "retained": 0,
                            "topics": [], "topics_truncated": False, "stopped": ""}
    try:
        client.connect(ctx.address, ctx.port or 1883, keepalive=60)
        data["connected"], data["tls_version"] = True, client.tls_version

        def pump(until: float, done: Any, window: bool = False) -> bool:
            """Run paho until done() or `until`; False when the broker ended the connection in the window."""
            while not done() and time.monotonic() < until:
                rc = client.loop(timeout=min(0.2, max(0.0, until - time.monotonic())))
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    if client.bounded is not None:
                        client.bounded.raise_if_exceeded()
                    if done():
                        return True
                    if window:      # what arrived before the hang-up is still what the broker handed out
                        return False
                    raise CheckError("protocol", f"MQTT broker: connection ended ({mqtt.error_string(rc)})")
            return True

        pump(time.monotonic() + min(ANSWER_WAIT, ctx.remaining()), lambda: state["connack"] is not None)
        if state["connack"] is None:
            raise CheckError("timeout", f"no CONNACK within {ANSWER_WAIT:.0f} s")
        reason = state["connack"]
        data["connack"] = str(reason)
        data["accepted"] = not reason.is_failure
        if data["accepted"]:
            client.subscribe("#", qos=0)
            pump(time.monotonic() + min(ANSWER_WAIT, ctx.remaining()), lambda: state["suback"] is not None)
            if state["suback"] is None:
                raise CheckError("timeout", f"no SUBACK within {ANSWER_WAIT:.0f} s")
            granted = [r for r in state["suback"] if not r.is_failure]
            data["subscribed"] = bool(granted)
            data["suback"] = ", ".join(str(r) for r in state["suback"])
            start = time.monotonic()
            if granted:
                if not pump(start + min(WINDOW, ctx.remaining() - 1), lambda: state["messages"] >= MAX_MESSAGES,
                            window=True):
                    data["stopped"] = "the broker closed the connection during the window"
                elif state["messages"] >= MAX_MESSAGES:
                    data["stopped"] = f"message cap: stopped after {MAX_MESSAGES} messages"
            data["window_s"] = round(time.monotonic() - start, 1)
            if client.is_connected():
                client.disconnect()
    except CheckError:
        raise
    except Exception as e:      # paho on hostile bytes: a malformed packet must not end as a traceback
        if client.bounded is not None:
            client.bounded.raise_if_exceeded()
        if not data["connected"] and isinstance(e, OSError):
            raise CheckError("connectivity", f"MQTT broker: {e}") from None
        raise CheckError("protocol", f"MQTT broker sent something paho-mqtt cannot read: "
                                     f"{type(e).__name__}: {str(e)[:120]}") from None
    finally:
        client._reset_sockets()      # closes the broker connection and paho's wake-up socket pair
    data.update(messages=state["messages"], retained=state["retained"], topics=sorted(state["topics"]),
                topics_truncated=state["topics_truncated"])
    return data


def run(ctx: CheckContext) -> list[Observation]:
    if ctx.service is None or not applies(ctx.asset, ctx.service):
        raise CheckNotApplicable("not an MQTT port")
    return [ctx.observation("mqtt", _observe(ctx, uses_tls(ctx.service)))]
