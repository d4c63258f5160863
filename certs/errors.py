"""Errors raised by the ``certs`` package, shared by ``certs.token`` and ``certs.x509``.

Kept in a module of its own, free of third-party imports, so that ``certs.token`` can raise
them without pulling in ``cryptography``. Every error carries a one-line message that says
what is wrong and, where the operator can act, what to do.
"""

from __future__ import annotations


class CertsError(Exception):
    """Base class of every error raised by the ``certs`` package."""


# --- join tokens -------------------------------------------------------------------------


class TokenError(CertsError):
    """The join token could not be used."""


class TokenMalformed(TokenError):
    """The token is not ``<sha256 hex>.<jwt header>.<jwt payload>.<jwt signature>``."""


class CAHashMismatch(TokenError):
    """The CA served by the cloud is not the CA the token was issued for."""

    def __init__(self, token_hash: str, served_hash: str) -> None:
        self.token_hash = token_hash
        self.served_hash = served_hash
        super().__init__(
            f"the CA certificate served by the cloud (sha256 {served_hash}) does not match "
            f"the token (sha256 {token_hash}); get a fresh token with `keadm gettoken` "
            "from the cloud this node should join"
        )


class TokenExpired(TokenError):
    """The token's ``exp`` claim lies in the past."""

    def __init__(self, expired_at: str) -> None:
        self.expired_at = expired_at
        super().__init__(
            f"the token expired at {expired_at}; run `keadm gettoken` on the cloud for a fresh one"
        )


class TokenSignatureInvalid(TokenError):
    """The token was signed with another CA key, with another algorithm, or was tampered with."""


# --- keys, certificates, CSRs -----------------------------------------------------------


class MalformedKey(CertsError):
    """Bytes that should hold an ECDSA P-256 private key do not."""


class MalformedCertificate(CertsError):
    """Bytes that should hold an X.509 certificate do not."""


class InvalidAltName(CertsError):
    """A subject alternative name (IP address or DNS name) cannot be used."""


class InvalidExtKeyUsage(CertsError):
    """An extended key usage number is unknown, or the list of them is empty."""


class CSRError(CertsError):
    """A certificate signing request was refused."""


class MalformedCSR(CSRError):
    """The bytes are not a DER PKCS#10 certificate signing request."""


class CSRSignatureInvalid(CSRError):
    """The CSR is not signed by the key it carries."""


class CSRSubjectMismatch(CSRError):
    """The CSR's subject does not name the node that asks for the certificate."""


class UnacceptableKey(CSRError):
    """The CSR's public key is not one a node may have (EC P-256/P-384, RSA >= 2048 bits)."""


class CertVerificationError(CertsError):
    """A certificate presented as a node's client certificate was refused."""


class CertSignatureInvalid(CertVerificationError):
    """The certificate was not issued by the expected CA."""


class CertExpired(CertVerificationError):
    """The certificate's NotAfter lies in the past."""


class CertNotYetValid(CertVerificationError):
    """The certificate's NotBefore lies in the future."""


class NotANodeCertificate(CertVerificationError):
    """The certificate is valid but is not a KubeEdge node's client certificate."""
