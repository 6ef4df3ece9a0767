"""The box's local HTTP endpoint: /decision and /last (for the till), /healthz, /metrics (Prometheus), and
/setup, the field engineer's live camera check (setup_view.py).

/decision answers for the buyer in front of the camera now (or `no_buyer`); /last is the newest
decision made, with its `ts`, so a till can tell a fresh answer from a stale one.

Bound to 127.0.0.1 by default; with a token, every request needs
`Authorization: Bearer TOKEN` (the /setup page and its image: `?token=TOKEN`, as a browser cannot set
the header on an image). It serves decisions and counters; the only image is /setup's live frame,
encoded from memory on request and never stored.
"""
from __future__ import annotations

import errno
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from urllib.parse import parse_qs

from .errors import UsageError
from .pipeline import BoxPipeline
from .setup_view import PAGE, assess, frame_jpeg


#: Seconds a connection may take to send its request: a till asks and reads in milliseconds on loopback.
REQUEST_TIMEOUT_S = 10.0


def make_server(pipeline: BoxPipeline | None, host: str = "127.0.0.1", port: int = 8765,
                token: str | None = None) -> ThreadingHTTPServer:
    """Bind now (a taken port is a UsageError before anything else starts); `server.pipeline` may be
    set later: until then every endpoint answers 503 "starting"."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "agegate"
        # A client that connects and sends nothing (or half a request) gives its thread back after this long;
        # without it, each such connection held a thread of the box for good.
        timeout = REQUEST_TIMEOUT_S

        def log_message(self, *args) -> None:  # quiet: the box logs decisions, not requests
            pass

        def _send(self, code: int, body: str, ctype: str = "application/json") -> None:
            self._send_bytes(code, body.encode(), ctype)

        def _send_bytes(self, code: int, data: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")  # set-up images must not land in a browser cache
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self, path: str, query: str) -> bool:
            if not token:
                return True
            got = self.headers.get("Authorization", "")
            if hmac.compare_digest(got.encode(), f"Bearer {token}".encode()):
                return True
            # A browser cannot set a header on <img>: the set-up page passes the token in its URL.
            given = parse_qs(query).get("token", [""])[0]
            return path.startswith("/setup") and hmac.compare_digest(given.encode(), token.encode())

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path, _, query = self.path.partition("?")
            if not self._authorized(path, query):
                self._send(401, json.dumps({"error": "missing or wrong bearer token"}))
                return
            pipeline = self.server.pipeline
            if pipeline is None:
                self._send(503, json.dumps({"status": "starting"}))
            elif path == "/setup":
                self._send(200, PAGE, "text/html; charset=utf-8")
            elif path == "/setup/status":
                with pipeline.lock:
                    status = assess(pipeline)
                self._send(200, json.dumps(status.to_json()))
            elif path == "/setup/frame.jpg":
                with pipeline.lock:
                    jpg = frame_jpeg(pipeline)
                if jpg is None:
                    self._send(404, json.dumps({"error": "no frame yet"}))
                else:
                    self._send_bytes(200, jpg, "image/jpeg")
            elif path == "/healthz":
                events = pipeline.events
                h = pipeline.metrics.health(pipeline.options.latency_budget_ms, events.error if events else None)
                h["model"] = str(pipeline.model.path)
                h["model_label"] = pipeline.model.label  # which model it runs: doctor compares it with the file
                self._send(200 if h["status"] == "ok" else 503, json.dumps(h))
            elif path == "/decision":  # the till asks when an age-restricted item is scanned
                self._send(200, json.dumps(pipeline.current()))
            elif path == "/last":
                self._send(200, json.dumps(pipeline.last_decision()))
            elif path == "/metrics":
                self._send(200, pipeline.metrics.prometheus(pipeline.model.label), "text/plain; version=0.0.4")
            else:
                self._send(404, json.dumps({"error": f"no endpoint {path}; try /decision, /last, /healthz, /metrics, /setup"}))

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        why = {errno.EADDRINUSE: "another program (or another agegate) holds it: choose another --port / api.port",
               errno.EACCES: "ports under 1024 need root or CAP_NET_BIND_SERVICE: choose a port above 1024",
               errno.EADDRNOTAVAIL: f"no network interface of this box has the address {host}: use one it has "
                                    f"(`ip addr`), 127.0.0.1, or 0.0.0.0 for all (with api.token)"}
        raise UsageError(f"cannot serve the HTTP endpoint on {host}:{port} ({e.strerror or e}); "
                         + why.get(e.errno, "check --host / api.host and --port / api.port")
                         + ", or --no-api") from e
    server.pipeline = pipeline
    return server


def serve_in_background(server: ThreadingHTTPServer) -> threading.Thread:
    t = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    t.start()
    return t
