"""The MQTT source: paho-mqtt 2.x driven by the asyncio loop, PUBACK only after commit.

paho runs without its own thread: its socket callbacks register the socket
with the loop (``add_reader``/``add_writer`` → ``loop_read``/``loop_write``),
and a small task calls ``loop_misc`` for keepalive, as paho's
``examples/loop_asyncio.py`` does. The session is persistent (fixed client
id, ``clean_session=False``) and ``manual_ack=True``: the broker keeps every
message we have not PUBACKed and sends it again after a reconnect or a crash,
so a message is released only once the pipeline has committed it.

``[mqtt] clean_session = true`` gives that up on purpose, for collectors in a
shared group: the broker then keeps no queue for a collector that is down
and hands new presses to the live ones at once; what the dead one held
unacked is sent again by the boxes (they keep every press until its ack).

With ``[mqtt] shared_group`` the source first checks that the broker really
shares: it subscribes ``$share/<group>/evalbox/_probe/<nonce>``, publishes one
probe there and waits for it (``probe_timeout_s``). NATS's MQTT and RabbitMQ's
MQTT plugin grant such a subscription and then deliver nothing; the collector
then refuses to start (``SharedSubscriptionError``, exit 2) instead of
running deaf. Only after the probe arrives are the real filters subscribed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.errors import ConfigError
from collector.ingest.pipeline import Pipeline
from collector.ingest.settings import MqttConfig
from collector.store import Device
from protocol import topics

log = logging.getLogger("evalbox.mqtt")

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


class SharedSubscriptionError(ConfigError):
    """``[mqtt] shared_group`` is set, but the broker does not deliver to a shared subscription."""


class MqttSource:
    """One persistent MQTT session; ``run(until)`` connects, reconnects with jittered backoff, and disconnects."""

    name = "mqtt"

    def __init__(self, cfg: MqttConfig, pipeline: Pipeline) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.loop = asyncio.get_running_loop()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            clean_session=cfg.clean_session,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        client.max_inflight_messages_set(1000)  # our outgoing acks/configs
        client.max_queued_messages_set(0)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls:
            client.tls_set(ca_certs=cfg.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        self.client = client
        self._misc: asyncio.Task[None] | None = None
        self._down = asyncio.Event()
        self._up = asyncio.Event()
        self._configs_sent = False
        self._shared_ok = not cfg.shared_group  # nothing to check without a shared group
        self._probe_topic = topics.probe(f"{cfg.client_id}-{random.getrandbits(48):012x}")
        self._probe_got: asyncio.Future[None] | None = None
        self._probe_mid: int | None = None
        self._probe_refused = False
        self.connects = 0
        # firmware messages for boxes on this collector's serial lines: topic -> the line's send
        self._fw_relay: dict[str, Callable[[bytes], None]] = {}
        pipeline.on_new_devices.append(self.publish_configs)
        pipeline.metrics.sources[self.name] = False

    # ---- paho's socket callbacks: the loop drives the socket ----

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.add_reader(sock, client.loop_read)
        self._misc = self.loop.create_task(self._misc_loop())

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.remove_reader(sock)
        self.loop.remove_writer(sock)
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.add_writer(sock, client.loop_write)

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.remove_writer(sock)

    async def _misc_loop(self) -> None:
        while self.client.loop_misc() == mqtt.MQTT_ERR_SUCCESS:
            await asyncio.sleep(1)

    # ---- protocol callbacks ----

    def _filters(self) -> list[tuple[str, int]]:
        group = self.cfg.shared_group
        prefix = f"$share/{group}/" if group else ""
        return [
            (prefix + topics.all_uplinks(), 1),
            (prefix + topics.all_status(), 1),
            (prefix + topics.all_firmware_state(), 1),  # fws: recorded, a trial acked (collector/fleet/watch.py)
            *((topic, 1) for topic in sorted(self._fw_relay)),  # not shared: this collector holds those lines
        ]

    def relay_firmware(self, device_id: str, send: Callable[[bytes], None]) -> None:
        """Hand the firmware messages a rollout publishes for ``device_id`` (a box on one of this collector's
        serial lines) to ``send``; ``publish_firmware_state`` carries the box's answers the other way."""
        self._fw_relay[topics.firmware(device_id)] = send

    def publish_firmware_state(self, device_id: str, wire: bytes) -> None:
        """A serial box's signed ``fws`` on its firmware state topic (retained), where a rollout listens."""
        self.client.publish(topics.firmware_state(device_id), wire, qos=1, retain=True)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            log.error("MQTT broker %s:%d refused the connection: %s / 代理拒绝连接", self.cfg.host, self.cfg.port, rc)
            return
        self.connects += 1
        if self._shared_ok:
            client.subscribe(self._filters())  # on every connect: the broker may have lost the session
        self.pipeline.metrics.sources[self.name] = True
        log.info("MQTT connected to %s:%d (session present: %s)", self.cfg.host, self.cfg.port, flags.session_present)
        self._up.set()
        if not self._configs_sent:
            self._configs_sent = True
            self.publish_configs(list(self.pipeline.devices.values()))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, codes: Any, props: Any = None) -> None:
        failed = [c for c in codes if c.is_failure]
        if mid == self._probe_mid:
            self._probe_refused = bool(failed)
            if failed and self._probe_got is not None and not self._probe_got.done():
                self._probe_got.set_result(None)
            return
        if failed:
            log.error("MQTT subscription refused: %s (check the collector's ACL) / 订阅被拒绝", failed)
        else:
            log.info("MQTT subscribed to %s", ", ".join(f for f, _ in self._filters()))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        self.pipeline.metrics.sources[self.name] = False
        self._up.clear()
        self._down.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self._probe_topic:  # our own probe: not for the pipeline
            if msg.qos:
                client.ack(msg.mid, msg.qos)
            if self._probe_got is not None and not self._probe_got.done():
                self._probe_got.set_result(None)
            return
        relay = self._fw_relay.get(msg.topic)
        if relay is not None:  # an offer or chunk for a box on a serial line: the box checks it
            if msg.qos:
                client.ack(msg.mid, msg.qos)
            try:
                relay(bytes(msg.payload))
            except (OSError, ValueError):  # a frame the line cannot carry, a line gone: the sender offers again
                log.exception("relaying a firmware message on %s to its serial line failed", msg.topic)
            return
        token = (msg.mid, msg.qos) if msg.qos else None
        self.pipeline.submit(self, msg.topic, bytes(msg.payload), token, retained=bool(msg.retain))

    # ---- Source ----

    def settle(self, tokens: list[Any]) -> None:
        ack = self.client.ack
        for mid, qos in tokens:
            ack(mid, qos)

    def send(self, device_id: str, kind: str, wire: bytes) -> None:
        topic = {"ack": topics.ack, "cmd": topics.command}.get(kind, topics.config)(device_id)
        self.client.publish(topic, wire, qos=1, retain=kind == "config")

    def publish_configs(self, devices: list[Device]) -> None:
        """Publish each box's signed retained config (at start and when a box is added or changed)."""
        for dev in devices:
            self.pipeline.send_config(dev, self)

    # ---- connection management ----

    async def _connect(self) -> None:
        # paho's connect() blocks in socket.create_connection: check reachability without blocking first.
        _r, w = await asyncio.wait_for(asyncio.open_connection(self.cfg.host, self.cfg.port), 10)
        w.close()
        self._down.clear()
        # connect() re-arms host and port and reconnects; the persistent session makes it a resume.
        self.client.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2048 * 1024)

    async def run(self, until: asyncio.Event) -> None:
        """Stay connected until ``until`` is set (the pipeline has drained); then disconnect cleanly."""
        delay = BACKOFF_FIRST_S
        stopping = asyncio.create_task(until.wait())
        try:
            while not until.is_set():
                try:
                    await self._connect()
                except (OSError, TimeoutError, ssl.SSLError) as exc:
                    log.warning(
                        "MQTT broker %s:%d unreachable (%s); retrying in %.1f s / 无法连接MQTT代理，稍后重试",
                        self.cfg.host,
                        self.cfg.port,
                        exc,
                        delay,
                    )
                    await asyncio.wait((stopping,), timeout=delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, BACKOFF_MAX_S)
                    continue
                down = asyncio.create_task(self._down.wait())
                up = asyncio.create_task(self._up.wait())
                await asyncio.wait((up, down, stopping), return_when=asyncio.FIRST_COMPLETED)
                if up.done() and not down.done():
                    delay = BACKOFF_FIRST_S
                    if not self._shared_ok:
                        await self._check_shared()
                    await asyncio.wait((down, stopping), return_when=asyncio.FIRST_COMPLETED)
                up.cancel()
                down.cancel()
                if until.is_set():
                    break
                log.warning(
                    "MQTT connection to %s:%d lost; reconnecting / 连接断开，重连中", self.cfg.host, self.cfg.port
                )
                await asyncio.wait((stopping,), timeout=delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, BACKOFF_MAX_S)
        finally:
            stopping.cancel()
            await self.close()

    async def _check_shared(self) -> None:
        """Subscribe to the probe topic through the shared group, publish a probe, expect it back.

        Raises ``SharedSubscriptionError`` (the collector refuses to start) when the broker refuses the
        subscription or delivers nothing within ``probe_timeout_s``; subscribes the real filters when it works.
        """
        cfg = self.cfg
        shared = f"$share/{cfg.shared_group}/{self._probe_topic}"
        self._probe_got = self.loop.create_future()
        self._probe_refused = False
        _rc, self._probe_mid = self.client.subscribe(shared, qos=1)
        self.client.publish(self._probe_topic, b"evalbox shared-subscription probe", qos=1)
        try:
            await asyncio.wait_for(asyncio.shield(self._probe_got), cfg.probe_timeout_s)
            delivered = not self._probe_refused
        except TimeoutError:
            delivered = False
        if not self.client.is_connected():
            return  # lost the connection meanwhile: check again after the reconnect
        self.client.unsubscribe(shared)
        where = f"the broker at {cfg.host}:{cfg.port}"
        if not delivered:
            what = (
                f"refused the shared subscription {shared} (NATS takes $share as an ordinary topic level, outside "
                "the collector's permissions)"
                if self._probe_refused
                else f"accepted the shared subscription {shared} but delivered nothing within {cfg.probe_timeout_s:g} s"
            )
            raise SharedSubscriptionError(
                f"[mqtt] shared_group = {cfg.shared_group!r}: {what}. This broker does not support MQTT shared "
                "subscriptions ($share/...; NATS's MQTT and RabbitMQ's MQTT plugin accept them and deliver "
                "nothing). Remove shared_group and run one collector, or use a broker that shares them "
                "(mosquitto 2, EMQX); see docs/brokers.md / 该MQTT代理不支持共享订阅($share)：请删除shared_group"
                "只运行一个采集器，或改用支持共享订阅的代理(mosquitto、EMQX)"
            )
        log.info("MQTT shared subscription checked: %s delivers to $share/%s/", where, cfg.shared_group)
        self._shared_ok = True
        self.client.subscribe(self._filters())

    async def close(self) -> None:
        """Send what is queued (PUBACKs, acks), then DISCONNECT; wait a little for it to go out."""
        if self.client.is_connected():
            self._down.clear()
            self.client.disconnect()
            try:
                await asyncio.wait_for(self._down.wait(), 5)
            except TimeoutError:
                log.warning("MQTT disconnect did not complete")
        sock = self.client.socket()
        if sock is not None:
            self._on_socket_close(self.client, None, sock)
