"""Release keys and signed release files (format: ``docs/firmware-updates.md``).

Signing uses ``cryptography`` (OpenSSL's Ed25519); checking uses the box's
own verifier (``firmware.release``), and ``check_release`` runs OpenSSL too,
so a release that passes here passes on a box, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import pathlib
import stat
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from collector.fleet.errors import FleetError
from collector.fleet.tree import compile_tree, mpy_version
from firmware import ed25519
from firmware import release as box
from protocol.limits import VERSION as PROTOCOL_VERSION

PASSPHRASE_ENV = "EVALBOX_RELEASE_KEY_PASSPHRASE"


def public_hex(key: Ed25519PrivateKey) -> str:
    """The 32-byte raw public key, as the hex a box's config holds."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def _passphrase(confirm: bool) -> bytes:
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        return env.encode()
    first = getpass.getpass("release key passphrase 发布密钥口令: ")
    if confirm and getpass.getpass("again 再次输入: ") != first:
        raise FleetError("the two passphrases differ (两次口令不一致)")
    if not first:
        raise FleetError("an empty passphrase (口令为空)")
    return first.encode()


def keygen(out: pathlib.Path, *, encrypt: bool = False) -> str:
    """Write a new Ed25519 release key to ``out`` (PKCS#8 PEM, mode 0600) and its public hex to ``out.pub``.

    Refuses to overwrite either file. ``encrypt``: protect the key with a
    passphrase (``EVALBOX_RELEASE_KEY_PASSPHRASE`` or asked twice). Returns
    the public key hex.
    """
    pub_path = out.with_name(out.name + ".pub")
    for p in (out, pub_path):
        if p.exists():
            raise FleetError(f"{p}: exists; a release key is never overwritten (已存在，不覆盖)")
    key = Ed25519PrivateKey.generate()
    algo: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if encrypt:
        algo = serialization.BestAvailableEncryption(_passphrase(confirm=True))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algo)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise FleetError(f"{out}: cannot create ({exc.strerror})") from None
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(pem)
    pub = public_hex(key)
    pub_path.write_text(pub + "\n", encoding="ascii")
    return pub


def load_key(path: pathlib.Path) -> Ed25519PrivateKey:
    """The release key in ``path``; refuses a file others can read, or anything but an Ed25519 key."""
    try:
        st = path.stat()
        data = path.read_bytes()
    except OSError as exc:
        raise FleetError(f"release key {path}: {exc.strerror} (无法读取发布密钥)") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise FleetError(
            f"release key {path}: mode {stat.S_IMODE(st.st_mode):04o} lets others read it; chmod 600 (权限过宽)"
        )
    password = _passphrase(confirm=False) if b"ENCRYPTED" in data else None
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        raise FleetError(f"release key {path}: not a usable PEM private key ({exc}) (密钥无效)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise FleetError(f"release key {path}: not an Ed25519 key (不是 Ed25519 密钥)")
    return key


def parse_public_key(text: str) -> bytes:
    """A box's trusted key: 64 hex digits, or a file holding them (``release.key.pub``)."""
    candidate = text.strip()
    if len(candidate) != 64 and pathlib.Path(candidate).is_file():
        candidate = pathlib.Path(candidate).read_text(encoding="ascii", errors="replace").strip()
    try:
        raw = bytes.fromhex(candidate)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise FleetError(f"public key {text!r}: want 64 hex digits or a .pub file (公钥格式错误)")
    why = ed25519.check_public_key(raw)
    if why is not None:
        raise FleetError(f"public key {text[:16]}…: unusable ({why}) (公钥不可用)")
    return raw


def version(text: str, what: str) -> str:
    """``text`` if it is an X.Y.Z version the box accepts, else a FleetError naming ``what``."""
    try:
        box.parse_version(text)
    except ValueError as exc:
        raise FleetError(f"{what}: {exc}") from None
    return text


def build_time() -> str:
    """UTC now, or ``SOURCE_DATE_EPOCH`` for a reproducible build."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None:
        try:
            when = dt.datetime.fromtimestamp(int(epoch), dt.UTC)
        except (ValueError, OverflowError):
            raise FleetError(f"SOURCE_DATE_EPOCH={epoch!r}: want seconds since 1970") from None
    else:
        when = dt.datetime.now(dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ReleaseSpec:
    """What a release declares besides its files (see the manifest in ``docs/firmware-updates.md``).

    ``ReleaseSpec(version="1.2.0", board="picow", min_version="1.1.0")``: a
    release for Pico W boxes that, once installed, never lets a box go back
    below 1.1.0.
    """

    version: str
    board: str
    min_version: str = "0.0.0"
    min_protocol: int = PROTOCOL_VERSION
    min_config: int = box.CONFIG_FORMAT


def pack(files: list[tuple[str, bytes]], spec: ReleaseSpec, key: Ed25519PrivateKey, *, mpy: int, built: str) -> bytes:
    """The signed release: header, signature, manifest, then the files in the manifest's order.

    The manifest is checked with the box's own rules before it is signed, so
    nothing is signed that a box would refuse to read.
    """
    manifest: dict[str, Any] = {
        "format": box.FORMAT,
        "version": spec.version,
        "min_version": spec.min_version,
        "board": spec.board,
        "min_protocol": spec.min_protocol,
        "min_config": spec.min_config,
        "mpy": mpy,
        "built": built,
        "files": [{"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for p, d in files],
    }
    raw = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
    try:
        box.check_manifest(json.loads(raw))
    except box.ReleaseError as exc:
        raise FleetError(f"release not built: {exc}") from None
    if len(raw) > box.MAX_MANIFEST:
        raise FleetError(f"release not built: manifest of {len(raw)} bytes, a box reads at most {box.MAX_MANIFEST}")
    head = box.MAGIC + len(raw).to_bytes(4, "little")
    sig = key.sign(box.signed_message(hashlib.sha256(head + raw).digest()))
    return b"".join([head, sig, raw, *(d for _, d in files)])


def build(source: pathlib.Path, spec: ReleaseSpec, key: Ed25519PrivateKey, out: pathlib.Path) -> dict[str, Any]:
    """Compile ``source``'s box files, sign them into ``out`` (written atomically); the manifest."""
    files = compile_tree(source, spec.board)
    data = pack(files, spec, key, mpy=mpy_version(files), built=build_time())
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise FleetError(f"{out}: cannot write ({exc.strerror})") from None
    manifest: dict[str, Any] = json.loads(data[box.HEADER : box.HEADER + int.from_bytes(data[4:8], "little")])
    return manifest


def _openssl_verdict(path: pathlib.Path, public_key: bytes) -> bool:
    """OpenSSL's opinion of the release's signature alone (the box's reader checks everything else)."""
    with path.open("rb") as f:
        head = f.read(8)
        n = int.from_bytes(head[4:8], "little")
        sig = f.read(64)
        raw = f.read(n)
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            sig, box.signed_message(hashlib.sha256(head + raw).digest())
        )
    except InvalidSignature:
        return False
    return True


def check_release(
    path: pathlib.Path, public_key: bytes, *, board: str | None = None, floor: str | None = None
) -> dict[str, Any]:
    """Check a release with the box's reader (streaming, as on the box) and its signature with OpenSSL too.

    Returns the manifest; raises ``firmware.release.ReleaseError`` with the
    box's reason when the box would refuse it, and FleetError if the two
    verifiers ever disagree (a bug in one of them).
    """
    try:
        manifest = box.verify_release(str(path), public_key, box.BoxState(board, floor, mpy=None))
    except box.ReleaseError as exc:
        if exc.reason == "bad_signature" and _openssl_verdict(path, public_key):
            raise FleetError(f"{path}: OpenSSL accepts the signature the box's verifier refuses ({exc})") from None
        raise
    if not _openssl_verdict(path, public_key):
        raise FleetError(f"{path}: the box's verifier accepts a signature OpenSSL refuses")
    return manifest


def rotation(current: Ed25519PrivateKey, new: Ed25519PrivateKey, seq: int, issued: str) -> bytes:
    """A key rotation statement (``firmware/keyrot.py``): signed by the current key, countersigned by the new one."""
    from firmware import keyrot

    if not 0 < seq < 2**31:
        raise FleetError(f"--seq {seq}: want 1..2147483647, above every rotation the boxes accepted")
    body = json.dumps(
        {"format": 1, "old": public_hex(current), "new": public_hex(new), "seq": seq, "issued": issued},
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    head = keyrot.MAGIC + len(body).to_bytes(4, "little")
    msg = keyrot.signed_message(head + body)
    return head + current.sign(msg) + new.sign(msg) + body
