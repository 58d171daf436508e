#!/usr/bin/env python3
"""The baseline webhook endpoint: for every POST, run motd_baseline.py in a
subprocess and answer when it is done, as a site's small http.server hook
does.

usage: webhook_server.py PORT URL CLUSTERS_JSON OUT_DIR
Every POST is counted; GET /count answers how many runs finished.
"""
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "motd_baseline.py")
PORT, URL, CLUSTERS, OUT = sys.argv[1:5]
RUNS = 0


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        global RUNS
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        result = subprocess.run([sys.executable, SCRIPT, URL, CLUSTERS, OUT])
        RUNS += 1
        self.send_response(200 if result.returncode == 0 else 500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        body = str(RUNS).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(PORT)), Hook).serve_forever()
