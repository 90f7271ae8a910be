"""A real HTTP relay in front of a real Label Studio server that goes down after a given number of requests:
the server is then unreachable mid-command (the connection is dropped), as when it crashes or the network fails."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class Relay:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.budget: int | None = None  # requests still forwarded; None: all
        self.seen: list[str] = []
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                if relay.budget is not None:
                    if relay.budget <= 0:
                        self.close_connection = True
                        self.connection.close()  # no response at all: the client sees the server vanish
                        return
                    relay.budget -= 1
                relay.seen.append(f"{self.command} {self.path}")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")
                }
                r = httpx.request(self.command, relay.upstream + self.path, headers=headers, content=body, timeout=60)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
