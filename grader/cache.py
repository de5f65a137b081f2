"""On-disk caches in one SQLite file: embeddings by (model, text), part results by their inputs.

A regrade re-encodes nothing it has seen: every text's vector is stored under
the model's identity and the text's hash. Written-part results are stored under
a key that hashes everything the result depends on (the part's rubric, the
texts it is contrasted with, the scoring settings, the model, the grader
version, the fingerprint of the grading code and the answer), so after a rubric
edit only the touched parts are scored again, and after a code change all are.
SQLite gives atomic, concurrent-safe writes with no server.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL,
    key BLOB NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (
    key BLOB PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""
_CHUNK = 900  # stay under SQLite's limit on bound parameters per statement


def default_cache_dir() -> Path:
    """$GRADER_CACHE_DIR, else $XDG_CACHE_HOME/grader, else ~/.cache/grader."""
    if os.environ.get("GRADER_CACHE_DIR"):
        return Path(os.environ["GRADER_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "grader"


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def digest(*parts: str | bytes) -> bytes:
    """A key over several inputs; each is length-prefixed so ("ab", "c") and ("a", "bc") differ."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()


class Cache:
    """One SQLite file; safe to share between threads of a process (one connection, a lock)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "cache.sqlite"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- embeddings ---------------------------------------------------------------------------------
    def get_vectors(self, model: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors for those texts that have one."""
        by_key = {text_key(t): t for t in texts}
        found: dict[str, np.ndarray] = {}
        keys = list(by_key)
        with self._lock:
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, vector FROM embeddings WHERE model = ? AND key IN ({marks})", (model, *chunk)
                ).fetchall()
                for key, blob in rows:
                    found[by_key[key]] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_vectors(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        rows = [(model, text_key(t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in items]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)
            self._db.execute("COMMIT")

    # -- results ------------------------------------------------------------------------------------
    def get_results(self, keys: Sequence[bytes]) -> dict[bytes, str]:
        found: dict[bytes, str] = {}
        with self._lock:
            for i in range(0, len(keys), _CHUNK):
                chunk = list(keys[i : i + _CHUNK])
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, value FROM results WHERE key IN ({marks})"
                found.update(self._db.execute(query, chunk).fetchall())
        return found

    def put_results(self, items: Iterable[tuple[bytes, str]]) -> None:
        rows = list(items)
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?)", rows)
            self._db.execute("COMMIT")

    def stats(self) -> dict[str, int]:
        with self._lock:
            n_vec = self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
            n_res = self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return {"embeddings": int(n_vec), "results": int(n_res), "bytes": self.path.stat().st_size}
