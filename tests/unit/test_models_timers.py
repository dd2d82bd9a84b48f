"""wirelab.models.timers: the tick, the delayed-ACK timeout and the RTO as whole jiffies."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.models.timers import (
    TCP_TIMEOUT_INIT_MS,
    ato_min_ms,
    delack_max_ms,
    hz_of,
    jiffy_ms,
    nominal_rto_ms,
    rto_min_ms,
)


def test_hz_comes_from_the_kernel_facts_and_is_required():
    assert hz_of(kernel_facts(hz=250)) == 250
    assert hz_of({"hz": "1000"}) == 1000
    for facts in ({"sysctls": {}}, {"hz": None}, {"hz": 0}):
        with pytest.raises(ValueError, match="hz"):
            hz_of(facts)


@pytest.mark.parametrize("hz, jiffy", [(100, 10.0), (250, 4.0), (300, 1000 / 300), (1000, 1.0)])
def test_jiffy_length(hz, jiffy):
    assert jiffy_ms(hz) == pytest.approx(jiffy)


@pytest.mark.parametrize("hz", [100, 250, 300, 1000])
def test_ato_min_is_40_ms_at_the_usual_tick_rates(hz):
    assert ato_min_ms(hz) == pytest.approx(40.0)


def test_ato_min_is_whole_jiffies_by_integer_division():
    # HZ/25 in C: at HZ=24 that is 0 jiffies, at HZ=64 2 jiffies of 15.625 ms.
    assert ato_min_ms(24) == 0.0
    assert ato_min_ms(64) == pytest.approx(31.25)


@pytest.mark.parametrize("hz", [100, 250, 300, 1000])
def test_rto_min_and_delack_max_are_200_ms(hz):
    assert rto_min_ms(hz) == pytest.approx(200.0)
    assert delack_max_ms(hz) == pytest.approx(200.0)
    assert TCP_TIMEOUT_INIT_MS == 1000.0


@pytest.mark.parametrize("r, hz, rto", [(50, 100, 260.0), (50, 250, 252.0), (50, 1000, 251.0),
                                        (10, 100, 220.0), (55, 100, 260.0)])
def test_nominal_rto_is_the_first_jiffy_above_r_plus_rto_min(r, hz, rto):
    assert nominal_rto_ms(r, hz) == pytest.approx(rto)
