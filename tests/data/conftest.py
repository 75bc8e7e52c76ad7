"""Fixtures for the dataset-layer tests: small files written into tmp_path, a local HTTP server."""

from __future__ import annotations

import functools
import http.server
import os
import pickle
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airrec.data.home import ENV_VAR

#: The published Food–Kitchen files (read-only, shared; never copied into the repository).
REPO = Path(__file__).resolve().parents[2]


def shared_food_kitchen() -> Path | None:
    """Where the real Food–Kitchen files are, if this machine has them."""
    candidates = []
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]) / "food-kitchen")
    candidates.append(REPO.parent / "shared" / "data" / "food-kitchen")
    return next((c for c in candidates if (c / "num.txt").is_file()), None)


@pytest.fixture
def food_kitchen_dir() -> Path:
    found = shared_food_kitchen()
    if found is None:
        pytest.skip("the Food–Kitchen files are not on this machine")
    return found


# A tiny LLMCDSR directory: domain A has items 0..2, domain B items 3..6.
SMALL_LLMCDSR_TEXT = {
    "num.txt": "3\n4\n",
    "instance_num.txt": "2\n2\n1\n",
    "train_A.txt": "1\t0,1,2\n2\t2,0\n",
    "train_B.txt": "1\t3,4,5\n2\t6,3\n",
    "train_overlap.txt": "1\t0,3,1,4\n",
    "valid.txt": "1\t0,3,5\n2\t4,1\n",
    "test.txt": "1\t1,2,6\n",
}
SMALL_LLMCDSR_PICKLES: dict[str, dict[str, object]] = {
    "item_set_A.pkl": {"a0": 0, "a1": 1, "a2": 2},
    "item_set_B.pkl": {"b0": 0, "b1": 1, "b2": 2, "b3": 3},
    "text_A.pkl": {"a0": "Green tea", "a1": "Curry paste"},  # a2 has no title
    "text_B.pkl": {"b0": "Pan", "b1": "Kettle", "b2": "Whisk", "b3": "Knife"},
}


@pytest.fixture
def llmcdsr_dir(tmp_path: Path) -> Path:
    """A valid small LLMCDSR directory that tests may then break one file of."""
    root = tmp_path / "small"
    root.mkdir()
    for name, text in SMALL_LLMCDSR_TEXT.items():
        (root / name).write_text(text, encoding="utf-8")
    for name, mapping in SMALL_LLMCDSR_PICKLES.items():
        (root / name).write_bytes(pickle.dumps(mapping))
    return root


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _SlowHandler(_QuietHandler):
    def do_GET(self) -> None:
        threading.Event().wait(1.0)  # longer than the client's timeout in the test; no reply


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that stop reading early (the tests' point) are not server errors


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """Start an HTTP server on 127.0.0.1 (random port) serving a directory; returns its URL."""
    servers: list[_QuietServer] = []

    def start(directory: Path, slow: bool = False) -> str:
        handler = functools.partial(
            _SlowHandler if slow else _QuietHandler, directory=str(directory)
        )
        server = _QuietServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
