"""GitRepository credentials from `spec.secretRef`, handed to git and to nothing else.

The Secret's keys are Flux's: `username`/`password` (HTTP Basic), `bearerToken` (HTTP
`Authorization: Bearer`, preferred when both are set, as Flux does), `identity` (an OpenSSH or
PEM private key, with `password` as its passphrase) and `known_hosts` for SSH, and `ca.crt` (a
PEM bundle that replaces the system trust store) for HTTPS.

How they reach git: HTTP credentials become an `http.extraHeader` set through git's
`GIT_CONFIG_COUNT` environment variables, so they are never on a command line (visible to every
user in `ps`) and never in the environment of anything but the git process. SSH keys are
decrypted here and written, with `known_hosts` and the CA bundle, to files readable only by us in
a private directory that lives for one fetch; ssh gets them by path with strict host key
checking, no agent, no user config. Credentials are refused over plain `http://` and in the URL
itself. `GitCredentials.scrub` removes every secret value (and the URL user information) from
git's error text before it can reach a log, a condition or an event.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from core.errors import Failure, TidegateError

__all__ = ["CredentialsError", "GitCredentials", "git_environment"]

_SCRUBBED = "***"
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_MAX_VALUE = 1 << 20
# The private key types OpenSSH's format holds.
_SSH_KEY_TYPES = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)


class CredentialsError(TidegateError):
    """The Secret's content cannot authenticate this URL; the message never holds a value."""

    failure = Failure.SOURCE


@dataclass(frozen=True)
class GitCredentials:
    """The authentication a GitRepository's Secret provides."""

    username: str = ""
    password: str = field(default="", repr=False)
    bearer_token: str = field(default="", repr=False)
    identity: bytes = field(default=b"", repr=False)
    known_hosts: bytes = b""
    ca: bytes = b""

    @classmethod
    def from_secret(cls, data: Mapping[str, bytes], where: str) -> GitCredentials:
        """Read the Secret's decoded `data`; `where` names the Secret in errors."""
        values = {key: value for key, value in data.items() if len(value) <= _MAX_VALUE}
        try:
            return cls(
                username=values.get("username", b"").decode().strip(),
                password=values.get("password", b"").decode().strip(),
                bearer_token=values.get("bearerToken", b"").decode().strip(),
                identity=values.get("identity", b""),
                known_hosts=values.get("known_hosts", b""),
                ca=values.get("ca.crt", b"") or values.get("caFile", b""),
            )
        except UnicodeDecodeError:
            raise CredentialsError(
                f"secret {where}: username, password and bearerToken must be UTF-8 text"
            ) from None

    def secrets(self) -> list[str]:
        """Every value that must never be shown, longest first."""
        found = [self.password, self.bearer_token]
        if self.username and self.password:
            found.append(base64.b64encode(f"{self.username}:{self.password}".encode()).decode())
        if self.identity:
            found.extend(
                line.strip()
                for line in self.identity.decode(errors="replace").splitlines()
                if len(line.strip()) >= 8
            )
        return sorted({value for value in found if value}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """`text` without any secret value or URL user information."""
        for value in self.secrets():
            text = text.replace(value, _SCRUBBED)
        return _USERINFO.sub(f"{_SCRUBBED}@", text)


def scrub_url(text: str) -> str:
    """Remove user information (`user:password@`) from every URL in `text`."""
    return _USERINFO.sub(f"{_SCRUBBED}@", text)


@contextmanager
def git_environment(url: str, credentials: GitCredentials | None) -> Iterator[dict[str, str]]:
    """The environment git needs to fetch `url` with `credentials`, for the `with` block.

    Files (decrypted SSH key, known_hosts, CA bundle) live in a private directory that is removed
    when the block ends, however it ends.

    Raises:
        CredentialsError: the credentials do not fit the URL's scheme, or the key cannot be read.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if parts.password is not None:
        raise CredentialsError(
            "credentials in spec.url are not accepted: put them in the Secret of spec.secretRef"
        )
    creds = credentials or GitCredentials()
    config: list[tuple[str, str]] = [
        # Only the URL's own transport: no file://, ext:: or other helpers behind a redirect.
        ("protocol.allow", "never"),
        (f"protocol.{scheme}.allow", "always"),
        ("http.followRedirects", "false"),
        ("credential.helper", ""),
    ]
    env = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
    }
    directory = Path(tempfile.mkdtemp(prefix="tidegate-git-auth-"))
    try:
        directory.chmod(0o700)
        if scheme in ("http", "https"):
            config += _http_config(scheme, creds, directory)
        elif scheme == "ssh":
            env["GIT_SSH_COMMAND"] = _ssh_command(creds, directory)
        else:
            raise CredentialsError(f"unsupported URL scheme {scheme!r}: use https, http or ssh")
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        yield env
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _http_config(scheme: str, creds: GitCredentials, directory: Path) -> list[tuple[str, str]]:
    config: list[tuple[str, str]] = []
    header = ""
    if creds.bearer_token:
        header = f"Bearer {creds.bearer_token}"
    elif creds.username or creds.password:
        pair = f"{creds.username}:{creds.password}".encode()
        header = f"Basic {base64.b64encode(pair).decode()}"
    if header:
        if scheme != "https":
            raise CredentialsError("refusing to send credentials over plain http: use an https URL")
        config.append(("http.extraHeader", f"Authorization: {header}"))
    if creds.ca:
        bundle = _private_file(directory / "ca.crt", creds.ca)
        config.append(("http.sslCAInfo", str(bundle)))
    return config


def _ssh_command(creds: GitCredentials, directory: Path) -> str:
    if not creds.identity:
        raise CredentialsError(
            "an ssh URL needs the key 'identity' in the Secret of spec.secretRef"
        )
    if not creds.known_hosts.strip():
        raise CredentialsError(
            "an ssh URL needs the key 'known_hosts' in the Secret of spec.secretRef: host keys "
            "are always checked"
        )
    identity = _private_file(directory / "identity", _decrypted_key(creds))
    known_hosts = _private_file(directory / "known_hosts", creds.known_hosts)
    options = {
        "IdentitiesOnly": "yes",
        "IdentityAgent": "none",
        "BatchMode": "yes",
        "StrictHostKeyChecking": "yes",
        "UserKnownHostsFile": str(known_hosts),
        "GlobalKnownHostsFile": os.devnull,
        "UpdateHostKeys": "no",
        "ConnectTimeout": "30",
    }
    argv = ["ssh", "-F", os.devnull, "-i", str(identity)]
    for key, value in options.items():
        argv += ["-o", f"{key}={value}"]
    return shlex.join(argv)


def _decrypted_key(creds: GitCredentials) -> bytes:
    """The identity as an unencrypted OpenSSH key: ssh then needs no passphrase prompt."""
    password = creds.password.encode() or None
    try:
        key: object
        if b"OPENSSH PRIVATE KEY" in creds.identity:
            key = serialization.load_ssh_private_key(creds.identity, password)
        else:
            key = serialization.load_pem_private_key(creds.identity, password)
        if not isinstance(key, _SSH_KEY_TYPES):
            raise CredentialsError(
                f"the SSH key 'identity' is of a type ssh cannot use ({type(key).__name__})"
            )
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    except (ValueError, TypeError):
        # The library's messages are generic; they never contain the key or the passphrase.
        raise CredentialsError(
            "the SSH key 'identity' cannot be read: it is malformed, of an unsupported type, "
            "or its passphrase ('password') is wrong or missing"
        ) from None
    except Exception as exc:
        raise CredentialsError(
            f"the SSH key 'identity' cannot be used ({type(exc).__name__})"
        ) from None


def _private_file(path: Path, content: bytes) -> Path:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(content if content.endswith(b"\n") else content + b"\n")
    return path
