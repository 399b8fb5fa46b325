"""The certificate and key an HTTP server serves TLS with (``--tls-cert`` / ``--tls-key``).

uvicorn does the TLS itself (its ``ssl_certfile`` / ``ssl_keyfile``); what this module adds is
checking the pair before a node starts, so a wrong path, a key that does not match its
certificate, or a file that is not PEM is a usage error naming the flag, not a traceback from
deep inside uvicorn's startup.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from protocol.errors import ValidationError

CERT_FLAG = "tls-cert"
KEY_FLAG = "tls-key"


@dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path


def tls_files(cert: Path | None, key: Path | None) -> TLSFiles | None:
    """Both flags or neither; a pair that a TLS server could load, or a ValidationError."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        given, missing = (KEY_FLAG, CERT_FLAG) if cert is None else (CERT_FLAG, KEY_FLAG)
        raise ValidationError(missing, f"--{given} needs --{missing} too (TLS takes both)")
    for flag, path in ((CERT_FLAG, cert), (KEY_FLAG, key)):
        if not path.is_file():
            raise ValidationError(flag, f"{path} is not a readable file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # an empty password: an encrypted key fails here, instead of OpenSSL prompting for
        # a pass phrase on the terminal of a node that may have none
        context.load_cert_chain(cert, key, password=b"")
    except ssl.SSLError as exc:
        raise ValidationError(
            CERT_FLAG,
            f"cannot serve TLS with {cert} and {key}: {exc.reason or exc} (both PEM, the key "
            "unencrypted and the certificate's own?)",
        ) from None
    except OSError as exc:
        raise ValidationError(CERT_FLAG, f"cannot read {cert} or {key}: {exc}") from None
    return TLSFiles(cert, key)
