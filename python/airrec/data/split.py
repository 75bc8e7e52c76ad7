"""Leave-one-out splitting by time, for sources that come as one log of interactions.

The LLMCDSR files arrive already split; interaction tables and RecBole files do not. We use
the protocol of SASRec/RecBole's leave-one-out: sort each user's events by time, hold out the
last ``test`` events as test targets and the ``valid`` events before them as validation
targets, and train on the rest. A held-out line's history is *everything before its target*
(so the test history includes the validation target), exactly what a model would have seen
when serving that request. Users too short to give ``min_train`` training events plus the
held-out ones keep all their events in train and get no valid/test lines, rather than being
evaluated on an empty history.

Tables that come split (a ``split`` column) use :func:`premade_split` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from airrec.data.dataset import FloatArray, IntArray, Split
from airrec.errors import ConfigError, DataError

__all__ = ["LeaveOneOut", "leave_one_out", "premade_split"]


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


def _user_runs(users: IntArray, who: str) -> tuple[IntArray, IntArray]:
    """First event index and event count of each user's run (events sorted by user)."""
    n = users.size
    if n and np.any(np.diff(users) < 0):
        raise ValueError(f"{who} needs events sorted by user")
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if n else np.zeros(0, np.int64)
    starts = starts.astype(np.int64)
    return starts, np.diff(np.r_[starts, n]).astype(np.int64)


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
    starts, counts = _user_runs(users, "leave_one_out")
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


def premade_split(
    users: IntArray,
    items: IntArray,
    behaviours: IntArray,
    timestamps: FloatArray,
    labels: IntArray,
    *,
    user_names: Sequence[str] | None = None,
) -> tuple[Split, Split, Split]:
    """Split events by their ``split`` label (0 train, 1 valid, 2 test, 3 history).

    Train holds each user's ``train`` events (users without any have no train line). Every
    ``valid``/``test`` event is one line's target, and its history is all of the user's earlier
    events whatever their label; ``history`` events are only ever history. Arrays are sorted by
    user, then time, as for :func:`leave_one_out`. A target with no earlier event is an error
    (its history would be empty).
    """
    n = users.size
    starts, counts = _user_runs(users, "premade_split")
    user_start = np.repeat(starts, counts)

    is_train = labels == 0
    train_users = users[starts]
    n_train = np.add.reduceat(is_train.astype(np.int64), starts) if n else np.zeros(0, np.int64)
    keep = n_train > 0
    offsets = np.zeros(int(keep.sum()) + 1, dtype=np.int64)
    np.cumsum(n_train[keep], out=offsets[1:])
    train = Split(
        name="train", offsets=offsets, items=items[is_train], behaviours=behaviours[is_train],
        timestamps=timestamps[is_train], users=train_users[keep],
        sources=np.zeros(int(keep.sum()), dtype=np.uint8), source_names=("train",),
    )

    def held_out(name: str, label: int) -> Split:
        ends = np.flatnonzero(labels == label).astype(np.int64)
        s = user_start[ends]
        empty = ends == s
        if np.any(empty):
            u = int(users[ends[np.argmax(empty)]])
            who = repr(user_names[u]) if user_names is not None else str(u)
            raise DataError(f"user {who}: a {name} row has no earlier event of its user (its history would be "
                            "empty); give it history rows or drop it")
        return _prefix_lines(name, s, ends, users[ends], items, behaviours, timestamps)

    return train, held_out("valid", 1), held_out("test", 2)
