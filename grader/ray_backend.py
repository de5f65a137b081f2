"""Grade a batch on a Ray cluster: chunks of students go to a pool of actors, each holding the models.

The driver (the process that runs the batch) parses, decides who needs grading, and builds and
writes every report, exactly as a local run does: :class:`RayGrader` is a Grader whose one
scorer, :class:`RayScorer`, sends each parsed chunk to the least busy actor. An actor
(:class:`ChunkWorker`, the actor pattern of Ray's batch-inference guides) loads the encoder and
the judge once, runs its own sandbox servers, and scores written and code parts with the same
scorers as a local run.

The driver stays the only writer of OUT and of the cache. Actors read the rubrics and the driver's
cache through one :class:`DriverFiles` actor on the driver's node, and hand back what a local run would have written
(vectors, part results, judge probabilities) with the chunk's results; the driver writes it. So
a run killed with kill -9 resumes, and a regrade reuses the cache, as a local run does.

An actor that dies (its process killed, its node lost) is restarted by Ray, which retries its
chunks; when it cannot be restarted, its chunks go to the other actors. A chunk whose scoring
raises is scored again student by student, so one bad submission costs only its own parts.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grader import __version__
from grader.accelerate import use_cores
from grader.cache import Cache
from grader.code.scorer import CodeScorer
from grader.fingerprint import code_fingerprint
from grader.options import ClusterOptions, GradeOptions
from grader.pipeline import Grader
from grader.report import PartResult
from grader.rubric import Part, RubricSet, load_rubric_dir
from grader.scorer import PartResults, RunStats, missing_result
from grader.submission import Submission
from grader.written import WrittenScorer

RAY_VERSION = "2.60.0"
INSTALL_HINT = f"pip install 'grader[ray]' (or pip install 'ray=={RAY_VERSION}')"
MAX_RESTARTS = 3
"""Times Ray restarts a dead actor (and retries its chunks) before its chunks go to the others."""
UNSCORED = "This part could not be graded automatically; a TA will grade it."
LOCAL_CLUSTER = {"worker_niceness": 0, "agent_register_timeout_ms": 120_000}
"""Ray settings for a cluster started on this machine (no --address)."""


class ClusterError(RuntimeError):
    """The Ray backend cannot run: Ray missing, an unusable address, or workers that differ from the driver."""


LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""Environment under which Ray keeps a cluster of this machine on its loopback (read when ray is imported)."""
LOCAL_HEAD_ENV = {**LOOPBACK_ONLY, "RAY_AUTH_MODE": "token"}
"""Environment of a local_cluster head and of the drivers that join it: loopback, and Ray's token
(in ~/.ray) required of every driver, so another user of the machine cannot submit work to it."""


def ensure_auth_token() -> Path | None:
    """Make sure Ray finds a token for a head started in token mode, creating one readable by its owner only.

    `ray start --head` under RAY_AUTH_MODE=token refuses to start where no token exists (a fresh
    machine); Ray reads it from $RAY_AUTH_TOKEN, else the file $RAY_AUTH_TOKEN_PATH, else
    ~/.ray/auth_token. Returns the file written, or None when a token was already there.
    """
    if os.environ.get("RAY_AUTH_TOKEN"):
        return None
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if path.exists():
        return None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:  # 256 random bits, as `ray get-auth-token --generate` makes, but never world-readable
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made one meanwhile: use it
        return None
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return path


def import_ray(loopback: bool = False) -> Any:
    """The ray module, or a ClusterError that says how to install it.

    `loopback`: this process starts or joins a cluster of this machine only; Ray would otherwise
    advertise the machine's network address.
    """
    if loopback and "ray" not in sys.modules:
        for name, value in LOOPBACK_ONLY.items():
            os.environ.setdefault(name, value)
    try:
        import ray
    except ImportError as exc:
        raise ClusterError(f"--backend ray needs Ray, which is not installed: {INSTALL_HINT}") from exc
    return ray


# -- what travels between the driver and the actors -------------------------------------------------
@dataclass(frozen=True)
class RubricFiles:
    """A rubric set's files as bytes, so a node without the rubric directory rebuilds the same set."""

    directory: str
    """The rubric directory, relative to the files' common root."""
    files: dict[str, bytes]
    sha256: str

    @classmethod
    def of(cls, rubrics: RubricSet) -> RubricFiles:
        paths = {p.resolve() for p in rubrics.sources.values()}
        paths |= {rubrics.reference_path(r, p) for r, p in rubrics.parts() if p.code is not None}
        directory = Path(rubrics.directory).resolve()
        root = Path(os.path.commonpath([directory, *paths]))
        return cls(
            directory=directory.relative_to(root).as_posix(),
            files={p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(paths)},
            sha256=rubrics.sha256,
        )

    def unpack(self, into: Path) -> RubricSet:
        """Write the files under `into` and load them: the driver's rubric set, with its hash (a reference
        outside the rubric directory is hashed by its absolute path, which differs here)."""
        for relative, data in self.files.items():
            path = into / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return load_rubric_dir(into / self.directory).model_copy(update={"sha256": self.sha256})


@dataclass
class ChunkScores:
    """An actor's answer for one chunk: every part result, and what the driver is to write to its cache."""

    parts: list[dict[str, PartResult]]
    vectors: list[tuple[str, str, np.ndarray]]
    """(model identity, text, vector) for every text the actor encoded."""
    results: list[tuple[bytes, str]]
    """Cache entries: part results and judge probabilities, by key."""
    stats: RunStats
    texts_encoded: int
    worker_pid: int
    peak_rss_mb: float


@dataclass(frozen=True)
class WorkerInfo:
    """Who an actor is: checked against the driver before any chunk is sent."""

    grader_version: str
    code_fingerprint: str
    model_identity: str
    code_unavailable: str | None
    """Why this actor cannot run code parts (e.g. no bubblewrap on its node), or None."""
    pid: int
    node: str


def _add(total: RunStats, part: RunStats, sign: int = 1) -> None:
    for f in dataclasses.fields(RunStats):
        setattr(total, f.name, getattr(total, f.name) + sign * getattr(part, f.name))


# -- actor side -------------------------------------------------------------------------------------
class ChunkCache:
    """The cache as an actor sees it: reads go to the driver's cache, writes wait for the driver.

    Holds the four methods the scorers, the encoder and the judge use (those of grader.cache.Cache).
    """

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self._lock = threading.Lock()
        self._vectors: list[tuple[str, str, np.ndarray]] = []
        self._results: list[tuple[bytes, str]] = []

    def get_vectors(self, model: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        import ray

        return ray.get(self.reader.get_vectors.remote(model, list(texts))) if texts else {}

    def put_vectors(self, model: str, items: Any) -> None:
        rows = [(model, text, np.asarray(vector, dtype=np.float32)) for text, vector in items]
        with self._lock:
            self._vectors.extend(rows)

    def get_results(self, keys: Sequence[bytes]) -> dict[bytes, str]:
        import ray

        return ray.get(self.reader.get_results.remote(list(keys))) if keys else {}

    def put_results(self, items: Any) -> None:
        rows = list(items)
        with self._lock:  # code results arrive from the sandbox's threads
            self._results.extend(rows)

    def take(self) -> tuple[list[tuple[str, str, np.ndarray]], list[tuple[bytes, str]]]:
        """The writes since the last take, for the driver."""
        with self._lock:
            vectors, self._vectors = self._vectors, []
            results, self._results = self._results, []
        return vectors, results

    def close(self) -> None:
        pass


class DriverFiles:
    """A Ray actor on the driver's node that reads, for the actors, what lies on the driver's disk:
    the rubric files, and the cache, read-only (the driver alone writes it)."""

    def __init__(self, rubric_files: RubricFiles, cache_dir: str | None) -> None:
        self._rubric_files = rubric_files
        self._cache = Cache(cache_dir) if cache_dir else None

    def rubric_files(self) -> RubricFiles:
        return self._rubric_files

    def has_cache(self) -> bool:
        return self._cache is not None

    def get_vectors(self, model: str, texts: list[str]) -> dict[str, np.ndarray]:
        return self._cache.get_vectors(model, texts) if self._cache else {}

    def get_results(self, keys: list[bytes]) -> dict[bytes, str]:
        return self._cache.get_results(keys) if self._cache else {}


class ChunkWorker:
    """A Ray actor: the models, a sandbox and the two scorers of a local run, for chunk after chunk."""

    def __init__(self, options: GradeOptions, driver: Any) -> None:
        """`driver`: the DriverFiles actor, which serves the rubrics and the cache (and outlives restarts)."""
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
        use_cores(int(cpus) if cpus else None)
        self._dir = tempfile.TemporaryDirectory(prefix="grader-rubrics-")
        self.rubrics = ray.get(driver.rubric_files.remote()).unpack(Path(self._dir.name))
        self.cache = ChunkCache(driver) if ray.get(driver.has_cache.remote()) else None
        self.stats = RunStats()
        options = options.model_copy(update={"cache_dir": None})  # never a cache file of its own
        self.written = WrittenScorer(self.rubrics, options, self.cache, self.stats)  # type: ignore[arg-type]
        self.code = CodeScorer(self.rubrics, options, self.cache, self.stats)  # type: ignore[arg-type]
        self.node = ray.get_runtime_context().get_node_id()

    def info(self) -> WorkerInfo:
        return WorkerInfo(
            __version__, code_fingerprint(), self.written.identity, self.code.unavailable(), os.getpid(), self.node
        )

    def score(self, chunk: list[Submission]) -> ChunkScores:
        """Score every part of a chunk: code first (the sandbox works while the encoder does), as locally."""
        before = dataclasses.replace(self.stats)
        encoded = self.written.encoder.n_encoded
        merged: list[PartResults] = [{} for _ in chunk]
        for scorer in (self.code, self.written):
            for pending, scored in zip(merged, scorer.submit(chunk)):
                pending.update(scored)
        parts = [{pid: future.result() for pid, future in item.items()} for item in merged]
        vectors, results = self.cache.take() if self.cache is not None else ([], [])
        stats = dataclasses.replace(self.stats)
        _add(stats, before, sign=-1)
        return ChunkScores(
            parts,
            vectors,
            results,
            stats,
            self.written.encoder.n_encoded - encoded,
            os.getpid(),
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        )

    def close(self) -> None:
        self.code.close()
        self.written.close()
        self._dir.cleanup()


# -- driver side ------------------------------------------------------------------------------------
def unscored(part_id: str, part: Part, reason: str) -> PartResult:
    """A part no worker could score: no points (as a missing part), a TA grades it, and the report says why."""
    update = {"status": "error", "confidence": 0.0, "feedback": [UNSCORED], "warnings": [reason]}
    return missing_result(part_id, part).model_copy(update=update)


@dataclass
class _Worker:
    handle: Any
    in_flight: int = 0
    alive: bool = True


@dataclass
class _Job:
    chunk: list[Submission]
    futures: list[PartResults]


class RayScorer:
    """Scores whole chunks, written and code parts, on a pool of Ray actors (the Scorer protocol).

    ``submit`` returns at once; each student's futures complete when the actor's answer arrives,
    and never raise: a student no actor could score gets error parts that say why.
    """

    def __init__(
        self, rubrics: RubricSet, options: GradeOptions, cluster: ClusterOptions, cache: Cache | None, stats: RunStats
    ) -> None:
        ray = import_ray(loopback=cluster.address is None)
        if cluster.address and cluster.address.startswith("ray://"):
            raise ClusterError(
                "Ray Client addresses (ray://) are not supported: run grader on a node of the cluster (the head "
                "node, or with `ray job submit`) and pass the head's HOST:PORT, or `auto`"
            )
        self._connected = not ray.is_initialized()
        if self._connected:
            # a cluster of our own listens on this machine's loopback only (import_ray), and its actors
            # run at the driver's priority (Ray's default lowers theirs: starved on a busy machine)
            local = {} if cluster.address else {"_system_config": LOCAL_CLUSTER}
            ray.init(
                address=cluster.address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
                **local,
            )
        self.cache = cache
        self.stats = stats
        self.parts = {r.qualified(p): p for r, p in rubrics.parts()}
        self.n_texts_encoded = 0
        self.resent = 0
        """Chunks sent again to another actor after theirs died for good."""
        self.peak_rss_mb: dict[int, float] = {}
        """Peak RSS of each actor process that answered, by pid (the models, torch and the scorers)."""
        self._lock = threading.Lock()
        self._settler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="grader-ray-settle")
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self._driver = (
            ray.remote(DriverFiles)
            .options(num_cpus=0, scheduling_strategy=here)
            .remote(RubricFiles.of(rubrics), str(cache.directory) if cache is not None else None)
        )
        n = cluster.workers or max(1, int(ray.cluster_resources().get("CPU", 1) // cluster.cpus_per_worker))
        actor = ray.remote(ChunkWorker).options(
            num_cpus=cluster.cpus_per_worker,
            num_gpus=cluster.gpus_per_worker,
            max_restarts=MAX_RESTARTS,
            max_task_retries=MAX_RESTARTS,
        )
        self.workers = [_Worker(actor.remote(options, self._driver)) for _ in range(n)]
        try:
            infos: list[WorkerInfo] = ray.get([w.handle.info.remote() for w in self.workers])
        except ray.exceptions.RayError as exc:
            self.close()
            raise ClusterError(f"a grading worker could not start: {_reason(exc)}") from exc
        self.identity = infos[0].model_identity
        fingerprint = code_fingerprint()
        for info in infos:
            problem = (
                f"grader {info.grader_version} (driver: {__version__})"
                if info.grader_version != __version__
                else f"grading code {info.code_fingerprint} (driver: {fingerprint})"
                if info.code_fingerprint != fingerprint
                else f"models {info.model_identity} (others: {self.identity})"
                if info.model_identity != self.identity
                else None
            )
            if problem:
                self.close()
                raise ClusterError(
                    f"the worker on node {info.node[:12]} has {problem}: install the same grader "
                    "and models on every node"
                )
        self.worker_pids = [info.pid for info in infos]
        self.code_unavailable = next((i.code_unavailable for i in infos if i.code_unavailable), None)
        """Why code parts will not run on (some of) the actors, or None."""

    def submit(self, chunk: Sequence[Submission]) -> list[PartResults]:
        futures: list[PartResults] = [{pid: Future() for pid in self.parts} for _ in chunk]
        self._send(_Job(list(chunk), futures))
        return futures

    def _send(self, job: _Job, no_worker: str = "every grading worker died") -> None:
        """To the live actor with the fewest chunks in flight; with none left, the parts say `no_worker`."""
        with self._lock:
            live = [w for w in self.workers if w.alive]
            worker = min(live, key=lambda w: w.in_flight) if live else None
            if worker is not None:
                worker.in_flight += 1
        if worker is None:
            self._fail(job, no_worker)
            return
        ref = worker.handle.score.remote(job.chunk)
        # Ray completes the future on its own thread: settle on ours, which may write and send again
        ref.future().add_done_callback(lambda done: self._settler.submit(self._settle, worker, job, done))

    def _settle(self, worker: _Worker, job: _Job, done: Future[ChunkScores]) -> None:
        """Write the chunk's cache entries, then complete its students' futures (or send it again)."""
        from ray.exceptions import RayActorError

        with self._lock:
            worker.in_flight -= 1
        try:
            scores = done.result()
        except RayActorError as exc:  # Ray could not restart it: the others take its chunks
            with self._lock:
                worker.alive = False
                self.resent += 1
            self._send(job, f"every grading worker died ({_reason(exc)})")
            return
        except Exception as exc:  # noqa: BLE001 - scoring raised: find the student it was, keep the others' grades
            if len(job.chunk) == 1:
                self._fail(job, f"internal grading error: {_reason(exc)}")
            else:
                for submission, futures in zip(job.chunk, job.futures):
                    self._send(_Job([submission], [futures]))
            return
        try:
            self._write(scores)
        finally:  # a failed cache write must not keep the reports waiting
            for futures, results in zip(job.futures, scores.parts):
                for pid, future in futures.items():
                    future.set_result(results.get(pid) or missing_result(pid, self.parts[pid]))

    def _write(self, scores: ChunkScores) -> None:
        with self._lock:
            _add(self.stats, scores.stats)
            self.n_texts_encoded += scores.texts_encoded
            self.peak_rss_mb[scores.worker_pid] = max(self.peak_rss_mb.get(scores.worker_pid, 0.0), scores.peak_rss_mb)
        if self.cache is None:
            return
        by_model: dict[str, list[tuple[str, np.ndarray]]] = {}
        for model, text, vector in scores.vectors:
            by_model.setdefault(model, []).append((text, vector))
        for model, items in by_model.items():
            self.cache.put_vectors(model, items)
        if scores.results:
            self.cache.put_results(scores.results)

    def _fail(self, job: _Job, reason: str) -> None:
        for futures in job.futures:
            for pid, future in futures.items():
                future.set_result(unscored(pid, self.parts[pid], reason))

    def close(self) -> None:
        """Stop the actors (their sandboxes die with them) and DriverFiles; leave a cluster we joined."""
        import ray

        for worker in getattr(self, "workers", []):
            try:
                ray.get(worker.handle.close.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - dead already, or stuck: killed below either way
                pass
            ray.kill(worker.handle)
        self.workers = []
        self._settler.shutdown(wait=True)
        if getattr(self, "_driver", None) is not None:
            ray.kill(self._driver)
            self._driver = None
        if self._connected and ray.is_initialized():
            ray.shutdown()
            self._connected = False
        self.cache = None


@contextmanager
def local_cluster(
    num_cpus: int, object_store_mb: int = 200, timeout_s: float = 300, attempts: int = 3
) -> Iterator[str]:
    """A Ray head on this machine's loopback, as `ray start --head` makes one on a cluster's head node;
    yields its address for drivers (``--address``), and stops it (its actors too) on exit.

    For tests and benchmarks that share one cluster between several drivers; `grader grade
    --backend ray` without --address starts its own, which ends with it. The agents' ports are
    chosen here, so that Ray does not wait on their port files (which times out on a busy
    machine), and a head that dies while starting (its raylet gives the dashboard agent a fixed
    window to report, which a starved machine misses) is started again, `attempts` times in all.
    """
    deadline = time.monotonic() + timeout_s
    ensure_auth_token()
    with tempfile.TemporaryDirectory(prefix="grader-ray-head-") as logs:
        for attempt in range(attempts):
            head, address, log = _start_head(num_cpus, object_store_mb, Path(logs) / f"head{attempt}.log")
            try:
                while "Ray runtime started" not in log.read_text(errors="replace"):
                    if head.poll() is not None or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
                else:
                    yield address
                    return
            finally:
                _stop_head(head)
            if time.monotonic() > deadline:
                break
        tail = log.read_text(errors="replace").strip().splitlines()[-1:]
        raise ClusterError(f"a local Ray head did not start: {tail[0] if tail else 'no output'}")


def _start_head(num_cpus: int, object_store_mb: int, log: Path) -> tuple[subprocess.Popen, str, Path]:
    ports = _free_ports(5)
    command = [
        str(Path(sys.executable).with_name("ray")),
        "start",
        "--head",
        "--block",
        "--disable-usage-stats",
        "--node-ip-address",
        "127.0.0.1",
        "--port",
        str(ports[0]),
        "--num-cpus",
        str(num_cpus),
        "--include-dashboard",
        "false",
        "--object-store-memory",
        str(object_store_mb * 2**20),
        "--dashboard-agent-listen-port",
        str(ports[1]),
        "--dashboard-agent-grpc-port",
        str(ports[2]),
        "--runtime-env-agent-port",
        str(ports[3]),
        "--metrics-export-port",
        str(ports[4]),
    ]
    # loopback only (Ray would otherwise advertise this machine's address), actors at our priority
    env = {**os.environ, **LOCAL_HEAD_ENV, "RAY_worker_niceness": "0"}
    with log.open("w") as out:
        head = subprocess.Popen(command, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
    return head, f"127.0.0.1:{ports[0]}", log


def _stop_head(head: subprocess.Popen) -> None:
    """End the head's process group: Ray's processes and the actors of a throwaway cluster."""
    with suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        head.wait(timeout=5)
    with suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGKILL)
    head.wait()


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _reason(exc: BaseException) -> str:
    """One line for a report or an error: the cause, not Ray's traceback."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


class RayGrader(Grader):
    """A Grader whose scoring runs on Ray actors; parsing, the reports and the cache stay in this process.

    No model is loaded here: the actors load them. Chunks are kept in flight two per actor, so
    each actor has its next chunk waiting while it scores one.
    """

    def __init__(
        self, rubrics: RubricSet, options: GradeOptions | None = None, cluster: ClusterOptions | None = None
    ) -> None:
        self._setup(rubrics, options)
        self.remote = RayScorer(rubrics, self.options, cluster or ClusterOptions(backend="ray"), self.cache, self.stats)
        self.written = None  # type: ignore[assignment]  # the models live in the actors
        self.scorers = (self.remote,)
        self.model_identity = self.remote.identity
        self.chunks_in_flight = 2 * len(self.remote.workers)

    def code_unavailable(self) -> str | None:
        """Why code parts will not be run on the actors (their nodes lack bubblewrap, say), or None."""
        return self.remote.code_unavailable
