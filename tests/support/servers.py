"""A real SMTP server (aiosmtpd) and a real HTTP receiver, both on free local ports, and the
settings that point Obol's mail at the SMTP server."""
from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "message": message})
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.host, inbox.port = controller.hostname, controller.port
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def mail_to_smtp(settings, smtp_server):
    """Obol's mail goes to the local SMTP server (pytest-django swaps in the in-memory backend)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = smtp_server.host, smtp_server.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.DEFAULT_FROM_EMAIL = "alerts@obol.test"
    return smtp_server


class Receiver:
    def __init__(self):
        self.requests = []
        self.status = 200


@pytest.fixture
def receiver():
    """A local HTTP server recording each POST (path, headers, raw body, JSON) and answering
    `receiver.status`."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                   "json": json.loads(body)})
            self.send_response(state.status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if state.status < 300 else b"receiver is broken")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/obol"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def dead_url():
    """A URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/hooks/obol"
