"""One installation on two web hosts: two gunicorn instances (separate processes on separate ports, each with a
recordings folder of its own, as two machines would have) behind one nginx upstream, one PostgreSQL database,
one Redis and one worker. Everything else is test_production_stack's Stack.

Requests go to each host directly (with the headers nginx sends), so the test says which host answers:
a session made on one is honoured on the other, and sign-out on one ends it on both; a sign-in limit used up
on one refuses on the other; a published notice and a changed setting show on both at once; and nginx shares
requests between them.

Run by `.ci/run` (`pytest stack_tests`), with the same needs as test_production_stack.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack_tests.portal_client import PASSWORD, PortalClient, make_accounts
from stack_tests.test_production_stack import VENV_BIN, WAV, Stack, stage
from tests.smtp_support import free_port, start_server

RULE = re.compile(r'"rule": ?"/call-recording-notice"')


class TwoHostStack(Stack):
    """Stack with a second gunicorn instance ("b") in nginx's upstream next to the first ("a")."""

    def __init__(self, root: Path, *, recording_store: str) -> None:
        super().__init__(root)
        self.web_ports = {"a": self.web_port, "b": free_port()}
        self.settings["GUNICORN_WORKERS"] = "1"
        self.settings["RECORDING_STORE"] = recording_store

    def nginx_config(self) -> Path:
        main = super().nginx_config()
        site = self.root / "site.conf"
        one = f"server 127.0.0.1:{self.web_port};"
        text = site.read_text()
        assert one in text
        site.write_text(text.replace(one, f"{one}\n    server 127.0.0.1:{self.web_ports['b']};"))
        return main

    def start_web(self) -> None:
        gunicorn = [str(VENV_BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "wsgi:app"]
        for host, port in self.web_ports.items():
            folder = self.root / f"recordings-{host}"
            self.settings.update(GUNICORN_BIND=f"127.0.0.1:{port}", RECORDINGS_DIR=str(folder))
            self.start(f"web-{host}", gunicorn, f"http://127.0.0.1:{port}/healthz")
        self.settings["RECORDINGS_DIR"] = str(self.recordings)  # the worker's and the scripts'

    def host(self, name: str) -> PortalClient:
        return PortalClient.direct(self.web_ports[name], self.base_url)


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory) -> Iterator[TwoHostStack]:
    for tool in ("nginx", "psql", "openssl"):
        assert shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists(), f"{tool} is needed (.ci/run installs it)"
    # Each host has a RECORDINGS_DIR of its own, as two machines would: only the database store is shared.
    the_stack = TwoHostStack(tmp_path_factory.mktemp("two-hosts"), recording_store="database")
    controller, _inbox = start_server(the_stack.smtp_port)
    try:
        started = time.monotonic()
        the_stack.create_database()
        the_stack.make_certificate()
        the_stack.start_web()
        the_stack.start_worker()
        the_stack.start_nginx()
        ports = ", ".join(f"{name} :{port}" for name, port in the_stack.web_ports.items())
        stage(f"two hosts up in {time.monotonic() - started:.1f} s: nginx :{the_stack.https_port} -> {ports}")
        yield the_stack
    finally:
        the_stack.tear_down()
        controller.stop()


@pytest.fixture(scope="module")
def accounts(two_hosts) -> dict[str, tuple[str, str, str]]:
    """Named accounts: each signs in once, so no authenticator code is ever offered twice."""
    made = make_accounts(two_hosts.settings, patients=4, admins=2, prefix=f"two-{secrets.token_hex(3)}")
    names = ["session", "limited", "asker", "spare", "publisher", "uploader"]
    return dict(zip(names, made, strict=True))


def test_a_session_made_on_one_host_is_honoured_on_the_other_and_ended_on_both(two_hosts, accounts) -> None:
    kind, email, secret = accounts["session"]
    on_a = two_hosts.host("a")
    on_a.sign_in(kind, email, secret)
    on_b = on_a.on(two_hosts.host("b"))
    for client in (on_a, on_b):
        page = client.get("/account")
        assert page.status_code == 200 and "Your account" in page.text, (client.origin, page.status_code)

    cookie = dict(on_a.cookies)
    ended = on_b.sign_out(kind)
    assert ended.status_code == 200 and "signed out" in ended.text.lower(), (ended.status_code, ended.text[:500])
    assert on_b.cookies == {}, "the session cookie should have been removed"
    for host in ("a", "b"):
        stolen = two_hosts.host(host)
        stolen.cookies = dict(cookie)  # the cookie as it was before sign-out, as a copy of it would be
        page = stolen.get("/account")
        assert page.status_code == 302 and "/account/sign-in" in page.headers["Location"], (host, page.status_code)
    stage("a session made on host a is honoured on b; signed out on b, the old cookie works on neither")


def test_a_sign_in_limit_used_up_on_one_host_refuses_on_the_other(two_hosts, accounts) -> None:
    _kind, email, _secret = accounts["limited"]
    on_a = two_hosts.host("a")
    refused = [on_a.submit("/account/sign-in", {"email": email, "password": "wrong password here"}) for _ in range(5)]
    assert all(page.status_code != 429 and "Enter a correct email" in page.text for page in refused), [
        page.status_code for page in refused
    ]
    on_b = two_hosts.host("b")
    # The right password now: the limit is checked first, and the count lives in the shared Redis.
    limited = on_b.submit("/account/sign-in", {"email": email, "password": PASSWORD})
    assert limited.status_code == 429, limited.status_code
    assert "Too many attempts" in limited.text
    stage("five failed sign-ins on host a: the sixth, on host b with the right password, is refused (429)")


def test_a_published_notice_and_a_changed_setting_show_on_both_hosts_at_once(two_hosts, accounts) -> None:
    hosts = {name: two_hosts.host(name) for name in ("a", "b")}
    for client in hosts.values():  # each host has read (and cached) the current versions
        assert client.get("/call-recording-notice").status_code == 200

    kind, email, secret = accounts["publisher"]
    admin = two_hosts.host("a")
    admin.sign_in(kind, email, secret)
    editor = "/admin/content/call-recording-notice"
    fields = admin.form(editor)
    marker = f"Published on host a, {secrets.token_hex(4)}."
    published = admin.request(
        "POST",
        editor,
        referer=editor,
        data={
            "csrf_token": fields["csrf_token"],
            "title": fields["title"],
            "source": fields["source"] + f"\n\n{marker}\n",
            "change-summary": "A line added by the two-host test",
            "action": "publish",
        },
    )
    assert published.status_code == 302 and "versions" in published.headers["Location"], published.text[:2000]
    for name, client in hosts.items():
        assert marker in client.get("/call-recording-notice").text, f"host {name} still shows the old notice"

    settings = admin.on(hosts["b"])
    fields = settings.form("/admin/settings")
    name_field = "practice-name"
    new_name = f"Thamesmead Medical {secrets.token_hex(3)}"
    saved = settings.request(
        "POST", "/admin/settings", referer="/admin/settings", data={**fields, name_field: new_name}
    )
    assert saved.status_code == 302, saved.text[:2000]
    for name, client in hosts.items():
        assert new_name in client.get("/call-recording-notice").text, f"host {name} still shows the old name"
    stage("a notice published on host a and a practice name saved on host b: both hosts show both at once")


def test_nginx_shares_requests_between_the_hosts(two_hosts) -> None:
    def logged() -> dict[str, int]:  # the portal's own line per request names its URL rule
        return {host: len(RULE.findall(two_hosts.log(f"web-{host}.log"))) for host in two_hosts.web_ports}

    before = logged()
    nginx = PortalClient(two_hosts.base_url)
    for _ in range(20):
        assert nginx.get("/call-recording-notice").status_code == 200
    answered = {host: count - before[host] for host, count in logged().items()}
    assert sum(answered.values()) >= 20 and all(count >= 5 for count in answered.values()), answered
    stage(f"nginx's upstream shared 20 requests between the hosts: {answered}")


def test_a_recording_uploaded_on_one_host_downloads_on_the_other(two_hosts, accounts) -> None:
    kind, email, secret = accounts["asker"]
    patient = two_hosts.host("a")
    patient.sign_in(kind, email, secret)
    reference = patient.ask_for_recordings("I rang about my test results.")

    kind, email, secret = accounts["uploader"]
    admin = two_hosts.host("a")
    admin.sign_in(kind, email, secret)
    upload_page = f"/admin/requests/{reference}/upload"
    fields = admin.form(upload_page)
    with WAV.open("rb") as audio:
        uploaded = admin.request(
            "POST",
            f"/admin/requests/{reference}/recordings",
            referer=upload_page,
            data={"csrf_token": fields["csrf_token"], "direction": "inbound"},
            files={"recording": ("call.wav", audio, "audio/wav")},
        )
    assert uploaded.status_code == 302, uploaded.text[:2000]
    detail = admin.get(f"/admin/requests/{reference}").text
    audio_path = next(
        part.split('"')[0] for part in detail.split('src="')[1:] if part.startswith(f"/admin/requests/{reference}/")
    )
    assert admin.get(audio_path).status_code == 200, "host a cannot read the recording it stored"
    on_b = admin.on(two_hosts.host("b"))
    downloaded = on_b.get(audio_path)
    assert downloaded.status_code == 200, downloaded.status_code
    assert hashlib.sha256(downloaded.content).hexdigest() == hashlib.sha256(WAV.read_bytes()).hexdigest()
    stage(f"a recording uploaded on host a downloads whole on host b ({two_hosts.settings['RECORDING_STORE']})")
