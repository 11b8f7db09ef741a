"""A GitHub App as the operator configures it (:class:`AppKey`): its id and where its private key is —
a file (``private_key_file``; relative to ``$BATON_HOME`` when not absolute) or an environment variable
(``private_key_env``) holding the PEM. The key is read when a JWT is signed
(:meth:`AppKey.private_key`: a rotated file is used from the next signature on, no restart), and is
never kept in the configuration, a repr, a log or an error message: a refusal names the file or the
variable and what is wrong, never a byte of what it holds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from baton.errors import BadInput

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

MAX_PEM = 64 * 1024  # a 4096-bit RSA key's PEM is ~3.3 KB


@dataclass(frozen=True)
class AppKey:
    """A GitHub App's id and its private key's place (a file, or a variable's name: exactly one)."""

    app_id: int
    key_file: Path | None = None
    key_env: str | None = None

    @property
    def source(self) -> str:
        """Where the key is, as a message names it."""
        if self.key_file is not None:
            return f"the private key file {self.key_file}"
        return f"the environment variable {self.key_env} (its private_key_env)"

    def pem(self, environ: Mapping[str, str] = os.environ) -> bytes:
        """The key's PEM; BadInput naming the file or variable when it cannot be had."""
        if self.key_file is not None:
            try:
                with self.key_file.open("rb") as file:
                    data = file.read(MAX_PEM + 1)
            except OSError as exc:
                raise BadInput(
                    f"{self.source} cannot be read ({exc.strerror or type(exc).__name__})"
                ) from None
            if len(data) > MAX_PEM:
                raise BadInput(f"{self.source} is larger than a private key ({MAX_PEM} bytes)")
            return data
        value = environ.get(self.key_env or "", "")
        if not value.strip():
            raise BadInput(f"{self.source} is not set or is empty")
        if "\\n" in value and "\n" not in value.strip():  # a PEM pasted on one line, its newlines escaped
            value = value.replace("\\n", "\n")
        return value.encode()

    def private_key(self, environ: Mapping[str, str] = os.environ) -> RSAPrivateKey:
        """The App's RSA private key (GitHub Apps sign with RS256); BadInput when it is not one."""
        # lazy: cost: cryptography, for an App's key only
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        pem = self.pem(environ)
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            # never chained: the library's words might quote what it could not read
            raise BadInput(
                f"{self.source} does not hold an unencrypted private key in PEM form "
                "(the .pem file GitHub gives when a private key is generated for the App)"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise BadInput(f"{self.source} holds a key that is not RSA: GitHub Apps sign with RS256")
        return key
