"""wirelab.models.tls: round trips before the client's first application byte, and the
names the tools give each TLS version."""
from __future__ import annotations

import pytest

from wirelab.models.tls import PROTOCOL_NAME, VERSIONS, handshake_round_trips


@pytest.mark.parametrize("version, resumed, early, n", [
    ("1.2", False, False, 2),    # CH -> SH..Done | CKE,CCS,Fin -> CCS,Fin | data
    ("1.2", True, False, 1),     # ticket: CH -> SH,CCS,Fin | CCS,Fin,data
    ("1.3", False, False, 1),    # CH -> SH..Fin | Fin,data
    ("1.3", True, False, 1),     # PSK: still one flight before the client's Finished
    ("1.3", True, True, 0),      # early data rides with the ClientHello
])
def test_round_trips_per_handshake(version, resumed, early, n):
    assert handshake_round_trips(version, resumed, early) == n


def test_a_full_handshake_is_the_default():
    assert handshake_round_trips("1.2") == 2
    assert handshake_round_trips("1.3") == 1


@pytest.mark.parametrize("version, resumed", [("1.2", True), ("1.2", False), ("1.3", False)])
def test_early_data_needs_a_resumed_tls13_session(version, resumed):
    with pytest.raises(ValueError, match="early data"):
        handshake_round_trips(version, resumed, early_data=True)


@pytest.mark.parametrize("version", ["1.1", "1.0", "TLSv1.3", "3"])
def test_unknown_versions_are_refused(version):
    with pytest.raises(ValueError, match="TLS version"):
        handshake_round_trips(version)


def test_protocol_names_as_openssl_nginx_and_python_spell_them():
    assert PROTOCOL_NAME == {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}
    assert set(PROTOCOL_NAME) == set(VERSIONS)
