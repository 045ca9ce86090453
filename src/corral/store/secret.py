"""The server secret under which API keys are hashed: from CORRAL_SECRET_KEY or a 0600 file."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from corral.errors import ConfigError
from corral.store.port import Store

ENV_VARIABLE = "CORRAL_SECRET_KEY"
FILE_NAME = "secret_key"
MIN_CHARS = 32
_FINGERPRINT_META = "secret_fingerprint"


def load_server_secret(data_dir: Path, environ: Mapping[str, str] = os.environ) -> bytes:
    """The server secret: ``CORRAL_SECRET_KEY`` when set, else ``data_dir/secret_key``, which
    the first start creates (256 random bits, mode 0600). Several gateway hosts sharing one
    PostgreSQL must share the secret too: set the variable on each of them."""
    if value := environ.get(ENV_VARIABLE):
        if len(value) < MIN_CHARS:
            raise ConfigError(
                f"{ENV_VARIABLE} is too short ({len(value)} characters); use at least "
                f"{MIN_CHARS}, e.g. the output of `python -c 'import secrets; "
                "print(secrets.token_hex(32))'`"
            )
        return value.encode("utf-8")
    path = data_dir / FILE_NAME
    if not path.exists():
        _create(path)
    return _read(path)


async def check_server_secret(store: Store, secret: bytes) -> None:
    """Refuse to start with a different secret than the store's keys were hashed with.

    The first start records a fingerprint of the secret (an HMAC, which reveals nothing of it);
    a later start with another secret would otherwise reject every key without saying why.
    """
    fingerprint = hmac.new(secret, b"corral server secret fingerprint", hashlib.sha256).hexdigest()
    if await store.put_meta_once(_FINGERPRINT_META, fingerprint):
        return
    recorded = await store.get_meta(_FINGERPRINT_META)
    if recorded is None or not hmac.compare_digest(recorded, fingerprint):
        raise ConfigError(
            "the server secret differs from the one this store's API keys were hashed with, "
            f"so no key would work; restore the original {ENV_VARIABLE} or data_dir/{FILE_NAME}"
        )


def _create(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        # link() fails if another process got there first; either way exactly one secret wins.
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink(missing_ok=True)


def _read(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`"
        )
    value = path.read_text(encoding="ascii").strip()
    if len(value) < MIN_CHARS:
        raise ConfigError(f"{path} holds no usable secret; delete it only if no key exists yet")
    return value.encode("ascii")
