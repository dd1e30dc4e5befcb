"""fme._native.read_ahead, the activation stream's prefetch of its next window's chunks: the advice is given
where a page of the range is not in the page cache, and only there."""

import numpy as np
import pytest


def test_read_ahead_advises_only_where_a_page_is_missing(tmp_path):
    """A range of a file map with pages not in the page cache (a sparse file's never-written hole) gets the
    advice; written pages, resident, do not."""
    try:
        from fme._native import read_ahead
    except ImportError:
        pytest.fail("fme._native was not built into the installed package (build target fme_native)")

    hole, written = tmp_path / "hole.bin", tmp_path / "written.bin"
    with open(hole, "wb") as f:
        f.truncate(4 << 20)
    written.write_bytes(np.arange(1 << 20, dtype=np.uint32).tobytes())
    for path, want in ((hole, True), (written, False)):
        m = np.memmap(path, dtype=np.uint8, mode="r")
        assert read_ahead(m[5000:3 << 20]) is want, path.name
        assert read_ahead(m[:0]) is False
    assert read_ahead(np.zeros(3)) is False  # anonymous memory is always resident once written
