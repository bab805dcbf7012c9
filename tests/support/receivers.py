"""Real local receivers for notification tests: an HTTP webhook receiver (``http.server`` in a thread) and
an SMTP server (``aiosmtpd``), both on random free ports of 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    at: float  # time.monotonic()
    wall: float = 0.0  # time.time()


@dataclass
class WebhookReceiver:
    url: str
    status: int = 200  # answer with this (500: a failing receiver)
    delay: float = 0.0  # seconds before answering (a slow receiver)
    received: list[Received] = field(default_factory=list)
    requests: int = 0

    def wait(self, n: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.received)

    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.received]


@contextmanager
def webhook_receiver(path: str = "/hook/s3cr3t-token", status: int = 200, delay: float = 0.0
                     ) -> Iterator[WebhookReceiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    receiver = WebhookReceiver(f"http://127.0.0.1:{server.server_port}{path}", status, delay)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            receiver.requests += 1
            if receiver.delay:
                time.sleep(receiver.delay)
            if receiver.status < 300:
                receiver.received.append(Received(self.path, json.loads(body), time.monotonic(), time.time()))
            self.send_response(receiver.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class SmtpSink:
    port: int
    messages: list[Any] = field(default_factory=list)  # email.message.Message
    logins: list[tuple[str, str]] = field(default_factory=list)

    def wait(self, n: int, timeout: float = 10.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)


@contextmanager
def smtp_server(password: str | None = None) -> Iterator[SmtpSink]:
    """A local SMTP server; with ``password``, it requires AUTH (accepted over plain text for the test)."""
    from email import message_from_bytes

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    sink = SmtpSink(free_port())

    class Handler:
        async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
            sink.messages.append(message_from_bytes(envelope.original_content or envelope.content))
            return "250 OK"

    def authenticator(_server: Any, _session: Any, _envelope: Any, _mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            sink.logins.append((auth_data.login.decode(), auth_data.password.decode()))
            return AuthResult(success=auth_data.password.decode() == password)
        return AuthResult(success=False)

    kwargs: dict[str, Any] = {"authenticator": authenticator, "auth_require_tls": False,
                              "auth_required": True} if password is not None else {}
    controller = Controller(Handler(), hostname="127.0.0.1", port=sink.port, **kwargs)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
