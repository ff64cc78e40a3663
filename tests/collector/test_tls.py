"""The collector reaches the broker over TLS (verified against the deployment's own CA) and refuses a wrong CA."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import trustme

from tests.collector.harness import (
    COLLECTOR_PASSWORD,
    COLLECTOR_USER,
    Box,
    Collector,
    broker,
    make_store,
    stored,
    wait_for,
    write_config,
)
from tests.mosquitto import free_port


def _tls_config(tmp_path: pathlib.Path, port: int, ca_file: pathlib.Path) -> pathlib.Path:
    mqtt = (
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nusername = "{COLLECTOR_USER}"\n'
        f'password = "{COLLECTOR_PASSWORD}"\nclient_id = "collector-tls"\nkeepalive = 5\n'
        f'tls = true\nca_file = "{ca_file}"\n'
    )
    return write_config(tmp_path, port=None, extra=mqtt)


def test_events_over_a_tls_listener_and_a_wrong_ca_is_refused(tmp_path: pathlib.Path) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    certs = tmp_path / "certs"
    certs.mkdir()
    ca.cert_pem.write_to_path(str(certs / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(certs / "server.pem"))
    server.private_key_pem.write_to_path(str(certs / "server.key"))
    trustme.CA().cert_pem.write_to_path(str(certs / "other-ca.pem"))
    make_store(tmp_path / "store.db", ["BOX-1"])
    mq = broker(tmp_path, ["BOX-1"])
    tls_port = free_port()
    with mq.conf.open("a") as f:  # a second listener, with TLS (the boxes keep the plain one here)
        f.write(f"listener {tls_port} 127.0.0.1\ncafile {certs / 'ca.pem'}\n"
                f"certfile {certs / 'server.pem'}\nkeyfile {certs / 'server.key'}\n")  # fmt: skip
    with mq:
        col = Collector(_tls_config(tmp_path, tls_port, certs / "ca.pem")).start()
        box = Box("BOX-1", mq.port)
        try:
            for s in range(20):
                box.publish(box.press(s))
            wait_for(lambda: len(box.acked) == 20, what="20 acks over TLS")
            assert col.terminate() == 0, col.stderr()
            assert stored(tmp_path / "store.db") == 20
        finally:
            box.close()
            col.kill()
        # A broker whose certificate the configured CA did not sign: a clear message, no events, no crash.
        wrong = tmp_path / "wrong"
        wrong.mkdir()
        proc = subprocess.Popen(
            [sys.executable, "-m", "collector.cli", "serve", "--config",
             str(_tls_config(wrong, tls_port, certs / "other-ca.pem"))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            err = ""
            deadline_lines = 0
            assert proc.stderr is not None
            while "CERTIFICATE_VERIFY_FAILED" not in err and "certificate verify failed" not in err:
                line = proc.stderr.readline()
                if not line or deadline_lines > 50:
                    break
                err += line
                deadline_lines += 1
            assert "certificate verify failed" in err.lower() or "certificate_verify_failed" in err.lower(), err
            assert "Traceback" not in err
        finally:
            proc.terminate()
            proc.wait(timeout=30)
