"""HTML login forms of device consoles: find the form, submit one default pair, decide conservatively.

Parsing uses the standard library's html.parser (tolerant of broken markup, no dependency); the page is at
most 256 KiB (web.request) and we keep at most MAX_FORMS forms of MAX_FIELDS fields. A login form is a
<form> with exactly ONE password input (two or more = a change-password or sign-up form, never submitted).

Decision (conservative: a default login is only reported when the console clearly let us in):
- accepted: POST answered 3xx to a page of the same origin, and that page (followed once, with the session
  cookies) is 200 without a password field and without an error text; or POST answered 200 itself without
  a password field and without an error text AND set a cookie (the new session).
- refused: 401/403, the login form again, an error text in the visible page text (invalid/incorrect/failed/错误/失败 ...), other 4xx/5xx.
- throttled (429, 503): we stop at once and the attempt is "not assessed" (CheckError): never retried.
- not counted: a 200 without a password field but without a new session cookie, a redirect to another
  origin (not followed), a landing page that is not 200. These count as not accepted.
After an accepted login we GET the page's logout link once (if it has one on the same origin): consoles
with one admin session slot must not be left locked by our session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin

from checks.creds import _web as web
from scanner.sdk import CheckContext, CheckError, CheckNotApplicable

MAX_FORMS = 20
MAX_FIELDS = 100
MAX_LINKS = 200
MAX_TEXT = 32 * 1024
ENTRY_HOPS = 2              # same-origin redirects (or meta refresh) followed from / to the login page
USER_NAME = re.compile(r"user|login|name|account|acct|email|mail|uid|operator|usr", re.I)
FAILURE_TEXT = re.compile(r"invalid|incorrect|fail|denied|wrong|error|unauthori[sz]ed|locked"
                          r"|错误|失败|无效|不正确|锁定", re.I)
LOGOUT = re.compile(r"log_?-?out|log_?-?off|sign_?-?out|exit|退出|注销", re.I)
THROTTLED = (429, 503)


@dataclass
class Field:
    name: str
    type: str
    value: str
    checked: bool = False


@dataclass
class Form:
    action: str
    method: str
    enctype: str
    fields: list[Field] = field(default_factory=list)

    @property
    def passwords(self) -> list[Field]:
        return [f for f in self.fields if f.type == "password"]


class PageParser(HTMLParser):
    """Forms (with inputs, selects, textareas, named submit buttons), title, meta refresh, links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.loose_password = False          # a password input outside any form (JavaScript login)
        self.title = ""
        self.refresh = ""
        self.links: list[str] = []
        self._form: Form | None = None
        self._select: Field | None = None
        self._in_title = False
        self._skip = 0                       # inside <script>/<style>: not visible text
        self.text: list[str] = []            # visible text (for error messages), at most MAX_TEXT characters
        self._text_len = 0

    def _add(self, f: Field) -> None:
        if self._form is not None and len(self._form.fields) < MAX_FIELDS:
            self._form.fields.append(f)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs[:50]}
        if tag == "form":
            if len(self.forms) < MAX_FORMS:
                self._form = Form(action=a.get("action", "")[:1000], method=a.get("method", "get").lower()[:10],
                                  enctype=a.get("enctype", "").lower()[:60])
                self.forms.append(self._form)
            else:
                self._form = None
        elif tag == "input":
            typ = a.get("type", "text").lower().strip()[:20] or "text"
            if typ == "password" and self._form is None:
                self.loose_password = True
            self._add(Field(a.get("name", "")[:200], typ, a.get("value", "")[:2000], "checked" in a))
        elif tag == "button":
            if a.get("type", "submit").lower() == "submit" and a.get("name"):
                self._add(Field(a["name"][:200], "submit", a.get("value", "")[:200]))
        elif tag == "select":
            self._select = Field(a.get("name", "")[:200], "select", "")
            self._add(self._select)
        elif tag == "option" and self._select is not None:
            # the browser sends the selected option, else the first one
            if not self._select.checked and ("selected" in a or not self._select.value):
                self._select.value = a.get("value", "")[:200]
                self._select.checked = "selected" in a
        elif tag == "textarea":
            self._add(Field(a.get("name", "")[:200], "textarea", ""))
        elif tag == "title":
            self._in_title = True
        elif tag in ("script", "style"):
            self._skip += 1
        elif tag == "meta" and a.get("http-equiv", "").lower() == "refresh":
            m = re.search(r"url\s*=\s*['\"]?([^'\"]+)", a.get("content", ""), re.I)
            if m and not self.refresh:
                self.refresh = m.group(1).strip()[:1000]
        elif tag == "a" and a.get("href") and len(self.links) < MAX_LINKS:
            self.links.append(a["href"][:1000])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in ("form", "select"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "title":
            self._in_title = False
        elif tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data: str) -> None:
        if self._in_title and len(self.title) < 120:
            self.title = (self.title + data)[:120]
        elif not self._skip and self._text_len < MAX_TEXT:
            self.text.append(data[:MAX_TEXT - self._text_len])
            self._text_len += len(self.text[-1])


def decode(body: bytes, content_type: str | None) -> str:
    m = re.search(r"charset=\"?([\w-]+)", content_type or "", re.I) or re.search(
        rb"<meta[^>]{0,200}charset=[\"']?([\w-]+)".decode(), body[:4096].decode("latin-1"), re.I)
    charset = m.group(1) if m else "utf-8"
    try:
        return body.decode(charset, errors="replace")
    except (LookupError, UnicodeError):     # no such codec, or one that fails whatever it reads ("undefined")
        return body.decode("utf-8", errors="replace")


def parse_page(body: bytes, content_type: str | None = None) -> PageParser:
    """Parse a (bounded) page; garbage never raises (what was parsed before the garbage is kept)."""
    p = PageParser()
    try:
        p.feed(decode(body, content_type))
        p.close()
    except Exception:   # html.parser may still assert on pathological markup: keep what it had
        pass
    return p


def login_form(page: PageParser) -> Form | None:
    """The first form with exactly one password input."""
    return next((f for f in page.forms if len(f.passwords) == 1), None)


def user_field(form: Form) -> Field | None:
    """The user-name input: a text-like input before the password, preferring a user-ish name."""
    pw = form.fields.index(form.passwords[0])
    texts = [f for f in form.fields[:pw] if f.type in ("text", "email", "tel", "number", "") and f.name]
    return next((f for f in reversed(texts) if USER_NAME.search(f.name)), texts[-1] if texts else None)


def submission(form: Form, user: str, password: str) -> list[tuple[str, str]]:
    """What a browser would send: hidden inputs (CSRF tokens) as given, our user and password, checked boxes,
    selects, and the first named submit button."""
    uf = user_field(form)
    out: list[tuple[str, str]] = []
    submit_seen = False
    for f in form.fields:
        if not f.name:
            continue
        if f is uf:
            out.append((f.name, user))
        elif f.type == "password":
            out.append((f.name, password))
        elif f.type in ("checkbox", "radio"):
            if f.checked:
                out.append((f.name, f.value or "on"))
        elif f.type in ("submit", "image"):
            if f.type == "submit" and not submit_seen:
                out.append((f.name, f.value))
                submit_seen = True
        elif f.type not in ("button", "reset", "file"):
            out.append((f.name, f.value))
    return out


def form_facts(form: Form, action_path: str) -> dict:
    """Names only (never values: a hidden value may be a session token)."""
    uf = user_field(form)
    return {"action": action_path[:200], "method": form.method if form.method in ("get", "post") else "post",
            "user_field": uf.name[:100] if uf else "", "password_field": form.passwords[0].name[:100],
            "hidden": sorted({f.name[:100] for f in form.fields if f.type == "hidden" and f.name})[:20]}


@dataclass
class LoginPage:
    """A login form found on the console, with the page it was found on and the cookies that came with it."""

    path: str                      # page that shows the form (GET it again for a fresh CSRF token)
    form: Form
    action: str                    # same-origin path the form submits to
    cookies: dict[str, str]
    identity: str                  # title and Server header: matched against device-family entries


def _page_of(resp: web.Response) -> PageParser:
    return parse_page(resp.body, resp.head.get("content-type"))


def find(ctx: CheckContext, origin: web.Origin, first: web.Response | None = None,
         path: str = "/") -> LoginPage | None:
    """GET `path` (or use `first`), follow up to ENTRY_HOPS same-origin redirects / meta refreshes, and return
    the login form of the page reached; None when there is none. Raises CheckNotApplicable for forms we do
    not submit (other origin, multipart, JavaScript-only logins)."""
    jar: dict[str, str] = {}
    resp = first or web.request(ctx, origin, "GET", path)
    for hop in range(ENTRY_HOPS + 1):
        jar.update(resp.set_cookies)
        if resp.status in THROTTLED:
            raise CheckError("protocol", f"console answered HTTP {resp.status} to loading {path[:80]}: throttled; "
                                         "stopped, nothing retried")
        page = _page_of(resp) if resp.status == 200 else None
        nxt = ""
        if resp.status in web.REDIRECTS:
            nxt = resp.location
        elif page is not None and page.refresh and not login_form(page):
            nxt = urljoin(resp.url, page.refresh)
        if not nxt or hop == ENTRY_HOPS:
            break
        target = origin.path_of(nxt)
        if target is None:
            return None        # the console lives elsewhere (often http -> https): that port has its attempt
        resp = web.request(ctx, origin, "GET", target, headers={"Cookie": web.cookie_header(jar)})
        path = target
    if resp.status != 200 or page is None:
        return None
    form = login_form(page)
    if form is None:
        if page.loose_password:
            raise CheckNotApplicable("password field outside any <form> (JavaScript login): not tried")
        return None
    if "multipart" in form.enctype:
        raise CheckNotApplicable("login form is multipart/form-data: not tried")
    action = origin.path_of(urljoin(resp.url, form.action or resp.url))
    if action is None:
        raise CheckNotApplicable(f"login form posts to another origin ({form.action[:80]}): not tried")
    identity = f"{page.title} {resp.head.get('server') or ''}".strip()[:200]
    return LoginPage(path=path, form=form, action=action, cookies=jar, identity=identity)


def _has_password(resp: web.Response) -> bool:
    page = _page_of(resp)
    return page.loose_password or any(f.passwords for f in page.forms)


def _failure_text(resp: web.Response) -> str:
    # visible text only: class names ("error") and scripts of an ordinary page are not an error message
    m = FAILURE_TEXT.search(" ".join(_page_of(resp).text))
    return m.group(0)[:20] if m else ""


def _logout(ctx: CheckContext, origin: web.Origin, resp: web.Response, jar: dict[str, str]) -> str:
    for href in _page_of(resp).links:
        if LOGOUT.search(href):
            target = origin.path_of(urljoin(resp.url, href))
            if target is not None:
                try:
                    web.request(ctx, origin, "GET", target, headers={"Cookie": web.cookie_header(jar)})
                except CheckError:
                    return ""
                return target
    return ""


def attempt(ctx: CheckContext, origin: web.Origin, login: LoginPage, user: str, password: str
            ) -> tuple[bool, str, str]:
    """Submit the form once with (user, password); (accepted, short detail, decision explained)."""
    fields = submission(login.form, user, password)
    jar = dict(login.cookies)
    headers = {"Cookie": web.cookie_header(jar), "Referer": origin.url(login.path),
               "Origin": origin.url("")}
    if login.form.method == "get":
        sep = "&" if "?" in login.action else "?"
        resp = web.request(ctx, origin, "GET", login.action + sep + urlencode(fields), headers=headers)
    else:
        resp = web.request(ctx, origin, "POST", login.action, body=urlencode(fields).encode(),
                           headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})
    verb = "GET" if login.form.method == "get" else "POST"
    said = f"{verb} {login.action.split('?')[0][:80]} answered {resp.status}"
    if resp.status in THROTTLED:
        retry = (resp.head.get("retry-after") or "")[:20]
        raise CheckError("protocol", f"console throttles logins: {said}"
                                     f"{f' (Retry-After {retry})' if retry else ''}; stopped, nothing retried")
    new_cookies = resp.set_cookies
    jar.update(new_cookies)
    if resp.status in (401, 403):
        return False, f"HTTP {resp.status}", f"{said}: refused"
    if resp.status in web.REDIRECTS:
        target = origin.path_of(resp.location) if resp.location else None
        if target is None:
            return False, f"HTTP {resp.status}", f"{said} to another origin ({resp.location[:80]}): not " \
                                                 "followed, not counted as accepted"
        landing = web.request(ctx, origin, "GET", target, headers={"Cookie": web.cookie_header(jar)})
        jar.update(landing.set_cookies)
        said += f" to {target.split('?')[0][:80]}, which answered {landing.status}"
        if landing.status in THROTTLED:
            raise CheckError("protocol", f"console throttles: {said}; stopped, nothing retried")
        if landing.status != 200:
            return False, f"HTTP {resp.status}", f"{said}: not a page of a logged-in session, not counted"
        if _has_password(landing):
            return False, f"HTTP {resp.status}", f"{said} with a password field again: refused"
        if (bad := _failure_text(landing)):
            return False, f"HTTP {resp.status}", f"{said} with the text {bad!r}: refused"
        out = _logout(ctx, origin, landing, jar)
        return True, f"HTTP {resp.status}", (
            f"{said} without a password field or error text"
            f"{', session cookie set' if new_cookies else ''}: accepted"
            f"{f'; logged out with GET {out[:80]}' if out else '; no logout link found'}")
    if resp.status != 200:
        return False, f"HTTP {resp.status}", f"{said}: refused"
    if _has_password(resp):
        bad = _failure_text(resp)
        return False, "HTTP 200", f"{said} with the login form again{f' and the text {bad!r}' if bad else ''}: " \
                                  "refused"
    if (bad := _failure_text(resp)):
        return False, "HTTP 200", f"{said} with the text {bad!r}: refused"
    if not new_cookies:
        return False, "HTTP 200", f"{said} without a password field but set no session cookie: not counted " \
                                  "as accepted (conservative)"
    out = _logout(ctx, origin, resp, jar)
    return True, "HTTP 200", (f"{said} without a password field or error text, session cookie set: accepted"
                              f"{f'; logged out with GET {out[:80]}' if out else '; no logout link found'}")


def choose(entries: list[dict], identity: str, limit: int) -> list[dict]:
    """Device-family entries whose `match` fits the page (title/Server) first, then the generic ones; at most
    `limit` in all. An entry with a `match` that does not fit is never tried."""
    fit, generic = [], []
    for e in entries:
        pattern = str(e.get("match") or "")
        if not pattern:
            generic.append(e)
        else:
            try:
                if re.search(pattern, identity, re.I):
                    fit.append(e)
            except re.error:
                continue
    return (fit + generic)[:limit]

