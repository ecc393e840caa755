"""A small AMI server on loopback for tests and the ingest benchmark (``bench/ami_ingest.py``).

Speaks what pbx-sla uses: the banner, ``Login`` (checks username/secret), ``Ping``, ``Logoff`` and
canned answers for other actions (``responses``: action name → list of messages, the first being the
response). Tests push raw bytes to every client with :meth:`FakeAmi.broadcast` - including malformed
messages and bytes that are not UTF-8 - and can make it stop answering ``Ping`` (``mute``) to
simulate a half-open connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from pbx_sla.ami.connection import parse_message

BANNER = b"Asterisk Call Manager/9.0.0\r\n"


def encode(message: Mapping[str, str]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in message.items()) + "\r\n").encode("utf-8")


class FakeAmi:
    def __init__(self, username: str = "pbx-sla", secret: str = "s3cret") -> None:  # noqa: S107 - test secret
        self.username, self.secret = username, secret
        self.responses: dict[str, Sequence[Mapping[str, str]]] = {}
        self.login_attempts = 0
        self.logins = 0
        self.actions: list[dict[str, str]] = []
        self.mute = False
        self.clients: list[asyncio.StreamWriter] = []
        self.authenticated = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, port: int = 0) -> FakeAmi:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self.drop_clients()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    def drop_clients(self) -> None:
        for writer in self.clients:
            writer.transport.abort()
        self.clients.clear()

    def broadcast(self, data: bytes) -> None:
        for writer in self.clients:
            writer.write(data)

    async def drain(self) -> None:
        for writer in list(self.clients):
            await writer.drain()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        writer.write(BANNER)
        logged_in = False
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                action = parse_message(raw.decode("utf-8", "replace").rstrip("\r\n"))
                name = action.get("Action", "").lower()
                action_id = action.get("ActionID", "")
                self.actions.append({k: v for k, v in action.items() if k != "Secret"})
                if name == "login":
                    self.login_attempts += 1
                    if action.get("Username") == self.username and action.get("Secret") == self.secret:
                        logged_in = True
                        self.logins += 1
                        self.clients.append(writer)
                        writer.write(
                            encode({"Response": "Success", "ActionID": action_id, "Message": "Authentication accepted"})
                        )
                        writer.write(
                            encode({"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"})
                        )
                        self.authenticated.set()
                    else:
                        writer.write(
                            encode({"Response": "Error", "ActionID": action_id, "Message": "Authentication failed"})
                        )
                        await writer.drain()
                        writer.close()
                        return
                elif not logged_in:
                    writer.write(encode({"Response": "Error", "ActionID": action_id, "Message": "Permission denied"}))
                elif name == "ping":
                    if not self.mute:
                        writer.write(encode({"Response": "Success", "ActionID": action_id, "Ping": "Pong"}))
                elif name == "logoff":
                    writer.write(encode({"Response": "Goodbye", "ActionID": action_id}))
                    await writer.drain()
                    writer.close()
                    return
                elif action.get("Action", "") in self.responses:
                    for message in self.responses[action["Action"]]:
                        writer.write(encode({**message, "ActionID": action_id}))
                else:
                    writer.write(
                        encode({"Response": "Error", "ActionID": action_id, "Message": "Invalid/unknown command"})
                    )
                await writer.drain()
        finally:
            if writer in self.clients:
                self.clients.remove(writer)
