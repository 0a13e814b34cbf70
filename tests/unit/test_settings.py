"""Which ``connection_config`` keys the settings accept, checked without a server.

The libpq connection parameters come from libpq's own list, so any one the libpq
in use knows reaches the conninfo, except the debug-only ones.
"""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import Conninfo

from sqlspec import ImproperConfigurationError
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg._settings import PoolSettings, masked_conninfo

LIBPQ_OPTIONS = {o.keyword.decode(): o.dispchar.decode() for o in Conninfo.get_defaults()}

#: The debug-only parameters (dispchar "D") libpq reports up to version 18; all refused.
DEBUG_ONLY = {"replication", "scram_client_key", "scram_server_key", "sslkeylogfile"}

ACCEPTED = sorted(k for k, disp in LIBPQ_OPTIONS.items() if disp != "D")

SECRETS = sorted(k for k, disp in LIBPQ_OPTIONS.items() if disp == "*")

#: A value libpq takes for each parameter when it connects (it checks none while parsing).
VALUES = {
    "application_name": "my_adk_agent",
    "channel_binding": "require",
    "client_encoding": "UTF8",
    "connect_timeout": "10",
    "dbname": "mydb",
    "fallback_application_name": "sqlspec",
    "gssdelegation": "1",
    "gssencmode": "prefer",
    "gsslib": "gssapi",
    "host": "db.example.com",
    "hostaddr": "192.0.2.10",
    "keepalives": "1",
    "keepalives_count": "5",
    "keepalives_idle": "60",
    "keepalives_interval": "10",
    "krbsrvname": "postgres",
    "load_balance_hosts": "random",
    "max_protocol_version": "latest",
    "min_protocol_version": "3.0",
    "oauth_client_id": "adk-agent",
    "oauth_client_secret": "s3cr3t-oauth",
    "oauth_issuer": "https://issuer.example.com",
    "oauth_scope": "openid",
    "options": "-c statement_timeout=5000",
    "passfile": "/etc/sqlspec/pgpass",
    "password": "s3cr3t-pw",
    "port": "5433",
    "require_auth": "scram-sha-256",
    "requirepeer": "postgres",
    "service": "adk",
    "ssl_max_protocol_version": "TLSv1.3",
    "ssl_min_protocol_version": "TLSv1.2",
    "sslcert": "/etc/ssl/client.crt",
    "sslcertmode": "allow",
    "sslcompression": "0",
    "sslcrl": "/etc/ssl/root.crl",
    "sslcrldir": "/etc/ssl/crl",
    "sslkey": "/etc/ssl/client.key",
    "sslmode": "verify-full",
    "sslnegotiation": "postgres",
    "sslpassword": "s3cr3t-key",
    "sslrootcert": "system",
    "sslsni": "1",
    "target_session_attrs": "read-write",
    "tcp_user_timeout": "30000",
    "user": "myuser",
}


def test_the_refused_libpq_parameters_are_the_debug_only_ones() -> None:
    debug_only = {k for k, disp in LIBPQ_OPTIONS.items() if disp == "D"}
    assert "replication" in debug_only
    assert debug_only <= DEBUG_ONLY, "a new debug-only libpq parameter: decide on it"


@pytest.mark.parametrize("keyword", ACCEPTED)
def test_every_libpq_parameter_reaches_the_conninfo(keyword: str) -> None:
    value = VALUES.get(keyword)
    assert value is not None, f"pick a sample value for libpq's new parameter {keyword!r}"
    settings = PoolSettings.from_mapping({keyword: value})
    assert conninfo_to_dict(settings.conninfo) == {keyword: value}
    assert settings.libpq == {keyword: value}


@pytest.mark.parametrize("config_class", [PsycopgAsyncConfig, PsycopgSyncConfig])
def test_sni_and_the_tls_floor_are_accepted(config_class: type) -> None:
    config = config_class(
        connection_config={
            "conninfo": "postgresql://myuser@db.example.com/app?sslmode=verify-full",
            "sslsni": "0",
            "ssl_min_protocol_version": "TLSv1.3",
        }
    )
    params = conninfo_to_dict(config.settings.conninfo)
    assert params["sslsni"] == "0"
    assert params["ssl_min_protocol_version"] == "TLSv1.3"
    assert params["sslmode"] == "verify-full"
    assert params["host"] == "db.example.com"


def test_an_unknown_key_is_refused_by_name_with_a_suggestion() -> None:
    with pytest.raises(ImproperConfigurationError) as info:
        PoolSettings.from_mapping({"host": "db.example.com", "ssl_sni": "1"})
    message = str(info.value)
    assert "'ssl_sni' (did you mean 'sslsni'" in message
    assert "sslsni" in message.split("libpq parameters:")[1]


@pytest.mark.parametrize("keyword", sorted(DEBUG_ONLY & LIBPQ_OPTIONS.keys()))
def test_a_debug_only_parameter_is_refused_as_such(keyword: str) -> None:
    with pytest.raises(ImproperConfigurationError, match=f"'{keyword}' \\(a debug-only libpq"):
        PoolSettings.from_mapping({"host": "db.example.com", keyword: "1"})


def test_libpq_marks_the_password_parameters_secret() -> None:
    assert {"password", "sslpassword"} <= set(SECRETS)


@pytest.mark.parametrize("keyword", SECRETS)
def test_secret_parameters_are_masked(keyword: str) -> None:
    settings = PoolSettings.from_mapping({"host": "db.example.com", keyword: VALUES[keyword]})
    assert VALUES[keyword] not in repr(settings)
    assert VALUES[keyword] not in masked_conninfo(settings.conninfo)
    assert conninfo_to_dict(masked_conninfo(settings.conninfo))[keyword] == "***"
    assert "db.example.com" in repr(settings)


def test_pooler_transaction_turns_server_side_preparing_off() -> None:
    settings = PoolSettings.from_mapping({"pooler": "transaction"})
    assert settings.pooler == "transaction"
    assert settings.prepare_threshold is None
    assert PsycopgSyncConfig({"pooler": "transaction"}).connect_kwargs["prepare_threshold"] is None


def test_pooler_session_and_no_pooler_keep_preparing() -> None:
    assert PoolSettings.from_mapping({"pooler": "session"}).prepare_threshold == 5
    assert PoolSettings.from_mapping({"pooler": None}).prepare_threshold == 5
    assert PoolSettings.from_mapping({}).pooler is None


@pytest.mark.parametrize("value", ["Transaction", "statement", "pgbouncer", ""])
def test_pooler_takes_only_the_pool_modes_it_knows(value: str) -> None:
    with pytest.raises(ImproperConfigurationError, match="'transaction', 'session'"):
        PoolSettings.from_mapping({"pooler": value})


def test_pooler_transaction_refuses_a_prepare_threshold() -> None:
    with pytest.raises(ImproperConfigurationError, match="prepare_threshold"):
        PoolSettings.from_mapping({"pooler": "transaction", "prepare_threshold": 5})
    settings = PoolSettings.from_mapping({"pooler": "transaction", "prepare_threshold": None})
    assert settings.prepare_threshold is None
