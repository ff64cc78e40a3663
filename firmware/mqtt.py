"""A small asyncio MQTT 3.1.1 client: what the box needs and nothing more.

CONNECT with username/password and a retained Last Will, QoS 0/1 PUBLISH
with packet ids (PUBACKs tracked), SUBSCRIBE, PINGREQ keepalive, and a
reader task that hands every incoming PUBLISH to ``on_message`` (QoS 1
ones are PUBACKed after the callback returns). One connection per
``connect()``; the caller owns reconnecting (``MqttLink``).

Sockets are finite (lwIP: 5 TCP PCBs on rp2, 10 sockets on ESP32): every
attempt, timeout and drop closes its socket. MicroPython's
``StreamWriter.close()`` does nothing (``wait_closed()`` closes the socket)
and ``asyncio.open_connection`` leaks its socket when a ``wait_for`` times it
out, so the client opens the socket itself and ``close()`` always releases
it. The broker's address is looked up once per boot (``getaddrinfo`` blocks
the loop; an IP literal returns at once) and every wait is bounded by the
connect timeout, which config validation keeps inside the watchdog.
"""

import asyncio
import gc
import socket
import struct
import time

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82
SUBACK = 0x90
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0

EINPROGRESS = 115  # Linux and lwIP (MP_EINPROGRESS) agree
MAX_PACKET = 8192  # a downlink larger than this is refused, never allocated
CLOSE_WAIT_MS = 1000  # the polite DISCONNECT on close, at most

_ADDRS: "dict[tuple[str, int], Any]" = {}  # (host, port) -> (family, sockaddr), looked up once per boot


def resolve(host: str, port: int) -> "tuple[Any, Any]":
    """The broker's (family, address), cached: ``getaddrinfo`` blocks the loop for a name lookup."""
    key = (host, port)
    got = _ADDRS.get(key)
    if got is None:
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        got = (ai[0], ai[-1])
        _ADDRS[key] = got
    return got


class MQTTError(Exception):
    """Connection refused, closed, or a packet the client cannot accept."""


def _str(s: "str | bytes") -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _packet(kind: int, body: bytes) -> bytes:
    n = len(body)
    head = bytearray((kind,))
    while True:
        byte = n & 0x7F
        n >>= 7
        head.append(byte | 0x80 if n else byte)
        if not n:
            break
    return bytes(head) + body


def connect_packet(
    client_id: str,
    user: "str | None",
    password: "str | None",
    keepalive: int,
    will_topic: "str | None",
    will_msg: bytes,
    clean: bool,
) -> bytes:
    flags = 0x02 if clean else 0
    payload = _str(client_id)
    if will_topic:
        flags |= 0x04 | 0x08 | 0x20  # will, will QoS 1, will retain
        payload += _str(will_topic) + _str(will_msg)
    if user is not None:
        flags |= 0x80
        payload += _str(user)
    if password is not None:
        flags |= 0x40
        payload += _str(password)
    return _packet(CONNECT, _str("MQTT") + bytes((4, flags)) + struct.pack("!H", keepalive) + payload)


def publish_packet(topic: str, payload: bytes, qos: int, retain: bool, pid: int, dup: bool = False) -> bytes:
    kind = PUBLISH | (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    body = _str(topic) + (struct.pack("!H", pid) if qos else b"") + payload
    return _packet(kind, body)


def subscribe_packet(pid: int, topics: "list[str]") -> bytes:
    body = struct.pack("!H", pid)
    for t in topics:
        body += _str(t) + b"\x01"
    return _packet(SUBSCRIBE, body)


class MQTTClient:
    """One MQTT session over a socket the client opens, and always closes."""

    def __init__(
        self,
        client_id: str,
        host: str,
        port: int,
        user: "str | None" = None,
        password: "str | None" = None,
        keepalive: int = 30,
        will_topic: "str | None" = None,
        will_msg: bytes = b"offline",
        clean: bool = False,
        on_message: "Any" = None,
    ) -> None:
        self.client_id = client_id
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.will_topic = will_topic
        self.will_msg = will_msg
        self.clean = clean
        self.on_message = on_message
        self.connected = False
        self.io_timeout_ms = 5000  # any single send waits at most this long (set by connect)
        self.lookup_ms = 0  # how long the address lookup blocked the loop
        self._stream: "Any" = None
        self._pid = 0
        self._lock = asyncio.Lock()
        self._closed = asyncio.Event()
        self._tasks: "list[Any]" = []
        self._last_rx: "Any" = 0  # ticks
        self.unacked: "dict[int, Any]" = {}  # packet id -> ticks sent (broker PUBACK pending)

    def _next_pid(self) -> int:
        self._pid = self._pid % 65535 + 1
        return self._pid

    def _open(self) -> None:
        """A non-blocking socket with its connect started; closed again if anything fails."""
        t0 = time.ticks_ms()
        try:
            family, addr = resolve(self.host, self.port)
        except Exception as exc:
            raise MQTTError("cannot resolve %s: %r" % (self.host, exc))
        finally:
            self.lookup_ms = time.ticks_diff(time.ticks_ms(), t0)
        try:
            s = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:  # out of sockets (EMFILE, lwIP ENOMEM): the next attempt may find one
            raise MQTTError("no socket for %s:%d: %r" % (self.host, self.port, exc))
        try:
            s.setblocking(False)
            try:
                s.connect(addr)
            except OSError as exc:
                if exc.errno != EINPROGRESS:
                    raise
        except Exception as exc:
            s.close()
            raise MQTTError("connect to %s:%d failed: %r" % (self.host, self.port, exc))
        self._stream = asyncio.StreamReader(s)

    async def _handshake(self) -> None:
        # The CONNECT waits in the stream until the TCP connect completes (as open_connection's wait does).
        self._stream.write(
            connect_packet(
                self.client_id, self.user, self.password, self.keepalive, self.will_topic, self.will_msg, self.clean
            )
        )
        await self._stream.drain()
        kind, body = await self._read_packet()
        if kind != CONNACK or len(body) != 2 or body[1] != 0:
            raise MQTTError("connection refused (code %d)" % (body[1] if len(body) == 2 else -1))

    async def connect(self, topics: "list[str]", timeout_ms: int = 5000) -> None:
        """Open the socket, CONNECT and SUBSCRIBE within ``timeout_ms``; raise ``MQTTError`` on failure."""
        self._closed = asyncio.Event()
        self.io_timeout_ms = timeout_ms
        self._open()
        try:
            await asyncio.wait_for_ms(self._handshake(), timeout_ms)
        except BaseException as exc:  # timeout, refusal, reset, cancellation: the socket goes with it
            await self.close()
            if isinstance(exc, MQTTError) or not isinstance(exc, Exception):
                raise
            raise MQTTError("no CONNACK from %s:%d: %r" % (self.host, self.port, exc))
        self.connected = True
        self._last_rx = time.ticks_ms()
        self.unacked = {}
        self._tasks = [asyncio.create_task(self._read_loop()), asyncio.create_task(self._ping_loop())]
        if topics:
            await self._send(subscribe_packet(self._next_pid(), topics))

    async def _send(self, pkt: bytes) -> None:
        if self._stream is None:
            raise MQTTError("not connected")
        async with self._lock:
            try:
                self._stream.write(pkt)
                # a broker that stopped reading fills the socket buffer: never wait for it forever
                await asyncio.wait_for_ms(self._stream.drain(), self.io_timeout_ms)
            except Exception as exc:
                self._mark_closed()
                raise MQTTError("send failed: %r" % (exc,))

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Send one PUBLISH; return its packet id (0 for QoS 0)."""
        if not self.connected:
            raise MQTTError("not connected")
        pid = self._next_pid() if qos else 0
        if qos:
            self.unacked[pid] = time.ticks_ms()
        await self._send(publish_packet(topic, payload, qos, retain, pid))
        return pid

    async def _read_packet(self) -> "tuple[int, bytes]":
        r = self._stream
        head = await r.readexactly(1)
        n = 0
        shift = 0
        while True:
            b = (await r.readexactly(1))[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift > 21:
                raise MQTTError("bad remaining length")
        if n > MAX_PACKET:
            raise MQTTError("packet of %d bytes refused (max %d)" % (n, MAX_PACKET))
        body = await r.readexactly(n) if n else b""
        return head[0], body

    async def _read_loop(self) -> None:
        try:
            while True:
                kind, body = await self._read_packet()
                self._last_rx = time.ticks_ms()
                t = kind & 0xF0
                if t == PUBLISH:
                    await self._on_publish(kind, body)
                elif t == PUBACK and len(body) == 2:
                    self.unacked.pop(struct.unpack("!H", body)[0], None)
        except Exception:
            pass
        self._mark_closed()

    async def _on_publish(self, kind: int, body: bytes) -> None:
        qos = (kind >> 1) & 3
        tl = struct.unpack("!H", body[:2])[0]
        topic = body[2 : 2 + tl].decode()
        p = 2 + tl
        pid = 0
        if qos:
            pid = struct.unpack("!H", body[p : p + 2])[0]
            p += 2
        if self.on_message is not None:
            self.on_message(topic, body[p:])
        if qos == 1:
            await self._send(_packet(PUBACK, struct.pack("!H", pid)))

    async def _ping_loop(self) -> None:
        period = max(1, self.keepalive // 2) * 1000
        while self.connected:
            await asyncio.sleep_ms(period)
            if not self.connected:
                break
            if time.ticks_diff(time.ticks_ms(), self._last_rx) > self.keepalive * 1500:
                self._mark_closed()  # broker silent for 1.5 keepalives: the link is dead
                break
            try:
                await self._send(_packet(PINGREQ, b""))
            except MQTTError:
                break

    def _mark_closed(self) -> None:
        """The connection is over; ``close()`` (always awaited by the owner) releases the socket."""
        self.connected = False
        self._closed.set()

    async def wait_closed(self) -> None:
        """Return when the connection has dropped."""
        await self._closed.wait()

    async def close(self) -> None:
        """DISCONNECT if connected (the Will is then not published), stop the tasks, close the socket."""
        if self.connected:
            try:
                await asyncio.wait_for_ms(self._send(_packet(DISCONNECT, b"")), CLOSE_WAIT_MS)
            except Exception:
                pass
        self._mark_closed()
        me = asyncio.current_task()
        for t in self._tasks:
            if t is not me:
                t.cancel()  # first: a task still polling the socket would outlive it
        self._tasks = []
        stream = self._stream
        self._stream = None
        if stream is not None:
            try:
                await stream.wait_closed()  # MicroPython's Stream.close() is a no-op: this closes the socket
            except Exception:
                pass


class MqttLink:
    """The box's MQTT transport: connect, resubscribe, status, reconnect with jittered backoff."""

    def __init__(self, cfg: "dict[str, Any]") -> None:
        from protocol import topics

        d = cfg["device_id"]
        self.cfg = cfg
        self.up_topic = topics.uplink(d)
        self.status_topic = topics.status(d)
        self.fw_topic = topics.firmware(d)
        self.fw_state_topic = topics.firmware_state(d)
        self.downlinks = [topics.ack(d), topics.config(d), topics.command(d), self.fw_topic]
        self.online = False
        self.connects = 0  # sessions established
        self.attempts = 0  # connect attempts, failed ones included
        self.client: "MQTTClient | None" = None

    async def send_event(self, payload: bytes) -> bool:
        c = self.client
        if c is None or not c.connected:
            return False
        await c.publish(self.up_topic, payload, 1, False)
        return True

    async def send_status(self, payload: bytes) -> None:
        c = self.client
        if c is not None and c.connected:
            await c.publish(self.status_topic, payload, 1, True)

    async def send_fw(self, payload: bytes) -> None:
        c = self.client
        if c is not None and c.connected:
            await c.publish(self.fw_state_topic, payload, 1, True)

    def _downlink(self, app: "Any", topic: str, payload: bytes) -> None:
        try:
            if topic == self.fw_topic:
                app.on_fw(payload)
            else:
                app.on_downlink(payload)
        except MemoryError:
            # dropped: an ack comes again after the resend, a retained config at the next connect
            gc.collect()
            app.report("MemoryError on a downlink: dropped")

    def _client(self, app: "Any") -> MQTTClient:
        cfg = self.cfg
        return MQTTClient(
            cfg["device_id"],
            cfg["broker_host"],
            cfg["broker_port"],
            cfg["broker_user"],
            cfg["broker_password"],
            cfg["keepalive_s"],
            self.status_topic,
            b"offline",
            False,
            lambda topic, payload: self._downlink(app, topic, payload),
        )

    async def _session(self, app: "Any") -> bool:
        """One connect attempt and, if it succeeds, the session until it drops. True if it connected."""
        ntp = getattr(app.board, "ntp_ms", None)
        if ntp is not None and app.clock.source in (None, "ack"):
            wall = ntp()
            if wall is not None:
                app.clock.set_wall(wall, "ntp")
        app.beats["link"] = time.ticks_ms()  # each step below is bounded on its own: NTP, connect, first publish
        c = self._client(app)
        self.attempts += 1
        try:
            return await self._run_session(app, c)
        finally:  # whatever ended the attempt, its socket goes with it
            self.online = False
            self.client = None
            await c.close()

    async def _run_session(self, app: "Any", c: MQTTClient) -> bool:
        connected = False
        try:
            await c.connect(self.downlinks, self.cfg["connect_timeout_ms"])
            app.beats["link"] = time.ticks_ms()
            if c.lookup_ms > 1000:
                app.report("DNS lookup of %s took %d ms: give an IP address" % (c.host, c.lookup_ms))
            connected = True
            self.client = c
            self.online = True
            self.connects += 1
            try:
                status = app.status_message()
            except MemoryError:
                gc.collect()
                app.report("MemoryError: status not sent")
            else:
                await c.publish(self.status_topic, status, 1, True)
            app.on_connected()
            while c.connected:
                app.beats["link"] = time.ticks_ms()
                try:
                    await asyncio.wait_for_ms(c.wait_closed(), 2000)
                except asyncio.TimeoutError:
                    pass
            app.report("broker connection lost")
        except MQTTError as exc:
            app.report(str(exc))
        except MemoryError:
            gc.collect()
            app.report("MemoryError in the link: reconnecting")
        return connected

    async def run(self, app: "Any") -> None:
        import random

        floor = max(1, min(500, self.cfg["backoff_max_ms"]))
        backoff = floor
        board = app.board
        while True:
            app.beats["link"] = time.ticks_ms()
            await board.network_up()
            app.beats["link"] = time.ticks_ms()
            radio = getattr(board, "online", None)
            if radio is not None and not radio():
                app.report("Wi-Fi not joined")
            elif await self._session(app):
                backoff = floor
            # jitter: wait between half and all of the backoff, so a fleet does not reconnect in step
            wait = backoff // 2 + random.getrandbits(16) % (backoff // 2 + 1)
            backoff = min(backoff * 2, self.cfg["backoff_max_ms"])
            slept = 0
            while slept < wait:
                await asyncio.sleep_ms(min(500, wait - slept))
                slept += 500
                app.beats["link"] = time.ticks_ms()
