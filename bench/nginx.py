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
{http_extra}
    server {{
        listen 127.0.0.1:{port};
{locations}
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
    """Subclasses change what is served by overriding locations() (and
    http_extra); the default answers `ok` to everything."""

    http_extra = ''

    def locations(self, tmp):
        return '        location / { return 200 "ok\\n"; }'

    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix='readyd-bench-nginx-')
        # Run as root, nginx's worker drops to an unprivileged user that
        # must be able to read what is served from here.
        os.chmod(self.tmp, 0o755)
        self.port = free_port()
        conf = os.path.join(self.tmp, 'nginx.conf')
        with open(conf, 'w') as f:
            f.write(CONF.format(tmp=self.tmp, port=self.port, http_extra=self.http_extra,
                                locations=self.locations(self.tmp)))
        nginx = shutil.which('nginx') or '/usr/sbin/nginx'
        with open(os.path.join(self.tmp, 'stderr'), 'wb') as err:
            self.proc = subprocess.Popen([nginx, '-p', self.tmp, '-c', conf],
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(('127.0.0.1', self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        else:
            with open(os.path.join(self.tmp, 'stderr'), errors='replace') as f:
                why = f.read().strip()
            self.__exit__()
            raise RuntimeError('nginx did not start: ' + why)
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
