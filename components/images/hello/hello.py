"""Example service: answers with its service name, version and container hostname.

Stands in for the 2015 design's example app: each response says which container answered,
so routing and round robin are visible with curl. Standard library only.
  GET /health  -> 200 "ok" (the health check Consul and HAProxy run); 503 "draining" once stopping
  GET /<any>   -> 200 JSON {service, version, hostname, path, forwarded_for, forwarded_prefix}
  POST /<any>  -> the same, once the request body (Content-Length, at most 1 MiB) is read: a request
                  the gateway does not replay on another instance (docs/data-plane.md, "How it behaves")

Graceful drain (docs/services.md, "Graceful drain"), on SIGTERM (`docker stop`) or SIGINT:
  1. /health answers 503, so the gateway's checks and Consul's take the instance out of rotation;
     every other request is still served, for DRAIN_SECONDS (default 10, 0 to 3600);
  2. then it stops accepting connections, closes idle keep-alive connections, lets the requests
     in flight finish and exits 0. A second signal ends the grace period at once.
"""
import json
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# APP_SERVICE/APP_VERSION are set by the Pulumi program; HELLO_* override them in tests.
SERVICE = os.environ.get("HELLO_SERVICE") or os.environ.get("APP_SERVICE", "hello")
VERSION = os.environ.get("HELLO_VERSION") or os.environ.get("APP_VERSION", "")
INSTANCE = os.environ.get("HELLO_INSTANCE", socket.gethostname())
PORT = int(os.environ.get("PORT", "8080"))
BIND = os.environ.get("BIND", "0.0.0.0")


def drain_seconds():
    # Sized for the gateway: its checks (every 2 s, out after 2 failures) take an instance out
    # within ~2.5-4 s, Consul's check (every 5 s) within ~5.5 s; the rest is margin.
    raw = os.environ.get("DRAIN_SECONDS", "10")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        sys.exit("hello: DRAIN_SECONDS: %r is not allowed; expected seconds from 0 to 3600" % raw)
    return value


DRAIN_SECONDS = drain_seconds()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hello/1"

    def parse_request(self):
        # A request line has arrived: this connection is busy until its answer is written.
        self.server.track(self, busy=True)
        return super().parse_request()

    def handle_one_request(self):
        try:
            super().handle_one_request()
        finally:
            if self.server.stopping.is_set():
                self.close_connection = True
            self.server.track(self, busy=False)

    def setup(self):
        super().setup()
        self.server.track(self, busy=False)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.untrack(self)

    def do_POST(self):
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= 1 << 20:
            self.send_error(400, "Content-Length from 0 to 1048576 expected")
            return
        self.rfile.read(length)
        self.do_GET()

    def do_GET(self):
        status = 200
        if self.path == "/health" and self.server.draining.is_set():
            # Out of rotation (gateway and Consul checks), while every other request is served.
            status, body, ctype = 503, b"draining\n", "text/plain"
        elif self.path == "/health":
            body, ctype = b"ok\n", "text/plain"
        else:
            body = json.dumps({
                "service": SERVICE,
                "version": VERSION,
                "hostname": INSTANCE,
                "path": self.path,
                "forwarded_for": self.headers.get("X-Forwarded-For", ""),
                "forwarded_prefix": self.headers.get("X-Forwarded-Prefix", ""),
            }).encode() + b"\n"
            ctype = "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        # One line per request on stdout; health checks would drown everything else.
        if getattr(self, "path", "") != "/health":
            sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
            sys.stdout.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a burst of new connections (the gateway moving load
    # from an instance that left rotation) would overflow it, and each dropped SYN costs the
    # client a 1 s, then 3 s retransmission.
    request_queue_size = 128

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.draining = threading.Event()
        self.stopping = threading.Event()
        # Open connections (their handlers) -> whether a request is being answered on it.
        self.connections = {}
        self.changed = threading.Condition()

    def track(self, handler, busy):
        with self.changed:
            self.connections[handler] = busy
            idle_while_stopping = not busy and self.stopping.is_set()
        if idle_while_stopping:
            close_idle(handler)

    def untrack(self, handler):
        with self.changed:
            self.connections.pop(handler, None)
            self.changed.notify_all()

    def stop(self):
        """Stops accepting, closes idle connections, waits for the requests in flight."""
        self.shutdown()
        self.server_close()
        with self.changed:
            self.stopping.set()
            idle = [h for h, busy in self.connections.items() if not busy]
            busy = len(self.connections) - len(idle)
        log("stopping: no new connections; %d idle closed, %d request(s) in flight" % (len(idle), busy))
        for handler in idle:
            close_idle(handler)
        with self.changed:
            self.changed.wait_for(lambda: not self.connections)

    def handle_error(self, request, client_address):
        # Health checkers close their connection as soon as they have the status line.
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def close_idle(handler):
    # Wakes the handler waiting for a next request on a keep-alive connection: it reads EOF.
    try:
        handler.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def log(message):
    sys.stdout.write("hello: %s\n" % message)
    sys.stdout.flush()


def main():
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    # Blocked in every thread (threads inherit the mask), taken by sigwait in this one only.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    server = Server((BIND, PORT), Handler)
    threading.Thread(target=server.serve_forever, name="serve").start()
    print("hello %s %s listening on %s:%d" % (SERVICE, VERSION, BIND, PORT), flush=True)

    received = signal.sigwait(stop_signals)
    server.draining.set()
    if DRAIN_SECONDS > 0:
        log("%s: draining: /health answers 503, serving everything else for %g s" % (signal.Signals(received).name, DRAIN_SECONDS))
        if signal.sigtimedwait(stop_signals, DRAIN_SECONDS) is not None:
            log("second signal: grace period ended early")
    server.stop()
    log("stopped")
    sys.exit(0)


if __name__ == "__main__":
    main()
