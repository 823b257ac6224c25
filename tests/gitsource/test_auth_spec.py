"""What git is given for each kind of credential, how secrets are scrubbed, and the spec's
defaults and refusals."""

from __future__ import annotations

import shlex
import stat
from pathlib import Path

import pytest

from core.errors import InputError
from devenv.sshgit import new_key
from reconciler.source.auth import CredentialsError, GitCredentials, git_environment
from reconciler.source.spec import GitRepositorySpec, parse_duration


def _config(env: dict[str, str]) -> dict[str, str]:
    count = int(env["GIT_CONFIG_COUNT"])
    return {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(count)}


def test_https_gets_a_header_the_url_transport_only_and_no_redirects() -> None:
    creds = GitCredentials(bearer_token="tok", ca=b"PEM")
    with git_environment("https://git.example/fleet.git", creds) as env:
        config = _config(env)
        bundle = Path(config["http.sslCAInfo"])
        assert bundle.read_bytes() == b"PEM\n"
        assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    assert config["http.extraHeader"] == "Authorization: Bearer tok"
    assert config["protocol.allow"] == "never"
    assert config["protocol.https.allow"] == "always"
    assert "protocol.file.allow" not in config
    assert config["http.followRedirects"] == "false"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert not bundle.exists()  # removed with its directory when the block ends


def test_ssh_gets_private_files_strict_host_checking_and_no_agent_or_user_config() -> None:
    key, _ = new_key()
    creds = GitCredentials(identity=key, known_hosts=b"[h]:22 ssh-ed25519 AAAA\n")
    with git_environment("ssh://git@h/fleet.git", creds) as env:
        argv = shlex.split(env["GIT_SSH_COMMAND"])
        identity = Path(argv[argv.index("-i") + 1])
        directory = identity.parent
        assert stat.S_IMODE(identity.stat().st_mode) == 0o600
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert b"OPENSSH PRIVATE KEY" in identity.read_bytes()
    assert argv[:3] == ["ssh", "-F", "/dev/null"]
    pairs = [argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "-o"]
    options = dict(pairs)
    assert options["StrictHostKeyChecking"] == "yes"
    assert options["IdentityAgent"] == "none"
    assert options["BatchMode"] == "yes"
    assert options["GlobalKnownHostsFile"] == "/dev/null"
    assert _config(env)["protocol.ssh.allow"] == "always"
    assert "http.extraHeader" not in _config(env)
    assert not directory.exists()


def test_a_bad_key_is_refused_without_showing_it() -> None:
    creds = GitCredentials(
        identity=b"-----BEGIN OPENSSH PRIVATE KEY-----\nGARBAGE-KEY\n", known_hosts=b"x"
    )
    with pytest.raises(CredentialsError) as caught, git_environment("ssh://h/r.git", creds):
        pass
    assert "GARBAGE-KEY" not in str(caught.value)


def test_scrub_removes_every_secret_form_and_url_user_information() -> None:
    creds = GitCredentials(username="bot", password="pw-123456", bearer_token="tok-abcdef")
    text = (
        "fatal: https://bot:pw-123456@h/r.git said tok-abcdef and "
        "Authorization: Basic Ym90OnB3LTEyMzQ1Ng=="
    )
    scrubbed = creds.scrub(text)
    assert scrubbed == "fatal: https://***@h/r.git said *** and Authorization: Basic ***"


def _obj(**spec: object) -> dict[str, object]:
    return {
        "metadata": {"name": "fleet", "namespace": "ns", "generation": 3},
        "spec": {"url": "https://h/r.git", "interval": "1m30s", **spec},
    }


def test_the_spec_is_read_with_fluxs_defaults() -> None:
    spec = GitRepositorySpec.from_object(_obj())
    assert (spec.interval, spec.timeout, spec.generation) == (90.0, 60.0, 3)
    assert (spec.ignore, spec.secret_name, spec.suspend, spec.requested_at) == (
        None,
        "",
        False,
        None,
    )
    assert parse_duration("1h2m3.5s") == 3723.5
    assert parse_duration("250ms") == 0.25


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"provider": "azure"}, "spec.provider"),
        ({"verify": {"mode": "HEAD"}}, "spec.verify"),
        ({"recurseSubmodules": True}, "spec.recurseSubmodules"),
        ({"sparseCheckout": ["a"]}, "spec.sparseCheckout"),
        ({"interval": "0s"}, "spec.interval"),
        ({"timeout": "1d"}, "spec.timeout"),
        ({"url": "git@h:r.git"}, "spec.url"),
        ({"ignore": ["a"]}, "spec.ignore"),
    ],
)
def test_unsupported_or_invalid_fields_are_refused_by_name(
    spec: dict[str, object], field: str
) -> None:
    with pytest.raises(InputError) as caught:
        GitRepositorySpec.from_object(_obj(**spec))
    assert f"object GitRepository ns/fleet, field {field}:" in str(caught.value)
