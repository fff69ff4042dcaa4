"""What a connection's transport says about the client: grpcio's *auth context*.

For a TLS connection whose client presented a certificate the server
verified (mutual TLS), the properties grpcio's ``ServicerContext.auth_context()``
gives, with the same names so code moving from grpcio reads the same keys:

* ``transport_security_type``: ``[b"ssl"]`` (``[b"insecure"]`` without TLS);
* ``x509_common_name``: the subject's common name(s);
* ``x509_subject_alternative_name``: DNS names, IP addresses, URIs and emails;
* ``x509_pem_cert``: the client's certificate, PEM;
* ``peer_identity_property_name`` (not a property in the mapping, but
  :attr:`AuthContext.identity_key`): the SANs when there are any, else the
  common name, as gRPC's TLS security connector picks the peer identity.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

_INSECURE: Mapping[str, tuple[bytes, ...]] = {"transport_security_type": (b"insecure",)}

#: The subjectAltName kinds gRPC reports as the peer's identities.
_SAN_KINDS = frozenset({"DNS", "IP Address", "URI", "email"})


@dataclass(frozen=True, slots=True)
class AuthContext:
    """The client's authenticated properties on one connection (no identities without mTLS)."""

    #: Property name -> its values, as grpcio's ``auth_context()`` maps them.
    properties: Mapping[str, tuple[bytes, ...]] = field(default_factory=lambda: dict(_INSECURE))
    #: Which property holds the peer's identities, or ``None`` when unauthenticated.
    identity_key: str | None = None

    @property
    def identities(self) -> tuple[bytes, ...] | None:
        """The peer's identities (certificate SANs or common name), or ``None``."""
        if self.identity_key is None:
            return None
        return self.properties[self.identity_key]


#: The context of a connection without TLS (or a stream that is not a socket).
INSECURE = AuthContext()


def auth_context_of(stream: trio.abc.Stream) -> AuthContext:
    """The auth context of a served connection's stream (TLS handshake done)."""
    if not isinstance(stream, trio.SSLStream):
        return INSECURE
    properties: dict[str, tuple[bytes, ...]] = {"transport_security_type": (b"ssl",)}
    certificate: dict[str, Any] | None = stream.getpeercert()
    if not certificate:
        # No client certificate (or the server does not verify them).
        return AuthContext(properties)
    names = tuple(
        value.encode()
        for entry in certificate.get("subject", ())
        for key, value in entry
        if key == "commonName"
    )
    alternatives = tuple(
        value.encode()
        for kind, value in certificate.get("subjectAltName", ())
        if kind in _SAN_KINDS
    )
    if names:
        properties["x509_common_name"] = names
    if alternatives:
        properties["x509_subject_alternative_name"] = alternatives
    der: bytes | None = stream.getpeercert(binary_form=True)
    if der:
        properties["x509_pem_cert"] = (ssl.DER_cert_to_PEM_cert(der).encode(),)
    if alternatives:
        key: str | None = "x509_subject_alternative_name"
    elif names:
        key = "x509_common_name"
    else:
        key = None
    return AuthContext(properties, key)
