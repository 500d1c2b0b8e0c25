"""Tell people what changed after a scheduled scan: webhook (JSON POST, urllib), e-mail (SMTP + STARTTLS,
smtplib) and syslog (logging.handlers.SysLogHandler). Messages carry rule, host, port, severity and titles in
Chinese and English plus where the signed report is; never evidence (it can quote a default password) and never
a credential. Each attempt has a hard deadline and a bounded number of retries with backoff; a failure is
logged and returned, never raised, so it cannot fail the scan."""

from __future__ import annotations

import base64
import json
import logging
import logging.handlers
import re
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from scanner import __version__
from scanner.core.labels import label
from scanner.core.models import Finding
from scanner.core.output import finding_brief
from scanner.core.vocab import SEVERITIES, severity_rank
from scanner.schedule.jobs import Email, NotifyConfig, Syslog, Webhook, syslog_address

log = logging.getLogger("tcmscan.notify")
SEVERITY_ZH = {s: label("severity", s, "zh") for s in SEVERITIES}      # scanner/core/labels.yaml
MAX_LISTED = 50          # a message lists at most this many findings per kind; the report has them all


@dataclass
class Change:
    """What a run has to say. `new` is already filtered to min_severity; `fixed` to on_fixed."""

    job: str
    scan_id: str
    previous_scan_id: str | None
    status: str                              # done | failed
    new: list[Finding] = field(default_factory=list)
    fixed: list[Finding] = field(default_factory=list)
    open_counts: dict[str, int] = field(default_factory=dict)
    min_severity: str = "high"
    report_dirs: list[str] = field(default_factory=list)
    report_status: str = ""
    signed: bool = False
    error: str = ""

    def worth_sending(self) -> bool:
        return bool(self.new or self.fixed or self.status != "done" or self.report_status.startswith("failed"))


@dataclass
class Delivery:
    channel: str            # webhook | email | syslog
    target: str             # redacted: scheme://host:port of a webhook (no userinfo, path or query)
    ok: bool
    attempts: int
    seconds: float
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def select_changes(diff: dict[str, list[Finding]], cfg: NotifyConfig) -> tuple[list[Finding], list[Finding]]:
    floor = severity_rank(cfg.min_severity)
    new = [f for f in diff.get("new", []) if severity_rank(f.severity) >= floor]
    fixed = [f for f in diff.get("fixed", []) if severity_rank(f.severity) >= floor] if cfg.on_fixed else []
    return new, fixed


# -- message text ------------------------------------------------------------------------------------------
def _item(f: Finding) -> dict[str, Any]:
    return finding_brief(f)      # the short form of the one finding shape: no evidence


def _line(f: Finding, lang: str) -> str:
    where = f"{f.address}:{f.port}" if f.port else f.address
    if lang == "zh":
        return f"  [{SEVERITY_ZH.get(f.severity, f.severity)}] {where} {f.title_zh} ({f.rule_id})"
    return f"  [{f.severity}] {where} {f.title_en} ({f.rule_id})"


def subject(c: Change) -> str:
    if c.status != "done":
        return f"[tcmscan] 任务 {c.job} 扫描未完成 / job {c.job}: scan did not finish"
    return (f"[tcmscan] 任务 {c.job}：新增 {len(c.new)} 项、已修复 {len(c.fixed)} 项 / "
            f"job {c.job}: {len(c.new)} new, {len(c.fixed)} fixed (>= {c.min_severity})")


def body(c: Change, lang: str) -> str:
    zh = lang == "zh"
    out: list[str] = []
    if zh:
        out.append(f"tcmscan 定时扫描任务 {c.job}，扫描 {c.scan_id}"
                   + (f"（对比上次扫描 {c.previous_scan_id}）" if c.previous_scan_id else "（本任务首次扫描）"))
        if c.status != "done":
            out.append(f"扫描未完成：{c.error}。下次运行将从中断处继续。")
    else:
        out.append(f"tcmscan scheduled job {c.job}, scan {c.scan_id}"
                   + (f" (compared with the previous scan {c.previous_scan_id})" if c.previous_scan_id
                      else " (first scan of this job)"))
        if c.status != "done":
            out.append(f"The scan did not finish: {c.error}. The next run resumes it.")
    sev = SEVERITY_ZH.get(c.min_severity, c.min_severity) if zh else c.min_severity
    for title, items in ((("新增问题（{}及以上）", "New findings (at or above {})"), c.new),
                         (("已修复问题（{}及以上）", "Fixed findings (at or above {})"), c.fixed)):
        if c.status != "done":
            break
        out.append("")
        out.append((title[0] if zh else title[1]).format(sev) + f": {len(items)}")
        out += [_line(f, lang) for f in items[:MAX_LISTED]]
        if len(items) > MAX_LISTED:
            out.append(f"  ……另有 {len(items) - MAX_LISTED} 项，见报告" if zh
                       else f"  ... and {len(items) - MAX_LISTED} more, see the report")
    if c.open_counts:
        counts = ", ".join(f"{SEVERITY_ZH.get(k, k) if zh else k} {v}" for k, v in c.open_counts.items() if v)
        out += ["", ("当前未关闭问题：" if zh else "Open findings now: ") + (counts or ("无" if zh else "none"))]
    out.append("")
    if c.report_dirs:
        what = ("已签名报告" if c.signed else "报告（未签名）") if zh else ("Signed report" if c.signed else
                                                                  "Report (not signed)")
        out.append(f"{what}: " + ", ".join(c.report_dirs))
    if c.report_status and c.report_status != "ok":
        out.append(("报告状态：" if zh else "Report status: ") + c.report_status)
    return "\n".join(out) + "\n"


def payload(c: Change) -> dict[str, Any]:
    return {"tool": "tcmscan", "version": __version__, "job": c.job, "scan_id": c.scan_id,
            "previous_scan_id": c.previous_scan_id, "status": c.status, "min_severity": c.min_severity,
            "new": [_item(f) for f in c.new], "fixed": [_item(f) for f in c.fixed], "open": c.open_counts,
            "report": {"dirs": c.report_dirs, "signed": c.signed, "status": c.report_status},
            "error": c.error, "subject": subject(c), "text_zh": body(c, "zh"), "text_en": body(c, "en")}


def syslog_text(c: Change) -> str:
    report = c.report_dirs[0] if c.report_dirs else "none"
    return (f"tcmscan job={c.job} scan={c.scan_id} status={c.status} new={len(c.new)} fixed={len(c.fixed)} "
            f"min_severity={c.min_severity} report={report} signed={'yes' if c.signed else 'no'} | "
            f"任务 {c.job}：新增 {len(c.new)} 项，已修复 {len(c.fixed)} 项")


# -- bounded delivery -----------------------------------------------------------------------------------------
class _Deadline(Exception):
    pass


def _bounded(fn: Callable[[], None], seconds: float) -> None:
    """Run fn with a hard wall-clock limit: socket timeouts bound each read, not a peer that trickles bytes."""
    box: dict[str, BaseException] = {}

    def target() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the caller's thread
            box["e"] = e

    t = threading.Thread(target=target, daemon=True, name="tcmscan-notify")
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise _Deadline(f"no answer within {seconds:g} s")
    if "e" in box:
        raise box["e"]


def _retrying(channel: str, target: str, cfg: NotifyConfig, fn: Callable[[float], None],
              sleep: Callable[[float], None] = time.sleep, hide: tuple[str, ...] = ()) -> Delivery:
    """`hide`: strings (a webhook's URL, its path, query, password, header values) an error text may quote —
    urllib's own messages do, and so can a hostile peer's reason phrase; none reaches the log or the run row."""
    t0 = time.monotonic()
    err = ""
    attempts = 0
    for attempt in range(cfg.retries + 1):
        attempts = attempt + 1
        try:
            _bounded(lambda: fn(cfg.timeout), cfg.timeout + 1.0)
            return Delivery(channel, target, True, attempts, round(time.monotonic() - t0, 2))
        except Exception as e:  # noqa: BLE001 - every failure is recorded, none escapes
            err = scrub(_describe(e), hide)
            log.info("notification %s to %s failed (attempt %d of %d): %s", channel, target, attempts,
                        cfg.retries + 1, err)
        if attempt < cfg.retries:
            sleep(min(2.0 ** attempt, 30.0))
    return Delivery(channel, target, False, attempts, round(time.monotonic() - t0, 2), err)


def _describe(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return f"cannot connect: {e.reason}"
    if isinstance(e, (TimeoutError, socket.timeout, _Deadline)):
        return f"timed out ({e})" if str(e) else "timed out"
    if isinstance(e, smtplib.SMTPResponseException):
        return f"SMTP {e.smtp_code} {e.smtp_error.decode('utf-8', 'replace')[:120]}"
    if isinstance(e, ssl.SSLError):
        return f"TLS: {e.reason or e}"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return f"{type(e).__name__}: {str(e)[:160]}"


def redact_url(url: str) -> str:
    """scheme://host[:port] only: webhook tokens live in the userinfo, the path (Slack, DingTalk, WeCom, Teams
    put the secret there) and the query, so none of those is ever logged, printed or stored."""
    try:
        u = urllib.parse.urlsplit(url)
        host = u.hostname or ""
        port = u.port
    except ValueError:                       # not even a URL: nothing of it is safe to show
        return "(unparsable URL)"
    netloc = f"[{host}]" if ":" in host else host
    if port:
        netloc += f":{port}"
    return f"{u.scheme}://{netloc}" if u.scheme else netloc or "(unparsable URL)"


_ANY_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+")


def url_secrets(url: str, headers: dict[str, str] | None = None) -> tuple[str, ...]:
    """The parts of a webhook that must not appear in an error text, longest first."""
    parts = [url, *(headers or {}).values()]
    try:
        u = urllib.parse.urlsplit(url)
        parts += [u.netloc if "@" in u.netloc else "", u.password or "", f"{u.path}?{u.query}" if u.query else "",
                  u.path, u.query, u.fragment,
                  urllib.parse.unquote(u.path), urllib.parse.unquote(u.query),
                  *(v for _, v in urllib.parse.parse_qsl(u.query))]
    except ValueError:
        pass
    host = redact_url(url).rsplit("://", 1)[-1].split(":")[0].strip("[]")
    keep = {"", "/", host}
    return tuple(sorted({p for p in parts if p not in keep and len(p) >= 3}, key=len, reverse=True))


def scrub(text: str, hide: tuple[str, ...] = ()) -> str:
    """An error text without the hidden strings, and with any URL it quotes cut to scheme://host:port."""
    for h in hide:
        text = text.replace(h, "…")
    return _ANY_URL.sub(lambda m: redact_url(m.group(0)), text)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_a: Any, **_k: Any) -> None:
        return None                  # a redirected POST would lose its body (and could leak headers)


def send_webhook(hook: Webhook, doc: dict[str, Any], timeout: float) -> None:
    data = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    url, auth = _split_userinfo(hook.url)
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": f"tcmscan/{__version__}"}
    if auth:
        headers["Authorization"] = auth
    req = urllib.request.Request(url, data=data, method="POST", headers={**headers, **hook.headers})
    # Direct connection: environment proxies are not consulted (a webhook goes where the config says).
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    with opener.open(req, timeout=timeout) as resp:
        if not 200 <= resp.status < 300:
            raise urllib.error.HTTPError(url, resp.status, resp.reason, resp.headers, None)
        resp.read(65536)


def _split_userinfo(url: str) -> tuple[str, str]:
    """https://user:pw@host/p -> (https://host/p, 'Basic ...'): urllib does not send userinfo (it would take
    'pw@host' for a port and quote it in its error)."""
    u = urllib.parse.urlsplit(url)
    if "@" not in u.netloc:
        return url, ""
    userinfo, _, hostport = u.netloc.rpartition("@")
    user, _, pw = userinfo.partition(":")
    token = base64.b64encode(f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(pw)}".encode()).decode()
    return urllib.parse.urlunsplit((u.scheme, hostport, u.path, u.query, u.fragment)), f"Basic {token}"


def email_message(c: Change, cfg: Email) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject(c)
    msg["From"] = cfg.from_addr
    msg["To"] = ", ".join(cfg.to)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=cfg.from_addr.rsplit("@", 1)[-1])
    msg.set_content(body(c, "zh") + "\n-----\n\n" + body(c, "en"), charset="utf-8")
    return msg


def send_email(cfg: Email, msg: EmailMessage, timeout: float) -> None:
    password = None
    if cfg.password_file:
        password = Path(cfg.password_file).read_text(encoding="utf-8").rstrip("\r\n")
    with smtplib.SMTP(cfg.host, cfg.port, timeout=timeout) as smtp:
        smtp.ehlo()
        if cfg.starttls:
            if not smtp.has_extn("starttls"):
                raise smtplib.SMTPNotSupportedError("the server does not offer STARTTLS")
            smtp.starttls(context=ssl.create_default_context(cafile=cfg.ca_file))
            smtp.ehlo()
        if cfg.user and password is not None:
            smtp.login(cfg.user, password)
        smtp.send_message(msg)


def send_syslog(cfg: Syslog, text: str, timeout: float) -> None:
    kind, addr = syslog_address(cfg.address)
    if kind == "unix" and not Path(str(addr)).exists():
        # SysLogHandler defers this error and then reports a bare EBADF: say what is wrong instead.
        raise FileNotFoundError(f"no syslog socket at {addr} (is rsyslog or journald running?)")
    facility = logging.handlers.SysLogHandler.facility_names[cfg.facility]
    sock = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM if kind == "udp" else None
    handler = logging.handlers.SysLogHandler(address=addr, facility=facility, socktype=sock)
    try:
        if handler.socket is not None:
            handler.socket.settimeout(timeout)
        handler.ident = "tcmscan: "
        record = logging.LogRecord("tcmscan", logging.WARNING, __file__, 0, text, None, None)
        handler.handleError = _raise           # type: ignore[method-assign]  # stdlib swallows errors by default
        handler.emit(record)
    finally:
        handler.close()


def _raise(_record: logging.LogRecord) -> None:
    raise  # noqa: PLE0704 - re-raise the exception emit() is handling


def deliver(c: Change, cfg: NotifyConfig, *, sleep: Callable[[float], None] = time.sleep) -> list[Delivery]:
    """Send to every channel; never raises. Empty when there is nothing worth saying."""
    if not c.worth_sending() or not cfg.channels():
        return []
    doc = payload(c)
    out = []
    for hook in cfg.webhook:
        out.append(_retrying("webhook", redact_url(hook.url), cfg,
                             lambda t, h=hook: send_webhook(h, doc, t), sleep, url_secrets(hook.url, hook.headers)))
    if cfg.email:
        e = cfg.email
        out.append(_retrying("email", f"smtp://{e.host}:{e.port} -> {', '.join(e.to)}", cfg,
                             lambda t: send_email(e, email_message(c, e), t), sleep))
    if cfg.syslog:
        s = cfg.syslog
        out.append(_retrying("syslog", f"{s.address} ({s.facility})", cfg,
                             lambda t: send_syslog(s, syslog_text(c), t), sleep))
    return out
