"""A TCP proxy in front of redis-server that can switch to answering garbage."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from typing import Any

#: What a broken Redis (or whatever answers on its port) may say, one reply per read.
GARBAGE = [
    b"\xff\xfe not RESP at all\r\n",
    b"$5\r\nhello\r\n",  # a well-formed value that is no entry of ours
    b"+OK\r\n",
    b"-ERR something odd\r\n",
    b":42\r\n",
    b"*2\r\n$7\r\nmessage\r\n",  # cut short
]


class RedisProxy:
    """Forward to 127.0.0.1:*upstream*; in ``garbage`` mode answer every read with junk."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.garbage = False
        self.replies = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"redis://127.0.0.1:{self._server.server_address[1]}/0"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def switch(self, *, garbage: bool) -> None:
        """Change mode and cut every open connection, so clients reconnect into the new one."""
        self.garbage = garbage
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _track(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._open.update(sockets)

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        try:
            if self.garbage:
                self._junk(client)
            else:
                self._forward(client)
        finally:
            with self._lock:
                self._open.discard(client)
            client.close()

    def _junk(self, client: socket.socket) -> None:
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                reply = GARBAGE[self.replies % len(GARBAGE)]
                self.replies += 1
            with contextlib.suppress(OSError):
                client.sendall(reply)

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
        except OSError:
            return
        upstream.settimeout(None)
        self._track(upstream)

        def pump(source: socket.socket, target: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    target.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (source, target):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        back.start()
        pump(client, upstream)
        back.join(5)
        with self._lock:
            self._open.discard(upstream)
        upstream.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.switch(garbage=self.garbage)

    def __enter__(self) -> RedisProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
