"""A private nginx for the benchmarks: its own prefix and config under a
temp dir, 127.0.0.1 only, one worker, a `return 200` location. Debian's
nginx-light is enough. Not a test: bench/ scripts import it."""
import os
import shutil
import socket
import subprocess
import tempfile
import time

CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Nginx:
    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix='readyd-bench-nginx-')
        self.port = free_port()
        conf = os.path.join(self.tmp, 'nginx.conf')
        with open(conf, 'w') as f:
            f.write(CONF.format(tmp=self.tmp, port=self.port))
        nginx = shutil.which('nginx') or '/usr/sbin/nginx'
        self.proc = subprocess.Popen([nginx, '-p', self.tmp, '-c', conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(('127.0.0.1', self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError('nginx did not start; see ' + self.tmp)
        self.url = 'http://127.0.0.1:%d/' % self.port
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
