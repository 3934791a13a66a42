"""EPICS_PVA* / EPICS_PVAS* variables: names, fallbacks, defaults and helpful errors."""

from __future__ import annotations

import pytest

from reckon.errors import ConfigurationError
from reckon.pva.config import ClientConfig, ServerConfig, parse_addresses


def test_server_reads_pvas_first_then_pva() -> None:
    env = {
        "EPICS_PVA_SERVER_PORT": "6000",
        "EPICS_PVAS_SERVER_PORT": "6100",
        "EPICS_PVA_BROADCAST_PORT": "6001",
        "EPICS_PVAS_INTF_ADDR_LIST": "127.0.0.1",
        "EPICS_PVA_ADDR_LIST": "10.0.0.255 127.0.0.1:7000",
        "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
        "EPICS_PVA_AUTO_ADDR_LIST": "YES",
        "EPICS_PVAS_BEACON_PERIOD": "2.5",
    }
    cfg = ServerConfig.from_env(env)
    assert cfg.tcp_port == 6100 and cfg.udp_port == 6001
    assert cfg.interfaces == ["127.0.0.1"]
    assert cfg.beacon_destinations == [("10.0.0.255", 6001), ("127.0.0.1", 7000)]
    assert cfg.auto_beacon is False
    assert cfg.beacon_targets() == cfg.beacon_destinations
    assert cfg.beacon_period == 2.5


def test_defaults() -> None:
    s = ServerConfig.from_env({})
    assert (s.tcp_port, s.udp_port, s.interfaces, s.auto_beacon) == (5075, 5076, ["0.0.0.0"], True)
    assert ("255.255.255.255", 5076) in s.beacon_targets()
    c = ClientConfig.from_env({})
    assert c.search_targets() == [("255.255.255.255", 5076)]
    assert c.name_servers == []


def test_client_name_servers_and_addr_list() -> None:
    c = ClientConfig.from_env(
        {
            "EPICS_PVA_ADDR_LIST": "127.0.0.1",
            "EPICS_PVA_AUTO_ADDR_LIST": "no",
            "EPICS_PVA_BROADCAST_PORT": "5555",
            "EPICS_PVA_SERVER_PORT": "5554",
            "EPICS_PVA_NAME_SERVERS": "gw.example:7075 127.0.0.1",
            "EPICS_PVA_CONN_TMO": "3",
        }
    )
    assert c.search_targets() == [("127.0.0.1", 5555)]
    assert c.name_servers == [("gw.example", 7075), ("127.0.0.1", 5554)]
    assert c.conn_timeout == 3.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EPICS_PVA_SERVER_PORT": "http"}, "EPICS_PVA_SERVER_PORT='http' is not a port"),
        ({"EPICS_PVA_SERVER_PORT": "70000"}, "out of range"),
        ({"EPICS_PVA_AUTO_ADDR_LIST": "maybe"}, "use YES or NO"),
        ({"EPICS_PVA_CONN_TMO": "-1"}, "must be positive"),
        ({"EPICS_PVA_ADDR_LIST": "host:port"}, "bad port"),
    ],
)
def test_bad_values_say_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ServerConfig.from_env(env)
        ClientConfig.from_env(env)


def test_parse_addresses() -> None:
    assert parse_addresses("a b:1, c:2", 9) == [("a", 9), ("b", 1), ("c", 2)]
    assert parse_addresses("", 9) == []


def test_loopback_environment_keeps_server_and_client_on_this_machine() -> None:
    from reckon.pva.config import ClientConfig, ServerConfig, loopback_environment

    env = loopback_environment(15075, 15076)
    server, client = ServerConfig.from_env(env), ClientConfig.from_env(env)
    assert server.interfaces == ["127.0.0.1"]
    assert (server.tcp_port, server.udp_port) == (15075, 15076)
    assert server.beacon_targets() == [("127.0.0.1", 15076)]
    assert client.search_targets() == [("127.0.0.1", 15076)]
    fresh = loopback_environment()
    assert fresh["EPICS_PVA_SERVER_PORT"] == fresh["EPICS_PVAS_SERVER_PORT"] != "15075"
