"""Run an iterator one item ahead in a worker thread.

The denoiser phase draws its random numbers (the diffusion noise and the input-dropout mask)
from torch's CPU generator, which is one serial stream: drawn in line, one core waits while
the other draws. Drawing the next batch's numbers in a worker thread, in the same order from
the same generator, overlaps them with the current batch's matrix products and leaves every
draw, and so every result, unchanged. torch's operations release the GIL, so the thread runs
in parallel with the main one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["Prefetch"]

T = TypeVar("T")

_DONE = object()


class Prefetch(Generic[T]):
    """Iterate over ``source`` with its next item made in a worker thread, at most one ahead.

    At most two items exist at a time: the one the caller holds (until it asks for the next)
    and the one being made, so the memory cost is one item. Exceptions raised by ``source``
    are raised by ``next()``. Use it as a context manager (or call :meth:`close`): leaving the
    loop early stops the worker before it makes another item.

    Examples
    --------
    >>> with Prefetch(iter(range(3))) as items:
    ...     list(items)
    [0, 1, 2]
    """

    def __init__(self, source: Iterator[T]) -> None:
        self._source = source
        self._items: queue.Queue = queue.Queue(maxsize=1)
        self._may_make = threading.Semaphore(1)  # the first item is made straight away
        self._closed = False
        self._exhausted = False
        self._worker = threading.Thread(target=self._run, name="diffmm-prefetch", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        try:
            while True:
                self._may_make.acquire()
                if self._closed:
                    return
                try:
                    item = next(self._source)
                except StopIteration:
                    self._items.put((_DONE, None))
                    return
                self._items.put((item, None))
                del item
        except BaseException as exc:  # handed to the consumer, raised there
            self._items.put((_DONE, exc))

    def __iter__(self) -> Prefetch[T]:
        return self

    def __next__(self) -> T:
        if self._exhausted:
            raise StopIteration
        item, error = self._items.get()
        if item is _DONE:
            self._exhausted = True
            self._worker.join()
            if error is not None:
                raise error
            raise StopIteration
        self._may_make.release()  # the caller is done with the item before: make the next
        return item

    def close(self) -> None:
        """Stop the worker (it finishes the item it is making) and drop what it made."""
        self._closed = True
        self._may_make.release()
        while self._worker.is_alive():
            try:
                self._items.get(timeout=0.01)
            except queue.Empty:
                pass
        self._exhausted = True

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
