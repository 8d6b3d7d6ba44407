"""Example service: answers with its service name, version and container hostname.

Stands in for the 2015 design's example app: each response says which container answered,
so routing and round robin are visible with curl. Standard library only.
  GET /health  -> 200 "ok" (the health check Consul and HAProxy run)
  GET /<any>   -> 200 JSON {service, version, hostname, path, forwarded_for, forwarded_prefix}
"""
import json
import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# APP_SERVICE/APP_VERSION are set by the Pulumi program; HELLO_* override them in tests.
SERVICE = os.environ.get("HELLO_SERVICE") or os.environ.get("APP_SERVICE", "hello")
VERSION = os.environ.get("HELLO_VERSION") or os.environ.get("APP_VERSION", "")
INSTANCE = os.environ.get("HELLO_INSTANCE", socket.gethostname())
PORT = int(os.environ.get("PORT", "8080"))
BIND = os.environ.get("BIND", "0.0.0.0")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hello/1"

    def do_GET(self):
        if self.path == "/health":
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
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        # One line per request on stdout; health checks would drown everything else.
        if self.path != "/health":
            sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
            sys.stdout.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Health checkers close their connection as soon as they have the status line.
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def main():
    server = Server((BIND, PORT), Handler)
    signal.signal(signal.SIGTERM, lambda *_: (server.server_close(), sys.exit(0)))
    print("hello %s %s listening on %s:%d" % (SERVICE, VERSION, BIND, PORT), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
