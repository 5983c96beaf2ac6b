"""SNS message signatures: what an HTTP/S endpoint (or a function) can verify a message by.

SNS signs every document it delivers: the fields of the document, each as `Name\\nValue\\n`
in a fixed order, signed with RSA (PKCS#1 v1.5) over SHA1 (`SignatureVersion` 1) or SHA256
(2), with the certificate at `SigningCertURL`. fanstack does the same with a key of its own: an
RSA key and a self-signed certificate made once per store and kept in it (every process of the
app signs with the same key), served at `CERT_PATH` on the server that took the Subscribe, so
a receiver that verifies against the certificate URL it is given (rather than insisting on an
amazonaws.com host) accepts fanstack's messages.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fanstack.backends.base import Backend
from fanstack.core.errors import ConditionalCheckFailed

CERT_PATH = "/_fanstack/sns/signing-cert.pem"
TABLE = "fanstack-sns-signing"
KEY = "signing-key"
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = (
    "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
)  # fmt: skip
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


@dataclass(frozen=True)
class Signer:
    """The store's signing key and its certificate."""

    key: rsa.RSAPrivateKey
    certificate_pem: bytes

    def sign(self, document: Mapping[str, Any]) -> str:
        """The base64 signature of `document` under its `SignatureVersion` (1 if absent)."""
        algorithm = _HASHES.get(str(document.get("SignatureVersion", "1")), hashes.SHA1)
        signed = self.key.sign(string_to_sign(document), padding.PKCS1v15(), algorithm())
        return base64.b64encode(signed).decode()


def string_to_sign(document: Mapping[str, Any]) -> bytes:
    """SNS's canonical text of a document: its signed fields present, in order."""
    kind = document.get("Type")
    names = NOTIFICATION_FIELDS if kind == "Notification" else CONFIRMATION_FIELDS
    text = "".join(
        f"{name}\n{document[name]}\n" for name in names if document.get(name) is not None
    )
    return text.encode()


def certificate_url(subscribe_url: str) -> str:
    """Where the certificate is served: the server a subscription was made on."""
    parts = urlsplit(subscribe_url)
    return f"{parts.scheme}://{parts.netloc}{CERT_PATH}"


def signed(document: dict[str, Any], signer: Signer, subscribe_url: str) -> dict[str, Any]:
    """`document` with its `SignatureVersion`, `Signature` and `SigningCertURL` filled in."""
    document = dict(document)
    document["SignatureVersion"] = str(document.get("SignatureVersion") or "1")
    document["SigningCertURL"] = certificate_url(subscribe_url)
    document["Signature"] = signer.sign(document)
    return document


_signers: dict[str, Signer] = {}
_lock = threading.Lock()


def signer_for(backend: Backend) -> Signer:
    """The store's signer: read once per process, made (and kept) by the first to need it."""
    with _lock:
        known = _signers.get(backend.url)
        if known is None:
            known = _signers[backend.url] = _load_or_make(backend)
        return known


def _load_or_make(backend: Backend) -> Signer:
    item = backend.table_get(TABLE, KEY)
    if item is None:
        key, certificate = _make()
        value = {
            "key": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "certificate": certificate.decode(),
        }
        with contextlib.suppress(ConditionalCheckFailed):  # another process made one first
            backend.table_put(TABLE, KEY, value, if_absent=True)
        item = backend.table_get(TABLE, KEY)
        assert item is not None
    loaded = serialization.load_pem_private_key(item.value["key"].encode(), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    return Signer(loaded, item.value["certificate"].encode())


def _make() -> tuple[rsa.RSAPrivateKey, bytes]:
    # Imported here, by the one process that makes the key: x509 costs every process ~50 ms.
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.fanstack.local")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)
