"""Raw user and item ids, and the contiguous indices the model works with.

:class:`IdMap` is part of a fitted model's state (its users and items); it is built from
validated id columns (see ``_validation``) and answers lookups in both directions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ._errors import InvalidInputError, UnknownIdError

__all__ = ["IdMap", "UnknownIdError"]


class IdMap:
    """A bijection between raw ids and contiguous indices ``0..n-1``.

    Ids are kept sorted when they are mutually comparable (so integer ids ``0..n-1`` map to
    themselves), in order of first appearance otherwise.

    Examples
    --------
    >>> m = IdMap.from_values(["b", "a", "b"])
    >>> m.ids, m.index(["a", "b"])
    (array(['a', 'b'], dtype='<U1'), array([0, 1]))
    """

    def __init__(self, ids: np.ndarray, *, what: str = "id") -> None:
        self.ids = np.asarray(ids)
        self.what = what
        # Sorted ids are looked up by binary search; any other order (e.g. after new ids were
        # appended) through a dict.
        self._sorted = self.ids.dtype.kind in "iuUS" and bool(
            len(self.ids) < 2 or np.all(self.ids[1:] > self.ids[:-1])
        )
        self._lookup: dict[Any, int] | None = None
        if not self._sorted:
            self._lookup = {v: i for i, v in enumerate(self.ids.tolist())}
            if len(self._lookup) != len(self.ids):
                raise InvalidInputError(f"{what} ids must be unique.")

    @classmethod
    def from_values(cls, values: np.ndarray | Iterable, *, what: str = "id") -> IdMap:
        values = np.asarray(values)
        if values.dtype.kind in "iuUS":
            return cls(np.unique(values), what=what)
        try:
            ids = np.unique(values)
        except TypeError:  # mixed, incomparable types
            ids = np.array(list(dict.fromkeys(values.tolist())), dtype=object)
            return cls(ids, what=what)
        return cls(np.asarray(ids, dtype=object), what=what)

    @classmethod
    def range(cls, n: int, *, what: str = "id") -> IdMap:
        return cls(np.arange(n, dtype=np.int64), what=what)

    def __len__(self) -> int:
        return len(self.ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and np.array_equal(self.ids, other.ids)

    def __hash__(self) -> int:  # pragma: no cover - IdMap is not meant as a dict key
        return id(self)

    def contains(self, values: Any) -> np.ndarray:
        """Boolean mask: which of ``values`` are known ids."""
        return self._positions(np.asarray(values))[1]

    def _positions(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values = np.atleast_1d(values)
        if self._lookup is not None:
            pos = np.array([self._lookup.get(v, -1) for v in values.tolist()], dtype=np.int64)
            return pos, pos >= 0
        if len(self.ids) == 0:
            return np.full(len(values), -1, dtype=np.int64), np.zeros(len(values), dtype=bool)
        try:
            pos = np.searchsorted(self.ids, values)
        except TypeError:  # values of another kind (e.g. strings against integer ids)
            return np.full(len(values), -1, dtype=np.int64), np.zeros(len(values), dtype=bool)
        pos = np.minimum(pos, len(self.ids) - 1)
        found = self.ids[pos] == values
        found = np.asarray(found, dtype=bool).reshape(len(values))
        return np.where(found, pos, -1).astype(np.int64), found

    def index(self, values: Any, *, name: str | None = None) -> np.ndarray:
        """Map raw ids to indices, raising :class:`UnknownIdError` for unknown ones."""
        label = name or f"{self.what} ids"
        if isinstance(values, (list, tuple)) and any(
            isinstance(v, (bool, np.bool_)) for v in values
        ):  # NumPy would turn [0, True] into [0, 1]
            raise InvalidInputError(f"{label} contain booleans; ids must be integers or strings.")
        if np.ma.isMaskedArray(values) and np.ma.is_masked(values):
            raise InvalidInputError(f"{label} is a masked array; drop the masked ids first.")
        try:
            arr = np.asarray(values)
        except ValueError:  # ragged nested sequences
            raise InvalidInputError(f"{label} must be a 1-D array of {self.what} ids.") from None
        if arr.ndim != 1:
            raise InvalidInputError(
                f"{label} must be a 1-D array of {self.what} ids, got shape {arr.shape}."
            )
        if arr.dtype.kind == "b":
            raise InvalidInputError(f"{label} are booleans; ids must be integers or strings.")
        if (
            arr.dtype.kind == "f"
            and arr.size
            and np.all(np.isfinite(arr))
            and np.all(arr == np.round(arr))
            and np.all(np.abs(arr) < 2**63)
        ):
            arr = arr.astype(np.int64)
        pos, found = self._positions(arr)
        if not np.all(found):
            unknown = np.atleast_1d(arr)[~found]
            shown = ", ".join(repr(v) for v in unknown[:5].tolist())
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise UnknownIdError(
                f"{label}: {len(unknown)} unknown {self.what}(s) ({shown}{more}); the model only "
                f"knows the {len(self)} {self.what}s it was fitted on."
            )
        return pos

    def to_ids(self, indices: np.ndarray) -> np.ndarray:
        """Raw ids of ``indices``; index ``-1`` ("no item here") becomes :attr:`missing`."""
        indices = np.asarray(indices)
        out = self.ids[np.where(indices < 0, 0, indices)] if len(self.ids) else self.ids[:0]
        if np.any(indices < 0):
            out = out.copy()
            out[indices < 0] = self.missing
        return out

    @property
    def missing(self) -> Any:
        """The id that marks "no id here" in outputs: it is never a real id.

        ``-1`` for integer ids (ids are non-negative), ``""`` for string ids (an empty string
        is never an id), ``None`` otherwise.
        """
        kind = self.ids.dtype.kind
        return -1 if kind in "iu" else "" if kind in "US" else None

    def extended(self, new_ids: np.ndarray) -> IdMap:
        """A map with ``new_ids`` appended after the known ids (whose indices stay the same).

        The ids keep an integer or string dtype when old and new ids all share it.
        """
        combined = np.concatenate([self.ids.astype(object), np.asarray(new_ids).astype(object)])
        if combined.size and all(isinstance(v, (int, np.integer)) for v in combined):
            combined = combined.astype(np.int64)
        elif all(isinstance(v, str) for v in combined):
            combined = combined.astype(str)
        return IdMap(combined, what=self.what)
