"""lab research / research-sec: STAND-INS for a FHIR server, Elasticsearch and Kibana (Debian ships none of them).

Not the products: small http.server handlers that answer the few reads tcmscan's phi.fhir, phi.elasticsearch and
phi.kibana make, the way the products answer them (FHIR R4 CapabilityStatement and Patient search; Elasticsearch's
`/` and `/_cat/indices?format=json`; Kibana's `/api/status`).  Every patient is FAKE.

    python3 data_api_standins.py open|locked
open:   FHIR on 8080 without SMART (Patient search answers without a token), Elasticsearch on 9200 and Kibana on 5601
        without login.
locked: FHIR declaring SMART-on-FHIR and answering 401 to a search without a token; Elasticsearch and Kibana
        answering 401 to everything; all three only inside TLS (the host's lab-CA certificate), with HSTS.
"""

from __future__ import annotations

import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PATIENTS = [{"resourceType": "Patient", "id": "p1", "name": [{"family": "FAKEPATIENT-ZHAO", "given": ["Liuqi"]}],
             "birthDate": "1955-03-08"},
            {"resourceType": "Patient", "id": "p2", "name": [{"family": "FAKEPATIENT-QIAN", "given": ["Bajiu"]}],
             "birthDate": "1948-11-30"}]
INDICES = [{"index": "his-orders-2024", "docs.count": "1200"}, {"index": "患者主索引", "docs.count": "300"},
           {"index": "nginx-logs", "docs.count": "3"}, {"index": ".kibana_1", "docs.count": "12"}]


TLS_CERT, TLS_KEY = "/etc/nginx/tls/server.crt", "/etc/nginx/tls/server.key"   # tls_cert: ca-signed


class _Json(BaseHTTPRequestHandler):
    locked = False
    content_type = "application/json; charset=UTF-8"

    def log_message(self, *_args: object) -> None:
        pass

    def version_string(self) -> str:
        return "lab-standin"     # the products name no version in a Server header; http.server's default does

    def end_headers(self) -> None:
        if self.locked:
            self.send_header("Strict-Transport-Security", "max-age=31536000")
        super().end_headers()

    def send(self, status: int, doc: object, challenge: str = "") -> None:
        body = json.dumps(doc, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", self.content_type)
        if challenge:
            self.send_header("WWW-Authenticate", challenge)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FhirStandIn(_Json):
    """FHIR R4: `locked` declares SMART-on-FHIR and answers 401 to searches without a token."""

    content_type = "application/fhir+json;charset=utf-8"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlsplit(self.path)
        if url.path == "/fhir/metadata":
            security = ({"service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                                   "code": "SMART-on-FHIR"}]}]} if self.locked else {})
            self.send(200, {"resourceType": "CapabilityStatement", "status": "active", "fhirVersion": "4.0.1",
                            "software": {"name": "FHIR stand-in (tcmscan lab)", "version": "0"},
                            "rest": [{"mode": "server", "security": security, "resource": [{"type": "Patient"}]}]})
        elif url.path == "/fhir/Patient":
            if self.locked and "authorization" not in {k.lower() for k in self.headers}:
                self.send(401, {"resourceType": "OperationOutcome"}, 'Bearer realm="fhir"')
                return
            bundle: dict = {"resourceType": "Bundle", "type": "searchset", "total": len(PATIENTS)}
            if parse_qs(url.query).get("_summary") != ["count"]:
                bundle["entry"] = [{"resource": p} for p in PATIENTS]
            self.send(200, bundle)
        else:
            self.send(404, {"resourceType": "OperationOutcome"})


class ElasticsearchStandIn(_Json):
    def do_GET(self) -> None:  # noqa: N802
        if self.locked:
            self.send(401, {"statusCode": 401, "error": "Unauthorized"}, 'Basic realm="security" charset="UTF-8"')
        elif self.path == "/":
            self.send(200, {"name": "es-node-1", "cluster_name": "ward-search", "version": {
                "number": "7.17.9", "build_flavor": "default"}, "tagline": "You Know, for Search"})
        elif self.path.startswith("/_cat/indices?format=json"):
            self.send(200, INDICES)
        else:
            self.send(404, {"error": "not found"})


class KibanaStandIn(_Json):
    def do_GET(self) -> None:  # noqa: N802
        if self.locked:
            self.send(401, {"statusCode": 401, "error": "Unauthorized"})
        elif self.path == "/api/status":
            self.send(200, {"name": "kibana-ward", "version": {"number": "7.17.9", "build_snapshot": False},
                            "status": {"overall": {"state": "green"}}})
        else:
            self.send(404, {"error": "not found"})


def serve(address: str, port: int, handler: type[_Json], locked: bool, tls: ssl.SSLContext | None = None
          ) -> ThreadingHTTPServer:
    """Start one stand-in in a daemon thread; the caller shuts it down."""
    srv = ThreadingHTTPServer((address, port), type(handler.__name__, (handler,), {"locked": locked}))
    if tls is not None:
        srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in ("open", "locked"):
        sys.exit("usage: data_api_standins.py open|locked")
    locked = sys.argv[1] == "locked"
    tls = None
    if locked:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(TLS_CERT, TLS_KEY)
    for port, handler in ((8080, FhirStandIn), (9200, ElasticsearchStandIn), (5601, KibanaStandIn)):
        serve("0.0.0.0", port, handler, locked, tls)
    threading.Event().wait()


if __name__ == "__main__":
    main()
