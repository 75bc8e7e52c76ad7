"""The interactions + items table reader (CSV, TSV, gzip, Parquet) and its leave-one-out split."""

from __future__ import annotations

import gzip
import importlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from airrec.data import LeaveOneOut, read_tables
from airrec.errors import ConfigError, DataError

INTERACTIONS = """\
user,item,domain,behavior,timestamp
u1,i1,food,click,2024-01-01T00:00:00
u1,i2,food,order,2024-01-02
u2,k1,kitchen,cart,5
u1,k1,kitchen,click,1704240000
u1,i3,food,click,2024-01-04T00:00:00Z
u2,k2,kitchen,click,6
u2,i1,food,click,7
u3,i1,food,click,1
u3,i2,food,click,2
"""
ITEMS = """\
item,domain,text
i1,food,"Green tea, matcha"
i2,food,Curry paste
k1,kitchen,Cast iron pan
k2,kitchen,
k9,kitchen,Unused kettle
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def csv_pair(tmp_path: Path) -> tuple[Path, Path]:
    return write(tmp_path / "events.csv", INTERACTIONS), write(tmp_path / "items.csv", ITEMS)


def test_csv_with_items(csv_pair: tuple[Path, Path]) -> None:
    ds = read_tables(*csv_pair)
    assert ds.name == "events" and ds.domain_names == ("food", "kitchen")
    # Items: domain by domain, then first appearance (items table first, then interactions).
    assert ds.items.external_ids == ("i1", "i2", "i3", "k1", "k2", "k9")
    assert ds.items.domains.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.items.texts == (
        "Green tea, matcha",
        "Curry paste",
        "",
        "Cast iron pan",
        "",
        "Unused kettle",
    )
    assert ds.behaviour_names == ("click", "order", "cart")
    assert ds.user_external_ids == ("u1", "u2", "u3") and not ds.timestamps_are_positions

    # u1: i1 < i2 < k1 < i3 by time (mixed ISO and epoch); u2: k1 < k2 < i1; u3 too short.
    assert ds.train.offsets.tolist() == [0, 2, 3, 5]
    assert ds.train.items.tolist() == [0, 1, 3, 0, 1]
    assert ds.train.users.tolist() == [0, 1, 2]
    assert ds.valid.users.tolist() == [0, 1]
    assert ds.valid.targets is not None and ds.valid.targets.tolist() == [3, 4]
    assert ds.test.targets is not None and ds.test.targets.tolist() == [2, 0]
    assert ds.test.history(0).items.tolist() == [0, 1, 3]  # includes the valid target
    assert ds.test.target_behaviours is not None and ds.test.target_behaviours.tolist() == [0, 0]
    assert ds.valid.target_behaviours is not None and ds.valid.target_behaviours.tolist() == [0, 0]
    assert ds.test.history(1).behaviours.tolist() == [2, 0]
    assert ds.describe()["items.kitchen.no_text"] == 1


def test_pinned_behaviours_and_domains(csv_pair: tuple[Path, Path]) -> None:
    ds = read_tables(*csv_pair, behaviours=("click", "cart", "order"), domains=("kitchen", "food"))
    assert ds.behaviour_names == ("click", "cart", "order")
    assert ds.items.external_ids[:3] == ("k1", "k2", "k9")
    with pytest.raises(DataError, match=r"events\.csv:3: unknown behaviour 'order'"):
        read_tables(*csv_pair, behaviours=("click", "cart"))


def test_no_optional_columns(tmp_path: Path) -> None:
    events = write(tmp_path / "e.csv", "user,item\na,x\nb,y\na,y\na,z\nb,x\nb,z\n")
    ds = read_tables(events)
    assert ds.domain_names == ("default",) and ds.behaviour_names == ("interaction",)
    assert ds.timestamps_are_positions
    assert ds.test.targets is not None and ds.test.targets.tolist() == [2, 2]
    assert ds.test.history(0).timestamps.tolist() == [0.0, 1.0]
    assert ds.test.target_timestamps is not None and ds.test.target_timestamps.tolist() == [
        2.0,
        2.0,
    ]


def test_domain_inferred_from_items_table(tmp_path: Path) -> None:
    events = write(tmp_path / "e.csv", "user,item\na,x\na,k\na,y\n")
    items = write(tmp_path / "i.csv", "item,domain\nx,A\ny,A\nk,B\n")
    ds = read_tables(events, items)
    assert ds.domain_of(ds.test.targets if ds.test.targets is not None else []).tolist() == [0]
    assert ds.items.domains.tolist() == [0, 0, 1]
    unknown = write(tmp_path / "e2.csv", "user,item\na,x\na,zz\n")
    with pytest.raises(DataError, match=r"e2\.csv:3: cannot tell the domain of item 'zz'"):
        read_tables(unknown, items)


def test_same_item_id_in_two_domains_is_two_items(tmp_path: Path) -> None:
    events = write(tmp_path / "e.csv", "user,item,domain\na,1,A\na,1,B\na,2,A\n")
    ds = read_tables(events)
    assert ds.n_items == 3 and ds.items.external_ids == ("1", "2", "1")
    items = write(tmp_path / "i.csv", "item,domain\n1,A\n1,B\n")
    ambiguous = write(tmp_path / "e3.csv", "user,item\na,1\n")
    with pytest.raises(DataError, match=r"e3\.csv:2: item '1' is in several domains"):
        read_tables(ambiguous, items)


def test_tsv_and_gzip(tmp_path: Path) -> None:
    tsv = write(tmp_path / "e.tsv", INTERACTIONS.replace(",", "\t"))
    gz = tmp_path / "e.csv.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write(INTERACTIONS)
    a, b = read_tables(tsv), read_tables(gz)
    assert np.array_equal(a.test.items, b.test.items) and a.n_items == b.n_items == 5


def test_split_config(csv_pair: tuple[Path, Path]) -> None:
    ds = read_tables(*csv_pair, split=LeaveOneOut(valid=0, test=2))
    assert len(ds.valid) == 0
    assert ds.test.users.tolist() == [0, 0, 1, 1]
    assert ds.test.lengths.tolist() == [2, 3, 1, 2]
    ds = read_tables(*csv_pair, split=LeaveOneOut(min_train=3))
    assert ds.test.users.tolist() == []  # nobody has 3 + 2 events
    with pytest.raises(ConfigError):
        LeaveOneOut(valid=-1)


BAD_EVENTS = [
    ("user,item,timestamp\na,x,1\nb,y\n", 3, "2 fields, the header has 3"),
    ("user,item,timestamp\na,x,1\n ,y,2\n", 3, "empty user"),
    ("user,item,timestamp\na,x,1\nb,y,yesterday\n", 3, "neither a number nor an ISO-8601 date"),
    ("user,item,timestamp\na,x,1\nb,y,nan\n", 3, "not finite"),
    ("user,item,behaviour\na,x,click\nb,y,\n", 3, "empty behaviour"),
    ('user,item\na,x\nb,"y\n', 3, "malformed CSV"),
    ("user,timestamp\na,1\n", 1, "missing column(s) item"),
    ("user,item,item\na,x,y\n", 1, "column 'item' appears twice"),
]


@pytest.mark.parametrize(("content", "line", "fragment"), BAD_EVENTS)
def test_bad_interaction_rows(tmp_path: Path, content: str, line: int, fragment: str) -> None:
    path = write(tmp_path / "bad.csv", content)
    with pytest.raises(DataError) as err:
        read_tables(path)
    assert f"{path}:{line}:" in str(err.value)
    assert fragment in str(err.value)


def test_bad_item_rows(tmp_path: Path) -> None:
    events = write(tmp_path / "e.csv", "user,item\na,x\n")
    items = write(tmp_path / "i.csv", "item,text\nx,one\ny,two\nx,three\n")
    with pytest.raises(DataError, match=r"i\.csv:4: item 'x' is already listed at .*i\.csv:2"):
        read_tables(events, items)


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_tables(tmp_path / "none.csv")
    with pytest.raises(DataError, match="unknown table format"):
        read_tables(write(tmp_path / "e.json", "{}"))
    with pytest.raises(DataError, match="empty file"):
        read_tables(write(tmp_path / "e.csv", ""))
    with pytest.raises(DataError, match="no interactions"):
        read_tables(write(tmp_path / "h.csv", "user,item\n"))
    (tmp_path / "latin.csv").write_bytes(b"user,item\na,x\nb,caf\xe9\n")
    with pytest.raises(DataError, match=r"latin\.csv:3: not UTF-8"):
        read_tables(tmp_path / "latin.csv")


def test_parquet_without_pyarrow_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.import_module

    def no_pyarrow(name: str, package: str | None = None) -> ModuleType:
        if name.startswith("pyarrow"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_pyarrow)
    with pytest.raises(
        DataError, match=r"e\.parquet: reading Parquet needs pyarrow.*pip install pyarrow"
    ):
        read_tables(tmp_path / "e.parquet")


def test_parquet_matches_csv(tmp_path: Path, csv_pair: tuple[Path, Path]) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import datetime as dt

    rows = [line.split(",") for line in INTERACTIONS.splitlines()[1:]]
    table = pa.table(
        {
            "user": [r[0] for r in rows],
            "item": [r[1] for r in rows],
            "domain": [r[2] for r in rows],
            "behaviour": [r[3] for r in rows],
            "timestamp": [r[4] for r in rows],
        }
    )
    pq.write_table(table, tmp_path / "e.parquet")
    items = pa.table(
        {
            "item": ["i1", "i2", "k1", "k2", "k9"],
            "domain": ["food", "food", "kitchen", "kitchen", "kitchen"],
            "text": ["Green tea, matcha", "Curry paste", "Cast iron pan", None, "Unused kettle"],
        }
    )
    pq.write_table(items, tmp_path / "i.parquet")
    a, b = read_tables(tmp_path / "e.parquet", tmp_path / "i.parquet"), read_tables(*csv_pair)
    assert a.items.texts == b.items.texts and a.items.external_ids == b.items.external_ids
    for name in ("train", "valid", "test"):
        sa, sb = a.split(name), b.split(name)
        assert np.array_equal(sa.items, sb.items) and np.array_equal(sa.offsets, sb.offsets)
        assert np.array_equal(sa.timestamps, sb.timestamps)

    # Native timestamp and integer id columns work too.
    native = pa.table(
        {
            "user": [1, 1, 1],
            "item": [10, 11, 12],
            "timestamp": [dt.datetime(2024, 1, d) for d in (3, 1, 2)],
        }
    )
    pq.write_table(native, tmp_path / "n.parquet")
    ds = read_tables(tmp_path / "n.parquet")
    assert ds.test.targets is not None and ds.items.external_ids[int(ds.test.targets[0])] == "10"

    nulls = pa.table({"user": ["a", None], "item": ["x", "y"]})
    pq.write_table(nulls, tmp_path / "null.parquet")
    with pytest.raises(DataError, match=r"null\.parquet: row 2: missing user"):
        read_tables(tmp_path / "null.parquet")


def test_corrupt_gzip_is_a_data_error(tmp_path: Path) -> None:
    good = gzip.compress(("user,item\n" + "u,i\n" * 5000).encode())
    broken = good[:20] + bytes(b ^ 0x5A for b in good[20:60]) + good[60:]
    (tmp_path / "e.csv.gz").write_bytes(broken)
    with pytest.raises(DataError, match=r"e\.csv\.gz"):
        read_tables(tmp_path / "e.csv.gz")
    (tmp_path / "t.csv.gz").write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(DataError, match=r"t\.csv\.gz"):
        read_tables(tmp_path / "t.csv.gz")


def test_parquet_times_outside_python_dates(tmp_path: Path) -> None:
    """Arrow stores times past year 9999 (and dates); Python's datetime cannot hold them."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    far = 400_000_000_000  # seconds: year ~14,600
    table = pa.table(
        {
            "user": ["a", "a", "a", "b", "b", "b"],
            "item": ["x", "y", "z", "x", "y", "z"],
            "timestamp": pa.array([far, far + 1, far + 2, 5, 6, 7], type=pa.timestamp("s")),
        }
    )
    pq.write_table(table, tmp_path / "e.parquet")
    with pytest.raises((OverflowError, ValueError)):
        table.column("timestamp").to_pylist()  # what the reader used to call
    data = read_tables(tmp_path / "e.parquet")
    stamps = np.concatenate([data.split(s).timestamps for s in ("train", "valid", "test")])
    assert {float(far), 5.0} <= set(stamps.tolist())
    days = pa.table({"user": ["a", "a", "a"], "item": ["x", "y", "z"],
                     "timestamp": pa.array([1, 2, 3], type=pa.date32())})
    pq.write_table(days, tmp_path / "d.parquet")
    data = read_tables(tmp_path / "d.parquet")
    stamps = np.concatenate([data.split(s).timestamps for s in ("train", "valid", "test")])
    assert set(stamps.tolist()) <= {86_400.0, 172_800.0, 259_200.0} and stamps.size > 0


# A pre-made split: train users, and held-out users whose context rows are only history.
SPLIT_ROWS = """\
user,item,domain,timestamp,split
t1,i1,food,1,train
t1,i2,food,2,train
t2,k1,kitchen,1,train
v1,i1,food,1,history
v1,k1,kitchen,2,valid
s1,k1,kitchen,1,history
s1,i2,food,2,history
s1,i1,food,3,test
t1,i3,food,3,TRAIN
t1,k2,kitchen,4,validation
"""


def test_premade_split_column(tmp_path: Path) -> None:
    ds = read_tables(write(tmp_path / "inter.csv", SPLIT_ROWS))
    ext = ds.items.external_ids
    names = lambda ids: [ext[i] for i in ids]  # noqa: E731
    assert ds.train.n_events == 4 and len(ds.train) == 2  # v1 and s1 have no train rows
    assert names(ds.train.items[ds.train.offsets[0]:ds.train.offsets[1]]) == ["i1", "i2", "i3"]
    # Valid: v1's k1 after its history row, and t1's k2 after all its earlier (train) rows.
    assert len(ds.valid) == 2
    assert sorted(names(ds.valid.targets)) == ["k1", "k2"]
    lines = {ext[int(t)]: names(ds.valid.history(k).items) for k, t in enumerate(ds.valid.targets)}
    assert lines == {"k1": ["i1"], "k2": ["i1", "i2", "i3"]}
    assert len(ds.test) == 1 and names(ds.test.targets) == ["i1"]
    assert names(ds.test.history(0).items) == ["k1", "i2"]


@pytest.mark.parametrize("rows, fragment", [
    ("user,item,split\nu1,i1,train\nu1,i2,holdout\n", "inter.csv:3: split 'holdout' is not one of"),
    ("user,item,split\nu1,i1,test\n", "user 'u1': a test row has no earlier event"),
    ("user,item,split\nu1,i1,train\nu1,i2,\n", "inter.csv:3"),
])
def test_bad_split_column(tmp_path: Path, rows: str, fragment: str) -> None:
    with pytest.raises(DataError, match=fragment.replace("(", "\\(")):
        read_tables(write(tmp_path / "inter.csv", rows))


def test_food_kitchen_as_tables_round_trips(tmp_path: Path) -> None:
    """Food–Kitchen written as the documented tables (with a split column) reads back as the
    LLMCDSR reader's dataset: the same splits, so the same results."""
    from airrec.data import load_food_kitchen
    from airrec.evaluate import PopularityScorer, evaluate, get_negatives

    root = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not (root / "food-kitchen").exists():
        pytest.skip("Food–Kitchen is not on this machine")
    fk = load_food_kitchen(root)
    dom = fk.domain_names
    with (tmp_path / "items.csv").open("w", encoding="utf-8", newline="") as f:
        import csv

        w = csv.writer(f)
        w.writerow(["item", "domain", "text"])
        for i in range(fk.n_items):  # in id order: the reader numbers items the same way
            w.writerow([f"item{i}", dom[int(fk.items.domains[i])], fk.items.texts[i]])
    with (tmp_path / "interactions.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user", "item", "domain", "timestamp", "split"])
        for s in (fk.train, fk.valid, fk.test):
            for line in range(len(s)):
                h = s.history(line)
                label = "train" if s.targets is None else "history"
                for item, t in zip(h.items.tolist(), h.timestamps.tolist(), strict=True):
                    w.writerow([f"{s.name}-{line}", f"item{item}", dom[int(fk.items.domains[item])], t, label])
                if s.targets is not None:
                    target = int(s.targets[line])
                    assert s.target_timestamps is not None
                    w.writerow([f"{s.name}-{line}", f"item{target}", dom[int(fk.items.domains[target])],
                                float(s.target_timestamps[line]), s.name])
    tables = read_tables(tmp_path / "interactions.csv", tmp_path / "items.csv", name=fk.name,
                         default_behaviour=fk.behaviour_names[0])
    assert tables.domain_names == fk.domain_names and tables.n_items == fk.n_items
    for name in ("train", "valid", "test"):
        a, b = fk.split(name), tables.split(name)
        assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.items, b.items), name
        assert (a.targets is None) == (b.targets is None)
        if a.targets is not None:
            assert np.array_equal(a.targets, b.targets), name
    neg = get_negatives(fk, "test", 99, 0)
    assert np.array_equal(get_negatives(tables, "test", 99, 0), neg)
    want = evaluate(PopularityScorer(fk), fk, "test", neg).metrics()
    assert evaluate(PopularityScorer(tables), tables, "test", neg).metrics() == want
