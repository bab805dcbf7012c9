"""Password hashes for the dashboard's shared password, so that camwatch.toml need not hold it in clear.

Format (one line, ``$``-separated, salt and hash in unpadded URL-safe base64):
``scrypt$N$r$p$SALT$HASH`` (scrypt, RFC 7914; default N = 2**15, r = 8, p = 1, a 16-byte salt and a
32-byte hash: about 0.1 s and 32 MiB per check) or ``pbkdf2_sha256$ITERATIONS$SALT$HASH`` (for hashes
made elsewhere, e.g. by Django). Verification recomputes the hash and compares in constant time
(:func:`hmac.compare_digest`). ``camwatch hash-password`` prints a hash for a password typed twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_MAX_SCRYPT_N = 2**20  # refuse parameters that would take seconds and gigabytes per login attempt
_MAX_PBKDF2_ITERATIONS = 5_000_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, salt: bytes | None = None, n: int = SCRYPT_N, r: int = SCRYPT_R,
                  p: int = SCRYPT_P) -> str:
    """The scrypt hash line of ``password`` (a random 16-byte salt unless given)."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + (1 << 20),
                            dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def check_hash_format(encoded: str) -> None:
    """ValueError (saying what is wrong, never echoing the hash) when ``encoded`` is not a hash line."""
    _parse(encoded)


def _parse(encoded: str) -> tuple[str, tuple[int, ...], bytes, bytes]:
    parts = encoded.strip().split("$")
    try:
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = (int(v) for v in parts[1:4])
            if not (1 < n <= _MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
                raise ValueError("scrypt parameters out of range (N a power of two up to 2**20, r <= 32, p <= 16)")
            return "scrypt", (n, r, p), _unb64(parts[4]), _unb64(parts[5])
        if parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            iterations = int(parts[1])
            if not 1 <= iterations <= _MAX_PBKDF2_ITERATIONS:
                raise ValueError("pbkdf2 iterations out of range (1 .. 5,000,000)")
            return "pbkdf2_sha256", (iterations,), _unb64(parts[2]), _unb64(parts[3])
    except (ValueError, TypeError) as exc:
        if "out of range" in str(exc):
            raise
        raise ValueError("password hash: a number or a base64 field is malformed") from None
    raise ValueError("password hash: expected 'scrypt$N$r$p$SALT$HASH' or 'pbkdf2_sha256$ITERATIONS$SALT$HASH' "
                     "(`camwatch hash-password` prints one)")


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches the hash line ``encoded`` (constant-time comparison)."""
    scheme, params, salt, expected = _parse(encoded)
    if scheme == "scrypt":
        n, r, p = params
        actual = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                                maxmem=256 * n * r + (1 << 20), dklen=len(expected))
    else:
        actual = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, params[0], dklen=len(expected))
    return hmac.compare_digest(actual, expected)
