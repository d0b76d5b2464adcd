"""Review 2 of `core.bulk.collected_per_chunk` (3b3367f): "Restored on the way out" holds only for a
process that had nothing frozen. On exit it calls gc.unfreeze(), which thaws everything in the
permanent generation, not just what it froze: a server that froze its start-up objects (gc.freeze()
before forking workers, the documented copy-on-write practice) loses that after one bill run, and a
nested use (an outer chunk loop around another) has its freeze undone by the inner one's exit, so
the outer loop's collect() walks every object again. They guard the fix: it thaws only where nothing
was frozen before."""
import gc

from obol.core.bulk import collected_per_chunk


def test_a_freeze_from_before_is_kept():
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        assert before > 0
        with collected_per_chunk():
            pass
        assert gc.get_freeze_count() >= before
    finally:
        gc.unfreeze()


def test_an_inner_use_leaves_the_outer_freeze_alone():
    with collected_per_chunk():
        frozen = gc.get_freeze_count()
        with collected_per_chunk():
            pass
        assert not gc.isenabled()
        assert gc.get_freeze_count() >= frozen  # the outer loop's objects stay out of its collect()
    assert gc.isenabled()
