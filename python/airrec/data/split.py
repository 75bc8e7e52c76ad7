"""Leave-one-out splitting by time, for sources that come as one log of interactions.

The LLMCDSR files arrive already split; interaction tables and RecBole files do not. We use
the protocol of SASRec/RecBole's leave-one-out: sort each user's events by time, hold out the
last ``test`` events as test targets and the ``valid`` events before them as validation
targets, and train on the rest. A held-out line's history is *everything before its target*
(so the test history includes the validation target), exactly what a model would have seen
when serving that request. Users too short to give ``min_train`` training events plus the
held-out ones keep all their events in train and get no valid/test lines, rather than being
evaluated on an empty history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from airrec.data.dataset import FloatArray, IntArray, Split
from airrec.errors import ConfigError

__all__ = ["LeaveOneOut", "leave_one_out"]


@dataclass(frozen=True)
class LeaveOneOut:
    """How many of each user's last events become test and validation targets.

    ``valid=1, test=1`` (the default) is the usual "second-last → valid, last → test".
    ``valid=0`` gives an empty validation split; ``test=2`` makes two test lines per user
    (histories ending before the second-last and the last event).
    """

    valid: int = 1
    test: int = 1
    min_train: int = 1

    def __post_init__(self) -> None:
        for field in ("valid", "test", "min_train"):
            value = getattr(self, field)
            if type(value) is not int or value < 0:
                raise ConfigError(f"LeaveOneOut.{field} must be a non-negative int, got {value!r}")
        if self.min_train < 1:
            raise ConfigError("LeaveOneOut.min_train must be at least 1 (a history to start from)")


def _prefix_lines(
    name: str,
    starts: IntArray,
    ends: IntArray,
    users: IntArray,
    items: IntArray,
    behaviours: IntArray,
    timestamps: FloatArray,
) -> Split:
    """Lines whose history is events ``[start, end)`` and whose target is event ``end``."""
    lengths = ends - starts
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # Flat event indices of every history: start of its line plus position within it.
    index = np.arange(int(offsets[-1]), dtype=np.int64) + np.repeat(starts - offsets[:-1], lengths)
    return Split(
        name=name,
        offsets=offsets,
        items=items[index],
        behaviours=behaviours[index],
        timestamps=timestamps[index],
        users=users,
        sources=np.zeros(lengths.size, dtype=np.uint8),
        source_names=(name,),
        targets=items[ends],
        target_behaviours=behaviours[ends],
        target_timestamps=timestamps[ends],
    )


def leave_one_out(
    users: IntArray,
    items: IntArray,
    behaviours: IntArray,
    timestamps: FloatArray,
    config: LeaveOneOut = LeaveOneOut(),
) -> tuple[Split, Split, Split]:
    """Split events into train/valid/test splits.

    The four arrays describe one event each and must already be sorted by user, then time
    (ties in the source's order): readers do that once with a stable sort.
    """
    n = users.size
    if n and np.any(np.diff(users) < 0):
        raise ValueError("leave_one_out needs events sorted by user")
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if n else np.zeros(0, np.int64)
    starts = starts.astype(np.int64)
    counts = np.diff(np.r_[starts, n]).astype(np.int64)
    line_users = users[starts]
    held = config.valid + config.test
    eligible = counts >= config.min_train + held
    n_train = np.where(eligible, counts - held, counts)

    train_offsets = np.zeros(starts.size + 1, dtype=np.int64)
    np.cumsum(n_train, out=train_offsets[1:])
    position = np.arange(n, dtype=np.int64) - np.repeat(starts, counts)
    in_train = position < np.repeat(n_train, counts)
    train = Split(
        name="train",
        offsets=train_offsets,
        items=items[in_train],
        behaviours=behaviours[in_train],
        timestamps=timestamps[in_train],
        users=line_users,
        sources=np.zeros(starts.size, dtype=np.uint8),
        source_names=("train",),
    )

    e_starts, e_train, e_users = starts[eligible], n_train[eligible], line_users[eligible]

    def held_out(name: str, first: int, count: int) -> Split:
        # Line j of user u targets event (start_u + n_train_u + first + j); one line per
        # (user, j), grouped by user so a user's lines stay together and in time order.
        j = np.tile(np.arange(count, dtype=np.int64), e_starts.size)
        s = np.repeat(e_starts, count)
        ends = s + np.repeat(e_train, count) + first + j
        return _prefix_lines(
            name, s, ends, np.repeat(e_users, count), items, behaviours, timestamps
        )

    return train, held_out("valid", 0, config.valid), held_out("test", config.valid, config.test)
