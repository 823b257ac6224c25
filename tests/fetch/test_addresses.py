"""Which resolved addresses the fetcher refuses, including IPv4 carried inside IPv6 forms."""

from __future__ import annotations

import pytest

from core.fetch import refusal


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("127.255.0.9", "127.255.0.9 is a loopback address"),
        ("::1", "::1 is a loopback address"),
        ("0.0.0.0", '0.0.0.0 is a "this network" (0.0.0.0/8) address'),  # noqa: S104
        ("0.1.2.3", '0.1.2.3 is a "this network" (0.0.0.0/8) address'),
        ("10.1.2.3", "10.1.2.3 is a private address"),
        ("172.31.255.1", "172.31.255.1 is a private address"),
        ("192.168.0.1", "192.168.0.1 is a private address"),
        ("100.64.0.1", "100.64.0.1 is a shared (carrier-grade NAT) address"),
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("224.0.0.1", "224.0.0.1 is a multicast address"),
        ("240.0.0.1", "240.0.0.1 is a reserved address"),
        ("255.255.255.255", "255.255.255.255 is a reserved address"),
        ("::", ":: is an unspecified address"),
        ("fc00::1", "fc00::1 is a private address"),
        ("fd00:ec2::254", "fd00:ec2::254 is a private address"),
        ("fe80::1", "fe80::1 is a link-local address"),
        ("ff02::1", "ff02::1 is a multicast address"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1 (IPv4 127.0.0.1) is a loopback address"),
        (
            "::ffff:169.254.169.254",
            "::ffff:a9fe:a9fe (IPv4 169.254.169.254) is a link-local address",
        ),
        ("2002:7f00:1::", "2002:7f00:1:: (IPv4 127.0.0.1) is a loopback address"),
        ("64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe (IPv4 169.254.169.254) is a link-local address"),
        # Teredo: the client address is stored inverted; 0x80fffffe is 127.0.0.1 inverted.
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "(IPv4 127.0.0.1) is a loopback address"),
        ("::7f00:1", "::7f00:1 is a reserved address"),
        ("fe80::1%eth0", "fe80::1%eth0 is an IPv6 address with a zone"),
        ("2606:4700::1%eth0", "2606:4700::1%eth0 is an IPv6 address with a zone"),
        ("localhost", "is not an IP address"),
    ],
)
def test_forbidden_addresses_are_refused_with_their_category(address: str, reason: str) -> None:
    assert reason in refusal(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::6810:84e5", "8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(address) == ""


def test_loopback_opt_in_allows_loopback_only() -> None:
    assert refusal("127.0.0.1", allow_loopback=True) == ""
    assert refusal("::ffff:127.0.0.1", allow_loopback=True) == ""
    assert refusal("10.0.0.1", allow_loopback=True) == "10.0.0.1 is a private address"
    assert "link-local" in refusal("169.254.169.254", allow_loopback=True)


def test_private_opt_in_never_allows_metadata_or_loopback() -> None:
    assert refusal("10.0.0.1", allow_private=True) == ""
    assert refusal("fd12::1", allow_private=True) == ""
    assert refusal("100.64.1.1", allow_private=True) == ""
    assert "link-local" in refusal("169.254.169.254", allow_private=True, allow_loopback=True)
    assert "loopback" in refusal("127.0.0.1", allow_private=True)
    assert "multicast" in refusal("239.1.1.1", allow_private=True, allow_loopback=True)
