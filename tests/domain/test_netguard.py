"""Where a webhook may go: every forbidden range, IPv6 forms that carry IPv4, URL shapes."""

import pytest

from registry.domain import netguard

FORBIDDEN = [
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fc00::1", "private"),
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("240.0.0.1", ""), ("0.0.0.0", "unspecified"),
    ("::", "unspecified"), ("100.64.0.1", "CGNAT"), ("169.254.169.254", "metadata"),
    ("fd00:ec2::254", "metadata"), ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
    ("64:ff9b::a9fe:a9fe", "metadata"), ("64:ff9b::7f00:1", "loopback"), ("64:ff9b:1::a00:1", "private"),
    ("2002:7f00:1::1", "loopback"), ("192.0.2.1", ""), ("198.18.0.1", ""), ("2001:db8::1", ""),
    ("not-an-ip", "not an IP"),
]


@pytest.mark.parametrize(("address", "why"), FORBIDDEN)
def test_forbidden_addresses(address, why):
    reason = netguard.refusal(address)
    assert reason is not None
    assert why in reason
    with pytest.raises(netguard.AddressRefused):
        netguard.choose(["93.184.215.14", address])  # one bad answer among good ones is enough


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(address):
    assert netguard.refusal(address) is None


def test_loopback_only_where_allowed():
    assert netguard.choose(["127.0.0.1"], allow_loopback=True) == "127.0.0.1"
    with pytest.raises(netguard.AddressRefused):
        netguard.choose(["10.0.0.1"], allow_loopback=True)
    with pytest.raises(netguard.AddressRefused):
        netguard.choose([])


BAD_URLS = [
    "", "   ", "http://hooks.example.com/", "ftp://hooks.example.com/", "https://", "https://user:pw@hooks.example.com/",
    "https://user@hooks.example.com/", "https://hooks.example.com:0/", "https://hooks.example.com:99999/",
    "https://hooks.example.com/x#frag", "https://localhost/", "https://exa mple.com/", "https://a\x00b.com/",
    "https://" + "a" * 2000 + ".com/", "javascript:alert(1)", "https://[::1/", "https://-bad-.com/",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_urls(url):
    with pytest.raises(netguard.AddressRefused):
        netguard.parse_url(url, allow_http=False)


def test_url_parts():
    target = netguard.parse_url("https://Bücher.Example:8443/in?x=1", allow_http=False)
    assert (target.host, target.port, target.path) == ("xn--bcher-kva.example", 8443, "/in?x=1")
    assert target.host_header == "xn--bcher-kva.example:8443"
    assert netguard.parse_url("http://127.0.0.1:9/", allow_http=True).host_header == "127.0.0.1:9"
    assert netguard.parse_url("https://[2606:4700::1]/", allow_http=False).host_header == "[2606:4700::1]"
