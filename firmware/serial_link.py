"""Serial transport: protocol frames (``@payload#crc32``) over a byte stream.

Uplink: every event and status is one signed message in one frame. Downlink:
the window PC (or the collector's serial source) sends the same signed
``ack``, ``config`` and ``cmd`` messages as frames; ``cmd`` carries the PC's
invite / sign-in / sign-out. Line noise and REPL chatter are dropped by the
frame decoder. The board's stream decides about Ctrl-C: the USB CDC port
(shared with the REPL) disables it, a UART of its own leaves the REPL alone.
Unacked events are sent again after ``resend_ms`` by the app's sender.
"""

import asyncio
import gc

from protocol import FrameDecoder, encode_frame

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

IDLE_MS = 100  # an empty read (stream closed on the unix port) waits this long before the next
FW_MARK = b'"t":"fw'  # the fwo/fwc messages' type member
MAX_LINE = 2048  # longest line taken before giving up on its end (a frame is far shorter)


class BlockingLineReader:
    """Lines from a blocking byte stream (a tty, MicroPython's stdin) without blocking the loop.

    ``read(n)`` on such a stream waits for all ``n`` bytes, so a partial line
    from the PC would hold the box: wait (through asyncio) for the first byte,
    then take one byte at a time while ``poll`` says more is there.
    """

    def __init__(self, f: "Any") -> None:
        import select

        self.f = f
        self.reader = asyncio.StreamReader(f)
        self.ready = select.poll()
        self.ready.register(f, select.POLLIN)

    async def readline(self) -> bytes:
        buf = bytearray()
        while len(buf) < MAX_LINE:
            b = await self.reader.read(1)
            if not b:
                break  # end of stream
            buf.extend(b)
            while b != b"\n" and len(buf) < MAX_LINE and self.ready.poll(0):
                b = self.f.read(1)
                if not b:
                    break
                buf.extend(b)
            if not b or b == b"\n":
                break  # else the rest of the line is not there yet: wait for it
        return bytes(buf)


class SerialLink:
    """Frames over a stream the board opens (UART, USB-CDC, or the sim's pty)."""

    def __init__(self, stream: "Any") -> None:
        self.stream = stream  # .write(bytes) and async .readline()
        self.online = True  # a serial line has no session: always try, resend on timeout
        self.decoder = FrameDecoder()
        self.sent = 0

    async def _write(self, payload: bytes) -> bool:
        try:
            await self.stream.write(encode_frame(payload))
        except OSError:
            return False
        self.sent += 1
        return True

    async def send_event(self, payload: bytes) -> bool:
        return await self._write(payload)

    async def send_status(self, payload: bytes) -> None:
        await self._write(payload)

    async def send_fw(self, payload: bytes) -> None:
        await self._write(payload)

    async def run(self, app: "Any") -> None:
        try:
            await self._write(app.status_message())
        except MemoryError:
            gc.collect()
            app.report("MemoryError: first status not sent")
        while True:
            line = await self.stream.readline()
            if not line:
                await asyncio.sleep_ms(IDLE_MS)
                continue
            try:
                for payload in self.decoder.feed(line):
                    await app.keys_first()  # verifying a frame is one long step: not while a key is down
                    if FW_MARK in payload:  # a firmware offer or chunk (canonical JSON: exactly these bytes)
                        app.on_fw(payload)
                    else:
                        app.on_downlink(payload)
            except MemoryError:
                # a frame the heap could not take: dropped (an ack comes again, a config with the next status)
                self.decoder = FrameDecoder()
                gc.collect()
                app.report("MemoryError on a downlink frame: dropped")
