"""Open exposures shared by the tasks of one process (a mosaic build's reads).

Opening a FITS file (header parsing, ~8 ms) costs more than reading a shard's
rows of it, and a detector is needed by every shard row it spans, so files stay
open between tasks.  A file is closed after its last expected use
(:meth:`ExposureCache.expect`) or when it is the least recently used of
``capacity``: memory-mapped pages count in the resident size while a file is open.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass

__all__ = ["EXPOSURES", "ExposureCache", "ReadOptions", "open_file_budget"]


def open_file_budget(most: int = 256) -> int:
    """How many input files a process may keep open: ``most``, or a quarter of its
    descriptor limit if that is lower (a file held open costs a descriptor and a
    map of address space, not memory: pages are released after each read).

    Reopening costs a header parse (~1-8 ms), and a binning-8 build of the
    focal plane reads every detector in two shard rows: with room for only 24
    files, 205 detectors were opened 415 times, plus once to identify them.
    """
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 24
    if soft == resource.RLIM_INFINITY:
        return most
    return max(8, min(most, soft // 4))


@dataclass(frozen=True)
class ReadOptions:
    """How raw files are read (:func:`cpmosaic.io.open_exposure` keywords).

    >>> ReadOptions().overscan, ReadOptions(apply_gains=True).apply_gains
    ('median', True)
    """

    overscan: str = "median"
    apply_gains: bool = False

    def to_dict(self) -> dict:
        return {"overscan": self.overscan, "apply_gains": bool(self.apply_gains)}


class _Entry:
    __slots__ = ("closed", "exposure", "lock")

    def __init__(self, exposure) -> None:
        self.exposure, self.lock, self.closed = exposure, threading.Lock(), False


def _key(path: str, camera, options: ReadOptions) -> tuple:
    # No os.stat here: a read is a few hundred microseconds and the cache lives for
    # one build (cleared at its end), during which inputs are not expected to change.
    return (path, camera.name, len(camera), camera.detectors[0].pixel_size_mm, options)


class ExposureCache:
    """Open exposures of one process, keyed by path, camera and :class:`ReadOptions`.

    Reads of one file are serialised by its lock (astropy objects are not known
    to be thread safe).

    Examples
    --------
    >>> cache = ExposureCache(capacity=4)
    >>> cache.expect({"a.fits": 2}); cache.clear()
    """

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = open_file_budget() if capacity is None else capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._uses: Counter = Counter()

    def expect(self, uses: dict[str, int]) -> None:
        """Announce how many reads each path will get (then it is closed)."""
        with self._lock:
            self._uses.update(uses)

    def adopt(self, path: str, exposure, camera, options: ReadOptions) -> bool:
        """Take over an open exposure of ``path`` for reads with ``camera`` and
        ``options``; False (and nothing taken) when it does not fit.

        A processed or plain image reads the same whatever the camera and options;
        a raw only when it was opened with this camera (its overscan options are set).
        """
        if exposure.info.kind == "raw":
            if exposure.camera is not camera:
                return False
            exposure.overscan, exposure.apply_gains = options.overscan, bool(options.apply_gains)
        key = _key(path, camera, options)
        with self._lock:
            if key in self._entries:
                return False
            self._entries[key] = _Entry(exposure)
            self._evict()
        return True

    def read(self, path: str, camera, options: ReadOptions, rows: slice, *, stored: bool = False, out=None):
        """``open_exposure(path, camera, **options).read(rows=rows)``, reusing an open file.

        ``stored``: :meth:`~cpmosaic.io.Exposure.read_stored` instead (maybe
        big-endian, maybe a view into the file map, which stays valid after the
        file is closed here as long as the view lives, or into ``out``).
        """
        from . import open_exposure

        key = _key(path, camera, options)
        while True:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
            if entry is None:
                exp = open_exposure(path, camera, overscan=options.overscan, apply_gains=options.apply_gains)
                spare = None
                with self._lock:
                    entry = self._entries.get(key)
                    if entry is None:
                        entry = self._entries[key] = _Entry(exp)
                        self._evict()
                    else:
                        spare = exp  # another thread opened it meanwhile
                if spare is not None:
                    spare.close()
            with entry.lock:
                if entry.closed:
                    continue  # evicted between lookup and lock: open again
                data = entry.exposure.read_stored(rows, out) if stored else entry.exposure.read(rows=rows)
            done = False
            with self._lock:
                if path in self._uses:
                    self._uses[path] -= 1
                    if self._uses[path] <= 0:
                        del self._uses[path]
                        if self._entries.get(key) is entry:
                            del self._entries[key]
                        done = True
            if done:
                self._close(entry)
            return data

    def release(self, path: str, camera, options: ReadOptions, rows: slice | None = None) -> None:
        """Unmap the pages reads of ``rows`` of ``path`` touched (:meth:`cpmosaic.io.Exposure.release_pages`),
        once the caller is done with what :meth:`read` returned; the file stays open."""
        with self._lock:
            entry = self._entries.get(_key(path, camera, options))
        if entry is not None:
            with entry.lock:
                if not entry.closed:
                    entry.exposure.release_pages(rows)

    def _evict(self) -> None:
        while len(self._entries) > self.capacity:
            _, old = self._entries.popitem(last=False)
            # closing waits for a read in progress; not under the cache lock
            threading.Thread(target=self._close, args=(old,), daemon=True).start()

    @staticmethod
    def _close(entry: _Entry) -> None:
        with entry.lock:
            if not entry.closed:
                entry.closed = True
                entry.exposure.close()

    def clear(self) -> None:
        """Close every open exposure and forget expected uses."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
            self._uses.clear()
        for e in entries:
            self._close(e)


#: The process-wide cache the build tasks read through.
EXPOSURES = ExposureCache()
