"""A throwaway PKI for the TLS tests, made with the `openssl` command: a CA, a broker certificate
(for localhost and 127.0.0.1, also as a PKCS12 keystore for a Java broker), a client certificate with
its key in clear and encrypted, and a client certificate from a CA nobody trusts."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

KEY_PASSWORD = "client-key-pw-2718"
STORE_PASSWORD = "broker-store-pw-1618"
_LEAF_EXTENSIONS = (
    "basicConstraints=CA:FALSE\n"
    "keyUsage=critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage=serverAuth,clientAuth\n"
    "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
)


@dataclass(frozen=True)
class Pki:
    folder: Path
    ca: Path
    server_cert: Path
    server_key: Path
    server_keystore: Path  # PKCS12, STORE_PASSWORD
    client_cert: Path
    client_key: Path
    client_key_encrypted: Path  # PKCS#8, KEY_PASSWORD
    stranger_cert: Path  # signed by another CA
    stranger_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()[-400:]}")


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc",
             "-keyout", key.name, "-out", cert.name, "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=folder)
    return cert, key


def _leaf(folder: Path, name: str, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
    extensions = folder / "leaf.ext"
    extensions.write_text(_LEAF_EXTENSIONS)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc",
             "-keyout", key.name, "-out", csr.name, "-subj", f"/CN={name}", cwd=folder)
    _openssl("x509", "-req", "-in", csr.name, "-CA", ca[0].name, "-CAkey", ca[1].name, "-CAcreateserial",
             "-out", cert.name, "-days", "2", "-extfile", extensions.name, cwd=folder)
    return cert, key


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    ca = _ca(folder, "soma-test-ca")
    server = _leaf(folder, "broker", ca)
    client = _leaf(folder, "client", ca)
    stranger = _leaf(folder, "stranger", _ca(folder, "other-ca"))
    encrypted = folder / "client-encrypted.key"
    _openssl("pkcs8", "-topk8", "-in", client[1].name, "-out", encrypted.name, "-v2", "aes-256-cbc",
             "-passout", f"pass:{KEY_PASSWORD}", cwd=folder)
    keystore = folder / "broker.p12"
    _openssl("pkcs12", "-export", "-in", server[0].name, "-inkey", server[1].name, "-certfile", ca[0].name,
             "-name", "broker", "-out", keystore.name, "-passout", f"pass:{STORE_PASSWORD}", cwd=folder)
    return Pki(folder, ca[0], server[0], server[1], keystore, client[0], client[1], encrypted, *stranger)
