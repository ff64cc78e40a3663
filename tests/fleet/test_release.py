"""Signed firmware releases: keygen, build, and the box's streaming reader refusing every altered release.

The reader is ``firmware/release.py`` (the box's code) on CPython here and on
the real micropython in a small heap, from the release's own compiled modules.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pathlib
import re
import stat
import subprocess
import sys
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.cli import main
from collector.fleet.release import ReleaseSpec, build, check_release, keygen, load_key, pack, public_hex
from collector.fleet.transfer import BoxTransfer
from collector.fleet.tree import compile_tree, mpy_version
from firmware import release as box
from tests.conftest import ROOT, micropython_path

BUILT = "2026-12-01T00:00:00Z"


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def pub(key: Ed25519PrivateKey) -> bytes:
    return bytes.fromhex(public_hex(key))


@pytest.fixture(scope="module")
def sim_files() -> list[tuple[str, bytes]]:
    return compile_tree(ROOT, "sim")


@pytest.fixture(scope="module")
def release(
    tmp_path_factory: pytest.TempPathFactory, key: Ed25519PrivateKey, sim_files: list[tuple[str, bytes]]
) -> bytes:
    spec = ReleaseSpec(version="1.4.0", board="sim", min_version="1.2.0")
    return pack(sim_files, spec, key, mpy=mpy_version(sim_files), built=BUILT)


def _write(tmp: pathlib.Path, name: str, data: bytes) -> pathlib.Path:
    p = tmp / name
    p.write_bytes(data)
    return p


def _refusal(path: pathlib.Path, pub: bytes, **kw: Any) -> box.ReleaseError | None:
    try:
        box.verify_release(str(path), pub, box.BoxState(mpy=None, **kw))
    except box.ReleaseError as exc:
        return exc
    return None


def _regions(data: bytes) -> tuple[int, dict[str, Any]]:
    n = int.from_bytes(data[4:8], "little")
    return n, json.loads(data[72 : 72 + n])


# -- what a release holds ------------------------------------------------------------------------------


def _deploy_tree(out: pathlib.Path) -> None:
    """The tree tools/deploy_box.sh copies to a board, built by the script's own commands."""
    build_script = ROOT / "tools" / "build_box.sh"
    env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}")
    if build_script.exists():  # the script's build step, once it is a script of its own
        subprocess.run(["bash", str(build_script), str(out)], cwd=ROOT, check=True, env=env)
        return
    text = (ROOT / "tools" / "deploy_box.sh").read_text()
    start = text.index("for pkg in")
    end = text.index("\n", text.index("printf 'import firmware.main"))
    snippet = f'set -euo pipefail\nBIN="{pathlib.Path(sys.executable).parent}"\nBUILD="{out}"\n' + text[start:end]
    subprocess.run(["bash", "-c", snippet], cwd=ROOT, check=True, env=env)


def test_release_holds_exactly_what_deploy_box_installs(tmp_path: pathlib.Path, key: Ed25519PrivateKey) -> None:
    tree = tmp_path / "deploy"
    tree.mkdir()
    _deploy_tree(tree)
    deployed = {
        str(p.relative_to(tree)): p.read_bytes() for p in tree.rglob("*") if p.is_file() and p.name != "main.py"
    }
    deployed["firmware/main.py"] = (tree / "firmware" / "main.py").read_bytes()
    spec = ReleaseSpec(version="2.0.0", board="picow")
    manifest = build(ROOT, spec, key, tmp_path / "r.evr")
    data = (tmp_path / "r.evr").read_bytes()
    n = int.from_bytes(data[4:8], "little")
    body = 72 + n
    released = {}
    for f in manifest["files"]:
        released[f["path"]] = data[body : body + f["size"]]
        body += f["size"]
    assert body == len(data)
    assert sorted(released) == sorted(deployed)
    assert released == deployed  # byte for byte: mpy-cross run the same way
    assert "firmware/sim.mpy" not in released and "firmware/boards/sim.mpy" not in released
    assert "firmware/ed25519.mpy" in released and "firmware/release.mpy" in released
    assert manifest["mpy"] == 6 and manifest["board"] == "picow" and manifest["min_version"] == "0.0.0"


def test_sim_release_adds_the_simulator(sim_files: list[tuple[str, bytes]]) -> None:
    paths = [p for p, _ in sim_files]
    assert "firmware/sim.mpy" in paths and "firmware/boards/sim.mpy" in paths
    assert paths == sorted(paths)


def test_manifest_describes_every_file(release: bytes, pub: bytes, tmp_path: pathlib.Path) -> None:
    n, manifest = _regions(release)
    assert manifest["format"] == 1 and manifest["version"] == "1.4.0" and manifest["min_version"] == "1.2.0"
    assert manifest["built"] == BUILT and manifest["min_protocol"] == 1 and manifest["min_config"] == 1
    body = 72 + n
    for f in manifest["files"]:
        assert hashlib.sha256(release[body : body + f["size"]]).hexdigest() == f["sha256"]
        body += f["size"]
    checked = box.verify_release(str(_write(tmp_path, "r.evr", release)), pub, box.BoxState("sim", "1.4.0", mpy=6))
    assert [f["offset"] for f in checked["files"]][:2] == [0, manifest["files"][0]["size"]]


# -- the box refuses every altered release, with a reason ---------------------------------------------


def test_every_flipped_byte_refused_with_its_reason(release: bytes, pub: bytes, tmp_path: pathlib.Path) -> None:
    n, manifest = _regions(release)
    positions = list(range(72)) + list(range(72, 72 + n, 5)) + [72 + n - 1]
    body = 72 + n
    owner = {}
    for f in manifest["files"]:
        for pos in {body, body + f["size"] // 2, body + f["size"] - 1}:
            positions.append(pos)
            owner[pos] = f["path"]
        body += f["size"]
    assert body == len(release)
    seen: dict[str, int] = {}
    for pos in positions:
        bad = bytearray(release)
        bad[pos] ^= 0x01
        exc = _refusal(_write(tmp_path, "bad.evr", bytes(bad)), pub, board="sim")
        assert exc is not None, f"byte {pos} flipped: accepted"
        seen[exc.reason] = seen.get(exc.reason, 0) + 1
        if pos < 4:
            assert exc.reason == "bad_magic", (pos, exc)
        elif pos < 8:
            assert exc.reason in ("bad_manifest", "bad_signature", "truncated"), (pos, exc)
        elif pos < 72 + n:
            assert exc.reason == "bad_signature", (pos, exc)
        else:
            assert exc.reason == "bad_hash" and owner[pos] in exc.detail, (pos, exc)
    print(f"{len(positions)} flipped bytes refused: {seen}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_change_anywhere_refused(release: bytes, pub: bytes, tmp_path: pathlib.Path, data: st.DataObject) -> None:
    pos = data.draw(st.integers(min_value=0, max_value=len(release) - 1))
    xor = data.draw(st.integers(min_value=1, max_value=255))
    bad = bytearray(release)
    bad[pos] ^= xor
    exc = _refusal(_write(tmp_path, "any.evr", bytes(bad)), pub, board="sim")
    assert exc is not None and exc.reason in REASONS


REASONS = {
    "unreadable", "bad_magic", "truncated", "bad_key", "bad_signature", "bad_manifest", "unsupported_format",
    "wrong_board", "below_min_version", "needs_protocol", "needs_config", "mpy_mismatch", "bad_hash", "trailing_data",
}  # fmt: skip


def test_truncated_and_extended_releases_refused(release: bytes, pub: bytes, tmp_path: pathlib.Path) -> None:
    n, _ = _regions(release)
    for cut in (0, 3, 4, 7, 8, 40, 71, 72, 72 + n - 1, 72 + n, 72 + n + 10, len(release) - 1):
        exc = _refusal(_write(tmp_path, "cut.evr", release[:cut]), pub)
        assert exc is not None, cut
        assert exc.reason == ("bad_magic" if cut < 4 else "truncated"), (cut, exc)
    exc = _refusal(_write(tmp_path, "long.evr", release + b"\x00"), pub)
    assert exc is not None and exc.reason == "trailing_data"


def test_wrong_key_board_floor_and_versions_refused(
    release: bytes, pub: bytes, key: Ed25519PrivateKey, sim_files: list[tuple[str, bytes]], tmp_path: pathlib.Path
) -> None:
    path = _write(tmp_path, "r.evr", release)
    other = bytes.fromhex(public_hex(Ed25519PrivateKey.generate()))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"public_key": other}, "bad_signature"),
        ({"public_key": bytes(32)}, "bad_key"),  # a zeroed trusted key: refused, never "anything goes"
        ({"board": "picow"}, "wrong_board"),
        ({"floor": "1.4.1"}, "below_min_version"),
        ({"floor": "2.0.0"}, "below_min_version"),
        ({"protocol": 0}, "needs_protocol"),
        ({"config": 0}, "needs_config"),
    ]
    for kw, want in cases:
        args = {"board": "sim", **kw}
        exc = _refusal(path, args.pop("public_key", pub), **args)
        assert exc is not None and exc.reason == want, (kw, exc)
    exc = None
    try:
        box.verify_release(str(path), pub, box.BoxState(mpy=5))
    except box.ReleaseError as e:
        exc = e
    assert exc is not None and exc.reason == "mpy_mismatch"
    assert box.verify_release(str(path), pub, box.BoxState("sim", "1.4.0", mpy=None))["version"] == "1.4.0"
    # a release that needs a newer protocol or config than the box has
    newer = pack(sim_files, ReleaseSpec("1.5.0", "sim", min_protocol=2, min_config=2), key, mpy=6, built=BUILT)
    exc = _refusal(_write(tmp_path, "newer.evr", newer), pub)
    assert exc is not None and exc.reason == "needs_protocol"
    exc = _refusal(_write(tmp_path, "newer.evr", newer), pub, protocol=2)
    assert exc is not None and exc.reason == "needs_config"
    exc = _refusal(tmp_path / "missing.evr", pub)
    assert exc is not None and exc.reason == "unreadable"


def _signed(key: Ed25519PrivateKey, manifest: Any, bodies: bytes = b"") -> bytes:
    """A release signed by the real key around a manifest our tool would never write."""
    raw = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    head = box.MAGIC + len(raw).to_bytes(4, "little")
    return head + key.sign(box.signed_message(hashlib.sha256(head + raw).digest())) + raw + bodies


def test_signed_but_malformed_manifests_refused(key: Ed25519PrivateKey, pub: bytes, tmp_path: pathlib.Path) -> None:
    body = b"x = 1\n"
    good_file = {"path": "firmware/x.py", "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    base = {"format": 1, "version": "1.0.0", "min_version": "1.0.0", "board": "sim", "min_protocol": 1,
            "min_config": 1, "mpy": 6, "built": BUILT, "files": [good_file]}  # fmt: skip
    assert _refusal(_write(tmp_path, "ok.evr", _signed(key, base, body)), pub) is None
    cases: list[tuple[Any, str]] = [
        (b"not json", "bad_manifest"),
        (b"[1, 2]", "bad_manifest"),
        ({**base, "format": 2}, "unsupported_format"),
        ({**base, "min_version": "1.0.1"}, "bad_manifest"),
        ({**base, "version": "1.0"}, "bad_manifest"),
        ({**base, "version": "01.0.0"}, "bad_manifest"),
        ({**base, "board": "arduino"}, "bad_manifest"),
        ({**base, "files": []}, "bad_manifest"),
        ({**base, "files": [good_file, good_file]}, "bad_manifest"),
        ({**base, "files": [{**good_file, "path": "firmware/../main.py"}]}, "bad_manifest"),
        ({**base, "files": [{**good_file, "path": "/main.py"}]}, "bad_manifest"),
        ({**base, "files": [{**good_file, "path": "main.py"}]}, "bad_manifest"),
        ({**base, "files": [{**good_file, "path": "firmware/x.txt"}]}, "bad_manifest"),
        ({**base, "files": [{**good_file, "size": -1}]}, "bad_manifest"),
        ({**base, "files": [{**good_file, "sha256": "AB" * 32}]}, "bad_manifest"),
        ({**base, "files": [{**good_file, "size": len(body) + 1}]}, "truncated"),
        ({**base, "files": [{**good_file, "size": len(body) - 1}]}, "bad_hash"),
    ]
    for manifest, want in cases:
        exc = _refusal(_write(tmp_path, "m.evr", _signed(key, manifest, body)), pub)
        assert exc is not None and exc.reason == want, (manifest, exc)
    too_big = _signed(key, b" " * (box.MAX_MANIFEST + 1))
    exc = _refusal(_write(tmp_path, "big.evr", too_big), pub)
    assert exc is not None and exc.reason == "bad_manifest" and "manifest length" in exc.detail


def test_collector_check_runs_openssl_beside_the_box(release: bytes, pub: bytes, tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path, "r.evr", release)
    assert check_release(path, pub, board="sim")["version"] == "1.4.0"
    bad = bytearray(release)
    bad[10] ^= 0x20
    with pytest.raises(box.ReleaseError) as info:
        check_release(_write(tmp_path, "b.evr", bytes(bad)), pub)
    assert info.value.reason == "bad_signature"


# -- on the box: the real micropython, a small heap, the release's own compiled reader ----------------


def test_box_reader_on_micropython_in_a_small_heap(
    release: bytes, key: Ed25519PrivateKey, pub: bytes, sim_files: list[tuple[str, bytes]], tmp_path: pathlib.Path
) -> None:
    n, manifest = _regions(release)
    boxdir = tmp_path / "box"
    off = 72 + n
    for f in manifest["files"]:
        target = boxdir / f["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(release[off : off + f["size"]])
        off += f["size"]
    assert not list(boxdir.rglob("release.py"))  # the reader under test is the compiled one from the release
    # a release bigger than the whole heap: verifying it must stream
    blob = os.urandom(400_000)
    big = pack([*sim_files, ("firmware/blob.mpy", blob)], ReleaseSpec("1.4.1", "sim"), key, mpy=6, built=BUILT)
    flipped = bytearray(release)
    flipped[72 + n + 100] ^= 1
    other = ReleaseSpec("1.4.0", "picow")
    variants = {
        "good": (release, "sim", None, "ok"),
        "big": (big, "sim", "1.4.0", "ok"),
        "flipped_body": (bytes(flipped), "sim", None, "bad_hash"),
        "flipped_sig": (release[:20] + bytes([release[20] ^ 4]) + release[21:], "sim", None, "bad_signature"),
        "other_board": (pack(sim_files, other, key, mpy=6, built=BUILT), "sim", None, "wrong_board"),
        "downgrade": (release, "sim", "1.5.0", "below_min_version"),
        "truncated": (release[:-1], "sim", None, "truncated"),
        "wrong_key": (
            pack(sim_files, ReleaseSpec("1.4.0", "sim"), Ed25519PrivateKey.generate(), mpy=6, built=BUILT),
            "sim",
            None,
            "bad_signature",
        ),  # fmt: skip
    }
    body = b"x = 1\n"
    entry: dict[str, Any] = {"path": "firmware/x.py", "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    base = {"format": 1, "version": "1.4.0", "min_version": "1.0.0", "board": "sim", "min_protocol": 1,
            "min_config": 1, "mpy": 6, "built": BUILT, "files": [entry]}  # fmt: skip
    variants["signed_traversal"] = (
        _signed(key, {**base, "files": [{**entry, "path": "firmware/../main.py"}]}, body),
        "sim",
        None,
        "bad_manifest",
    )
    variants["signed_format_2"] = (_signed(key, {**base, "format": 2}, body), "sim", None, "unsupported_format")
    variants["signed_upper_hex"] = (
        _signed(key, {**base, "files": [{**entry, "sha256": entry["sha256"].upper()}]}, body), "sim", None,
        "bad_manifest",
    )  # fmt: skip
    variants["signed_minimal"] = (_signed(key, base, body), "sim", "1.4.0", "ok")
    cases = []
    for name, (data, board, floor, expect) in variants.items():
        path = _write(tmp_path, name + ".evr", data)
        cases.append({"name": name, "file": str(path), "board": board, "floor": floor, "expect": expect})
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    assert len(big) > 160 * 1024
    env = dict(os.environ, MICROPYPATH=f"{boxdir}:.frozen")
    proc = subprocess.run(
        [micropython_path(), "-X", "heapsize=160k", str(ROOT / "tests/fleet/mp_release.py"),
         str(tmp_path / "cases.json"), pub.hex()],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = proc.stdout
    print(out)
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert re.search(r"reader from .*box/firmware/release\.mpy", out), out
    for c in cases:
        assert f"case {c['name']}: {c['expect']}" in out, out
    assert out.strip().splitlines()[-1] == f"release: {len(cases) + 1} passed, 0 failed", out


# -- the command line ----------------------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def test_cli_keygen_build_verify(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    keyfile = tmp_path / "release.key"
    rc, out, _ = _cli(capsys, "firmware", "keygen", "-o", str(keyfile))
    assert rc == 0 and "公钥" in out
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    pub_hex = (tmp_path / "release.key.pub").read_text().strip()
    assert pub_hex in out and public_hex(load_key(keyfile)) == pub_hex
    rc, _, err = _cli(capsys, "firmware", "keygen", "-o", str(keyfile))
    assert rc == 2 and "never overwritten" in err and str(keyfile) in err

    evr = tmp_path / "r.evr"
    rc, out, _ = _cli(capsys, "firmware", "build", "--key", str(keyfile), "--version", "1.0.0", "--board", "esp32",
                      "--min-version", "0.9.0", "-o", str(evr))  # fmt: skip
    assert rc == 0 and "已签名" in out and "esp32" in out
    rc, out, _ = _cli(capsys, "firmware", "verify", str(evr), "--pubkey", pub_hex, "--board", "esp32")
    assert rc == 0 and "验证通过" in out and "version 版本 1.0.0" in out
    rc, out, _ = _cli(capsys, "firmware", "verify", str(evr), "--pubkey", str(tmp_path / "release.key.pub"))
    assert rc == 0
    rc, _, err = _cli(capsys, "firmware", "verify", str(evr), "--pubkey", pub_hex, "--board", "picow")
    assert rc == 1 and "wrong_board" in err and "板型不符" in err
    rc, _, err = _cli(capsys, "firmware", "verify", str(evr), "--pubkey", pub_hex, "--floor", "1.0.1")
    assert rc == 1 and "below_min_version" in err
    other = public_hex(Ed25519PrivateKey.generate())
    rc, _, err = _cli(capsys, "firmware", "verify", str(evr), "--pubkey", other)
    assert rc == 1 and "bad_signature" in err and "签名无效" in err
    rc, _, err = _cli(capsys, "firmware", "verify", str(tmp_path / "none.evr"), "--pubkey", pub_hex)
    assert rc == 1 and "unreadable" in err


def test_cli_bad_input_is_one_clear_line(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    keyfile = tmp_path / "k"
    keygen(keyfile)
    evr = str(tmp_path / "r.evr")
    build_args = ["firmware", "build", "--key", str(keyfile), "--board", "sim", "-o", evr]
    for extra, needle in (
        (["--version", "1.2"], "--version"),
        (["--version", "1.2.0", "--min-version", "v1"], "--min-version"),
        (["--version", "1.0.0", "--min-version", "1.0.1"], "min_version 1.0.1 above version 1.0.0"),
        (["--version", "1.0.0", "--source", str(tmp_path)], "not found"),
    ):
        rc, _, err = _cli(capsys, *build_args, *extra)
        assert rc == 2 and needle in err, (extra, err)
    keyfile.chmod(0o644)
    rc, _, err = _cli(capsys, *build_args, "--version", "1.0.0")
    assert rc == 2 and "chmod 600" in err
    rc, _, err = _cli(capsys, "firmware", "build", "--key", str(tmp_path / "nokey"), "--version", "1.0.0",
                      "--board", "sim", "-o", evr)  # fmt: skip
    assert rc == 2 and "nokey" in err
    (tmp_path / "notakey").write_text("hello")
    (tmp_path / "notakey").chmod(0o600)
    rc, _, err = _cli(capsys, "firmware", "build", "--key", str(tmp_path / "notakey"), "--version", "1.0.0",
                      "--board", "sim", "-o", evr)  # fmt: skip
    assert rc == 2 and "not a usable PEM" in err
    for bad in ("xyz", "00" * 31, "00" * 32):
        rc, _, err = _cli(capsys, "firmware", "verify", evr, "--pubkey", bad)
        assert rc == 2 and "public key" in err, (bad, err)
    with pytest.raises(SystemExit) as info:
        main(["firmware", "build", "--key", str(keyfile), "--version", "1.0.0", "--board", "arduino", "-o", evr])
    assert info.value.code == 2
    assert "board 'arduino'" in capsys.readouterr().err


def test_encrypted_key(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALBOX_RELEASE_KEY_PASSPHRASE", "correct horse")
    keyfile = tmp_path / "k"
    pub_hex = keygen(keyfile, encrypt=True)
    assert b"ENCRYPTED" in keyfile.read_bytes()
    assert public_hex(load_key(keyfile)) == pub_hex
    monkeypatch.setenv("EVALBOX_RELEASE_KEY_PASSPHRASE", "wrong")
    with pytest.raises(Exception, match="not a usable PEM"):
        load_key(keyfile)


def test_reproducible_build(tmp_path: pathlib.Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764547200")
    spec = ReleaseSpec(version="3.0.0", board="pico")
    one = build(ROOT, spec, key, tmp_path / "a.evr")
    build(ROOT, spec, key, tmp_path / "b.evr")
    assert one["built"] == "2025-12-01T00:00:00Z"
    assert (tmp_path / "a.evr").read_bytes() == (tmp_path / "b.evr").read_bytes()


def test_a_box_already_on_the_release_after_a_reset_counts_as_updated(release: bytes) -> None:
    """A box that committed the release and was reset since answers an offer ``idle`` on the new version
    (its ``ok`` is not kept on flash): ``--continue`` counts it updated, not as a 600 s timeout."""

    async def run(answer: dict[str, Any]) -> str:
        tr: BoxTransfer

        def publish(topic: str, wire: bytes) -> None:  # the box answers every offer with its state
            asyncio.get_running_loop().call_soon(tr.on_state, answer)

        tr = BoxTransfer("B1", b"k" * 32, release, publish)
        return (await tr.run(timeout=3)).state

    assert asyncio.run(run({"st": "idle", "ver": "1.4.0", "tr": 0})) == "ok"
    # still on the old version, or in trial on the new one: not updated yet
    assert asyncio.run(run({"st": "idle", "ver": "1.3.0", "tr": 0})) == "timeout"
    assert asyncio.run(run({"st": "trial", "ver": "1.4.0", "tr": 1})) == "timeout"
