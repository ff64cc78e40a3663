"""Serial sources: one per configured port, frames in, ack frames out on the same port.

Uses ``serial_asyncio_fast`` (pyserial's asyncio transport, maintained fork
of pyserial-asyncio): the port's file descriptor is watched by the loop
itself, so no thread is needed. A port that is missing or disappears (USB
unplugged, the window PC's adapter reset) is retried with backoff; the
partial line in flight is dropped with the old decoder.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import serial
import serial_asyncio_fast

from collector.clock import now_ms
from collector.ingest.pipeline import Pipeline
from collector.ingest.settings import SerialConfig
from collector.store import Rejection
from protocol.framing import FrameDecoder, encode_frame

log = logging.getLogger("evalbox.serial")

BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 10.0


class _LineProtocol(asyncio.Protocol):
    def __init__(self, source: SerialSource) -> None:
        self.source = source
        self.lost = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.source.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()


class SerialSource:
    """One serial port; ``run(until)`` keeps it open, reopening it when it vanishes."""

    def __init__(self, cfg: SerialConfig, pipeline: Pipeline) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.name = f"serial:{cfg.port}"
        self.decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.opens = 0
        pipeline.metrics.sources[self.name] = False

    def feed(self, data: bytes) -> None:
        before = dict(self.decoder.counts)
        frames = self.decoder.feed(data)
        now = None
        for payload in frames:
            self.pipeline.submit(self, self.cfg.port, payload)
        if self.decoder.counts != before:
            m = self.pipeline.metrics
            fresh = 0
            for reason, n in self.decoder.counts.items():
                delta = n - before.get(reason, 0)
                if delta:
                    m.serial_skipped[reason] = m.serial_skipped.get(reason, 0) + delta
                    if reason != "empty":
                        fresh += delta
            # Kept in the store's rejected table too (reason frame_*), a sample of the raw line each.
            for reason, raw in self.decoder.skipped[-fresh:] if fresh else []:
                now = now or now_ms()
                self.pipeline.reject(Rejection(now, f"frame_{reason}", "serial", self.cfg.port, reason, raw))

    def settle(self, tokens: list[Any]) -> None:
        """Nothing to release on a serial line: the box resends until it sees the ack."""

    def send(self, device_id: str, kind: str, wire: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(wire))

    async def run(self, until: asyncio.Event) -> None:
        delay = BACKOFF_FIRST_S
        loop = asyncio.get_running_loop()
        stopping = asyncio.create_task(until.wait())
        warned = False
        try:
            while not until.is_set():
                proto = _LineProtocol(self)

                def factory(p: _LineProtocol = proto) -> _LineProtocol:
                    return p

                try:
                    transport, _ = await serial_asyncio_fast.create_serial_connection(
                        loop, factory, self.cfg.port, baudrate=self.cfg.baud
                    )
                except (serial.SerialException, OSError) as exc:
                    if not warned:
                        log.warning(
                            "serial port %s cannot be opened (%s); retrying / 串口无法打开，稍后重试",
                            self.cfg.port,
                            exc,
                        )
                        warned = True
                    await asyncio.wait((stopping,), timeout=delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, BACKOFF_MAX_S)
                    continue
                warned = False
                delay = BACKOFF_FIRST_S
                self.opens += 1
                self.decoder = FrameDecoder()
                self.transport = transport
                self.pipeline.metrics.sources[self.name] = True
                log.info("serial port %s open", self.cfg.port)
                if self.cfg.device is not None and self.cfg.device in self.pipeline.devices:
                    self.pipeline.route(self.pipeline.devices[self.cfg.device], self)
                lost = asyncio.create_task(proto.lost.wait())
                await asyncio.wait((lost, stopping), return_when=asyncio.FIRST_COMPLETED)
                lost.cancel()
                self.pipeline.metrics.sources[self.name] = False
                if not until.is_set():
                    log.warning("serial port %s lost; reopening / 串口断开，重新打开中", self.cfg.port)
                    transport.close()
                    self.transport = None
                    await asyncio.wait((stopping,), timeout=BACKOFF_FIRST_S)
                else:
                    transport.close()
                    self.transport = None
        finally:
            stopping.cancel()
            if self.transport is not None:
                self.transport.close()
                self.transport = None
