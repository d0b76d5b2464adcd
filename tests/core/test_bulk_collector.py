"""`collected_per_chunk`: inside a mass process's loop the cycle collector only runs when asked, and
the process gets its usual collector back afterwards, even when the loop fails (a web process runs
bill runs too)."""
import gc

import pytest

from obol.core.bulk import collected_per_chunk


class Cycle:
    def __init__(self):
        self.me = self


def test_the_collector_runs_only_when_asked_and_comes_back():
    assert gc.isenabled()
    with collected_per_chunk() as collect:
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0  # what was alive is left out of the walks
        Cycle()  # garbage only the cycle collector can free
        assert collect() >= 1
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_the_collector_comes_back_when_the_loop_fails():
    with pytest.raises(RuntimeError), collected_per_chunk():
        raise RuntimeError("a chunk failed")
    assert gc.isenabled() and gc.get_freeze_count() == 0
