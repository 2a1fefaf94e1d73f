"""A loopback JWKS server the tests control: what each path serves, how slowly, whether the
server is up at all, and how many requests each path has seen.

Every path is its own endpoint (one per client under test), so tests sharing a server stay
independent. The server listens on 127.0.0.1 only, on a port chosen at run time.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

# "10 MB": above Keycloak's default max-consumed-response-size (10,000,000 bytes) and our
# default maxResponseSize (1 MiB).
OVERSIZED_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes
    # Seconds to wait before answering (cut short when the endpoint is reprogrammed).
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    # Sent with Transfer-Encoding: chunked (HTTP/1.1, no Content-Length), in chunks this big.
    chunk_size: int = 0
    # The headers at once, then the body a piece at a time over this many seconds (a server
    # that passes the connect timeout and never finishes inside the total one).
    drip_seconds: float = 0.0


def jwks_response(jwks: dict[str, Any]) -> Response:
    return Response(200, "application/json", json.dumps(jwks).encode())


def oversized_jwks_response(jwks: dict[str, Any], size: int = OVERSIZED_BYTES) -> Response:
    """A valid JWKS padded with whitespace to `size` bytes: only a size cap can refuse it."""
    document = json.dumps(jwks).encode()
    assert document.endswith(b"}")
    padding = max(0, size - len(document))
    return Response(200, "application/json", document[:-1] + b" " * padding + b"}")


def padded_jwks_response(jwks: dict[str, Any], size: int, chunk_size: int = 64 * 1024) -> Response:
    """A valid JWKS of exactly `size` bytes, sent chunked: whether it is accepted depends on the
    size cap alone, which cannot be judged from a Content-Length."""
    document = oversized_jwks_response(jwks, size).body
    assert len(document) == size, (len(document), size)
    return Response(200, "application/json", document, chunk_size=chunk_size)


def dripping_jwks_response(jwks: dict[str, Any], seconds: float) -> Response:
    return Response(200, "application/json", json.dumps(jwks).encode(), drip_seconds=seconds)


def malformed_jwks_response() -> Response:
    """JSON cut off in the middle of a key, with a JSON content type and status 200."""
    return Response(200, "application/json", b'{"keys": [{"kty": "RSA", "kid": "cut", "n": "0vx7ag')


def unavailable_response() -> Response:
    return Response(503, "text/plain", b"down for maintenance")


def redirect_response(location: str) -> Response:
    return Response(302, "text/plain", b"moved", headers=(("Location", location),))


def html_response() -> Response:
    """What a misconfigured URL typically returns: a web page, with status 200."""
    page = b"<!DOCTYPE html><html><head><title>Welcome</title></head><body>Hello</body></html>"
    return Response(200, "text/html; charset=utf-8", page)


class JwksEndpoint:
    """One path of the server: what it answers and how many requests reached it."""

    def __init__(self, server: "JwksServer", path: str) -> None:
        self._server = server
        self.path = path
        self._lock = threading.Lock()
        self._response = jwks_response({"keys": []})
        # When set, each request gets the next of these in turn (a flapping endpoint).
        self._cycle: tuple[Response, ...] = ()
        self._requests = 0
        self._last_request: Optional[float] = None
        # Set whenever the endpoint is reprogrammed, so that a slow answer in progress ends.
        self._reprogrammed = threading.Event()

    @property
    def url(self) -> str:
        return f"{self._server.base_url}{self.path}"

    @property
    def requests(self) -> int:
        """GET requests received (counted on arrival, so slow and failed answers count)."""
        with self._lock:
            return self._requests

    @property
    def last_request(self) -> Optional[float]:
        """time.monotonic() of the last request received, None before the first."""
        with self._lock:
            return self._last_request

    def serve(self, response: Response) -> None:
        with self._lock:
            self._response = response
            self._cycle = ()
            previous, self._reprogrammed = self._reprogrammed, threading.Event()
        previous.set()

    def serve_keys(self, jwks: dict[str, Any]) -> None:
        self.serve(jwks_response(jwks))

    def serve_in_turn(self, *responses: Response) -> None:
        """Request n gets responses[n % len(responses)], counting from now."""
        self.serve(responses[0])
        with self._lock:
            self._cycle = responses

    def _arrived(self) -> tuple[Response, threading.Event]:
        with self._lock:
            self._requests += 1
            self._last_request = time.monotonic()
            if self._cycle:
                self._response = self._cycle[0]
                self._cycle = self._cycle[1:] + self._cycle[:1]
            return self._response, self._reprogrammed


class _Handler(BaseHTTPRequestHandler):
    server: "_HttpServer"
    # HTTP/1.0: one request per connection, so that going down leaves no kept-alive connection.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        endpoint = self.server.owner.endpoint_at(self.path.split("?", 1)[0])
        if endpoint is None:
            self._answer(Response(404, "text/plain", b"no such endpoint"))
            return
        response, reprogrammed = endpoint._arrived()
        if response.delay > 0 and reprogrammed.wait(response.delay):
            # Reprogrammed while waiting: the test moved on, give up on this answer.
            self.close_connection = True
            return
        if response.chunk_size:
            self._answer_chunked(response)
        elif response.drip_seconds:
            self._answer_dripping(response, reprogrammed)
        else:
            self._answer(response)

    def _answer_chunked(self, response: Response) -> None:
        body = response.body
        head = (
            f"HTTP/1.1 {response.status} OK\r\nContent-Type: {response.content_type}\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n"
        )
        try:
            self.wfile.write(head.encode())
            for start in range(0, len(body), response.chunk_size):
                chunk = body[start:start + response.chunk_size]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _answer_dripping(self, response: Response, reprogrammed: threading.Event) -> None:
        pieces = 20
        step = max(1, len(response.body) // pieces)
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.flush()
            for start in range(0, len(response.body), step):
                if reprogrammed.wait(response.drip_seconds / pieces):
                    break
                self.wfile.write(response.body[start:start + step])
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _answer(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (timeout or size cap): that is what some tests provoke.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        self.server.owner.record(f"{self.address_string()} {format % args}")


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: "JwksServer") -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class JwksServer:
    """A threaded HTTP server on 127.0.0.1 (or another loopback `host`) serving programmable
    JWKS endpoints."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._lock = threading.Lock()
        self._endpoints: dict[str, JwksEndpoint] = {}
        self._log: list[str] = []
        self._host = host
        self._httpd: Optional[_HttpServer] = _HttpServer((host, 0), self)
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://{host}:{self.port}"
        self._thread = self._serve(self._httpd)

    @staticmethod
    def _serve(httpd: _HttpServer) -> threading.Thread:
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        thread.start()
        return thread

    def endpoint(self, name: str) -> JwksEndpoint:
        """A new endpoint at /jwks/<name> (names must be unique per server)."""
        path = f"/jwks/{name}"
        with self._lock:
            if path in self._endpoints:
                raise ValueError(f"endpoint {path} exists already")
            self._endpoints[path] = JwksEndpoint(self, path)
            return self._endpoints[path]

    def endpoint_at(self, path: str) -> Optional[JwksEndpoint]:
        with self._lock:
            return self._endpoints.get(path)

    def record(self, line: str) -> None:
        with self._lock:
            self._log.append(line)

    def log_tail(self, lines: int = 40) -> str:
        with self._lock:
            return "\n".join(self._log[-lines:])

    @property
    def is_up(self) -> bool:
        return self._httpd is not None

    def go_down(self) -> None:
        """Stops listening: connections to the port are refused until `come_up`."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
        self._httpd = None

    def come_up(self) -> None:
        """Listens again on the same port."""
        if self._httpd is not None:
            return
        self._httpd = _HttpServer((self._host, self.port), self)
        self._thread = self._serve(self._httpd)

    def stop(self) -> None:
        with self._lock:
            endpoints = list(self._endpoints.values())
        for endpoint in endpoints:
            endpoint.serve(jwks_response({"keys": []}))  # ends slow answers in progress
        self.go_down()
