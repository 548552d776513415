"""Distributed ingest on Ray (the optional ``ray`` extra): ``assistant ingest PATH... --ray auto|ADDRESS``.

The work on a file (load, clean, documents, chunk, flag, embed) runs on Ray workers; everything that
touches the collection stays in this process, the one writer holding its write lock, through the commit
path of ``ingest/pipeline.py: Ingestor``. So the guarantees of an in-process ingest hold unchanged:

- the driver hashes each file first and skips an unchanged one before any work is sent out;
- files go out in batches (``task_bytes``/``task_files``) with the ids of the documents already stored
  for them (skipped, not chunked nor embedded again) and, for an edited file, the embedding inputs stored
  for it (their vectors are re-used, not computed again);
- results are committed in file order, whatever order they arrive in, in the same ``commit_chunks``
  batches as in-process: the same chunk ids, the same documents and counts, each file's record in the
  transaction with its last document (a killed driver, run again, finishes the job);
- a worker killed mid-batch loses nothing and duplicates nothing: nothing is written until its result is
  back here; Ray restarts the worker (the model loaded again) and retries the batch (``max_task_retries``);
  a batch that still fails is split and each file retried alone; a file that kills its worker every time
  is reported as skipped with the reason, like a file a loader refuses.

One worker per CPU of the cluster (``num_cpus`` its share, and as many ONNX/torch threads), or one per GPU
where the cluster has GPUs; each builds its embedder, chunker and ingest rail once, from the settings, with
the picklable ``factory(threads=N) -> IngestParts`` it is given (``assistant/compose.py: ingest_parts``),
since ``ingest`` does not import ``assistant``. Workers read the files by path: on a cluster of several
machines, the files must be at the same path on every node (a shared file system), and the project
installed in each node's Python (or shipped with ``ray job submit --runtime-env-json``).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.collection import FileRecord
from core.errors import LoadError, UserError
from core.types import Chunk, Document, content_hash
from ingest.chunking import embedding_input
from ingest.pipeline import (
    Ingestor,
    IngestParts,
    IngestReport,
    Skipped,
    WorkerStats,
    _Pending,
    embed_longest_first,
    failure_reason,
    page_note,
    read_documents,
    split_documents,
)

RAY_HINT = "pip install 'domain-assistant[ray]'"
MAX_TASK_RETRIES = 2  # a batch whose worker dies is run again this many times before its files are tried alone
LOCAL_OBJECT_STORE_BYTES = 512 * 2**20  # a cluster started here: results are small, and the store is allocated lazily


def require_ray():
    """The ray module, or a UserError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--ray needs Ray, an optional extra: {RAY_HINT}") from None
    return ray


# ---------------------------------------------------------------------- the work of one task (a pure function)


@dataclass(frozen=True)
class FileTask:
    """One file for a worker: ``stored`` the ids of its documents already in the collection (not chunked nor
    embedded again), ``known`` the embed hashes already stored for it (not embedded again)."""

    path: str
    source: str
    stored: frozenset[str] = frozenset()
    known: frozenset[str] = frozenset()


@dataclass
class FileResult:
    """A file read by a worker: ``skipped`` the reason it could not be, else ``ids`` (every document the file
    holds now), its new ``documents`` with their ``chunks``, and the vectors of their embedding inputs not in
    ``known``: ``vectors[i]`` for embed hash ``hashes[i]``."""

    skipped: str | None = None
    note: str | None = None  # read, with a remark (pages that gave no text: pipeline.page_note)
    ids: frozenset[str] = frozenset()
    documents: list[Document] = field(default_factory=list)
    chunks: list[list[Chunk]] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    vectors: np.ndarray | None = None


def prepare_files(tasks: list[FileTask], parts: IngestParts) -> tuple[list[FileResult], int]:
    """Load, clean, chunk, flag and embed a batch of files: the same steps as an in-process ingest
    (``read_documents``, ``split_documents``, ``embed_longest_first``). A file that cannot be read is a
    result with its reason. Returns the results, in order, and how many texts were embedded."""
    results: list[FileResult] = []
    todo: dict[str, str] = {}  # embed hash -> input, each embedded once across the batch
    wanted: list[list[str]] = []
    for task in tasks:
        try:
            documents = read_documents(Path(task.path), task.source, max_bytes=parts.max_bytes, options=parts.load_options)
        except (LoadError, OSError) as exc:
            results.append(FileResult(skipped=failure_reason(exc)))
            wanted.append([])
            continue
        if not documents:
            results.append(FileResult(skipped="no text after cleaning"))
            wanted.append([])
            continue
        result = FileResult(ids=frozenset(documents), note=page_note(documents.values()))
        hashes: dict[str, None] = {}
        new = (doc for doc in documents.values() if doc.id not in task.stored)
        for doc, chunks in split_documents(new, parts.chunker, parts.flagger):
            result.documents.append(doc)
            result.chunks.append(chunks)
            for chunk in chunks:
                text = embedding_input(doc.title, chunk.text, parts.embed_title)
                h = content_hash(parts.embedder.name, text)
                if h not in task.known:
                    todo.setdefault(h, text)
                    hashes[h] = None
        results.append(result)
        wanted.append(list(hashes))
    vectors = embed_longest_first(parts.embedder, todo)
    for result, hashes_ in zip(results, wanted):
        if hashes_:
            result.hashes = hashes_
            result.vectors = np.vstack([vectors[h] for h in hashes_]).astype(np.float32, copy=False)
    return results, len(todo)


@dataclass
class BatchResult:
    files: list[FileResult]
    worker: str  # host:pid of the process that did it
    embedded: int
    busy_seconds: float


class IngestWorker:
    """A Ray actor (``ray.remote(IngestWorker)``): the parts built once per process, then batch after batch."""

    def __init__(self, factory: Callable[..., IngestParts], threads: int):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one tokenizer thread per worker: its CPU share
        self.parts = factory(threads=threads)
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def info(self) -> dict[str, Any]:
        embedder = self.parts.embedder
        return {"worker": self.name, "embedder": embedder.name, "dim": embedder.dim, "max_tokens": embedder.max_tokens}

    def prepare(self, tasks: list[FileTask]) -> BatchResult:
        started = time.perf_counter()
        files, embedded = prepare_files(tasks, self.parts)
        return BatchResult(files, self.name, embedded, time.perf_counter() - started)

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.parts.embedder.embed_passages(texts)

    def count_tokens(self, text: str) -> int:
        return self.parts.embedder.count_tokens(text)


# ---------------------------------------------------------------------- the cluster


def connect(address: str) -> bool:
    """Connect this process to Ray: ``auto`` joins a running cluster (RAY_ADDRESS, or one started with
    ``ray start`` on this machine) or else starts one here with every CPU; anything else is a cluster's
    address (``host:port``, ``ray://host:port``). Returns whether this call started or joined it (and so
    should shut it down), False where the process was already connected. Ray itself retries an address
    where nothing answers for minutes: this says so at once instead."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address == "auto":
        found = _running_cluster()
        if found is None:
            ray.init(
                num_cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                **quiet,
            )
            _worker_errors_to_stderr()
            return True
        address = found
    if not _reachable(address):
        raise UserError(f"nothing answers at the Ray address {address}: start the cluster (`ray start --head`) or check the address")
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise UserError(f"cannot join the Ray cluster at {address}: {exc}") from exc
    _worker_errors_to_stderr()
    return True


def _worker_errors_to_stderr() -> None:
    """Ray's driver prints what the cluster reports about this job (a worker died, its task is retried) on
    stdout, with the worker's traceback; a command's stdout is its own (``--json``). Print the first line of
    each on stderr instead. (Ray has no setting for this: its module function is replaced, where it exists.)"""
    import ray._private.worker as ray_worker

    printer = getattr(ray_worker, "print_to_stdstream", None)
    if printer is None or getattr(printer, "to_stderr", False):
        return

    def to_stderr(data: dict, ignore_prefix: bool = False) -> None:
        lines = [line for item in data.get("lines", []) for line in str(item).splitlines() if line.strip()]
        if data.get("pid") != "raylet":  # not the cluster's own reports: as Ray prints them
            printer(data, ignore_prefix)
        elif lines:
            print(f"ray: {lines[0].split(' Error: Traceback')[0].strip()}", file=sys.stderr, flush=True)

    to_stderr.to_stderr = True  # type: ignore[attr-defined]
    ray_worker.print_to_stdstream = to_stderr


def _running_cluster() -> str | None:
    """The address ``ray.init(address="auto")`` would join (RAY_ADDRESS, the cluster last ``ray start``ed
    here, or the one Ray process of a cluster running here), or None where there is none to join: no
    cluster, or the record of one that is gone."""
    explicit = os.environ.get("RAY_ADDRESS")
    if explicit and explicit != "auto":
        return explicit
    try:
        from ray._private.services import canonicalize_bootstrap_address_or_die
    except ImportError:  # Ray moved it: let ray.init find the cluster itself
        return "auto"
    try:
        found = canonicalize_bootstrap_address_or_die("auto")
    except ConnectionError as exc:
        if "Could not find any running Ray instance" in str(exc):
            return None
        raise UserError(f"cannot tell which Ray cluster to join: {exc}; pass its address to --ray") from exc
    return found if _reachable(found) else None


def _reachable(address: str, timeout: float = 5.0) -> bool:
    """Whether something accepts a TCP connection at ``host:port`` (``ray://`` or not); True for anything
    else (``auto``), which Ray judges itself."""
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return True
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class WorkerPlan:
    workers: int
    num_cpus: float
    num_gpus: float
    threads: int


def plan_workers(resources: dict[str, float], largest_node_cpus: float, workers: int | None = None, use_gpus: bool = True) -> WorkerPlan:
    """How many workers and what each asks for: one per GPU where the cluster has GPUs and ``use_gpus`` (a
    CPU each, for loading and tokenizing), else one per CPU; ``workers`` overrides the count, and a CPU
    worker then gets the CPUs of its share (and as many threads)."""
    cpus, gpus = float(resources.get("CPU", 0)), int(resources.get("GPU", 0)) if use_gpus else 0
    if cpus < 1:
        raise UserError("the Ray cluster has no CPU to run ingest workers on")
    if gpus:
        n = workers or gpus
        return WorkerPlan(n, 1.0, 1.0 if n <= gpus else gpus / n, 1)
    n = workers or int(cpus)
    share = max(1, min(int(cpus) // n, int(largest_node_cpus)))
    return WorkerPlan(n, float(share) if n <= cpus else cpus / n, 0.0, share)


# ---------------------------------------------------------------------- the workers, seen from the driver


@dataclass
class _Batch:
    entries: list[_Entry]
    ref: Any = None  # the worker's result, while out
    actor: int = -1
    finished: bool = False

    @property
    def tasks(self) -> list[FileTask]:
        return [e.task for e in self.entries if e.task is not None]


class RayWorkers:
    """The Ray workers of one ingest, started on first need (the first file to read, or the embedder's
    dimension for a new collection: an ingest of unchanged files never starts them) and stopped by ``close``.

    ``factory(threads=N) -> IngestParts`` must be picklable (a module-level function or a partial of one);
    ``address``: ``auto`` or a cluster's address (see ``connect``); ``workers``: how many (see
    ``plan_workers``); ``use_gpus``: whether workers ask for the cluster's GPUs (not for a model set to run
    on the CPU); ``in_flight``: batches queued on each worker (one running, the next ready).
    """

    def __init__(
        self,
        factory: Callable[..., IngestParts],
        *,
        address: str = "auto",
        workers: int | None = None,
        use_gpus: bool = True,
        in_flight: int = 2,
        start_timeout_s: float = 600.0,
    ):
        self.factory = factory
        self.address = address
        self.workers = workers
        self.use_gpus = use_gpus
        self.in_flight = in_flight
        self.start_timeout_s = start_timeout_s
        self.ray: Any = None
        self.actors: list[Any] = []
        self.infos: list[dict[str, Any]] = []
        self.load: list[int] = []  # batches out, per worker
        self.joined = False
        self.stats: dict[int, WorkerStats] = {}
        self.start_seconds = 0.0  # spent starting: connecting, the workers building their parts
        self._expected: tuple[str, int] | None = None

    def start(self) -> None:
        if self.actors:
            return
        began = time.perf_counter()
        try:
            self._start()
        finally:
            self.start_seconds += time.perf_counter() - began

    def _start(self) -> None:
        self.ray = ray = require_ray()
        self.joined = self.joined or connect(self.address)
        largest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
        plan = plan_workers(ray.cluster_resources(), largest, self.workers, self.use_gpus)
        remote = ray.remote(IngestWorker).options(
            num_cpus=plan.num_cpus,
            num_gpus=plan.num_gpus,
            max_restarts=-1,  # a killed worker comes back (its parts built again) ...
            max_task_retries=MAX_TASK_RETRIES,  # ... and runs the batches it had again
        )
        self.actors = [remote.remote(self.factory, plan.threads) for _ in range(plan.workers)]
        self.load = [0] * len(self.actors)
        try:
            self.infos = ray.get([a.info.options(max_task_retries=0).remote() for a in self.actors], timeout=self.start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise UserError(
                f"{plan.workers} Ray workers did not all start within {self.start_timeout_s:.0f} s "
                f"(the cluster has {ray.cluster_resources()}); ask for fewer with --ray-workers"
            ) from None
        except ray.exceptions.RayError as exc:
            raise UserError(f"Ray workers could not start: {_cause(exc)}") from None
        if len({(i["embedder"], i["dim"], i["max_tokens"]) for i in self.infos}) > 1:
            raise UserError(f"Ray workers loaded different embedders: {self.infos}; give every node the same settings and models")
        self._check()

    def expect(self, name: str, dim: int) -> None:
        """The embedder the collection is built with: the workers must load that one."""
        self._expected = (name, dim)
        self._check()

    def _check(self) -> None:
        if self._expected and self.infos:
            info = self.infos[0]
            name, dim = self._expected
            if (info["embedder"], info["dim"]) != (name, dim):
                raise UserError(
                    f"Ray worker {info['worker']} embeds with {info['embedder']} ({info['dim']}-d), the collection "
                    f"with {name} ({dim}-d): give the workers the same settings"
                )

    @property
    def info(self) -> dict[str, Any]:
        self.start()
        return self.infos[0]

    @property
    def free(self) -> bool:
        """Whether a worker can take another batch now (it holds fewer than ``in_flight``)."""
        return not self.actors or min(self.load) < self.in_flight

    def submit(self, batch: _Batch) -> None:
        self.start()
        batch.actor = min(range(len(self.actors)), key=self.load.__getitem__)
        batch.ref = self.actors[batch.actor].prepare.remote(batch.tasks)
        batch.finished = False
        self.load[batch.actor] += 1

    def finished(self, batch: _Batch) -> None:
        batch.finished = True
        self.load[batch.actor] -= 1

    def count(self, actor: int, result: BatchResult) -> None:
        before = self.stats.get(actor, WorkerStats(result.worker))
        self.stats[actor] = WorkerStats(
            worker=result.worker,
            files=before.files + len(result.files),
            chunks=before.chunks + sum(len(c) for f in result.files for c in f.chunks),
            embedded=before.embedded + result.embedded,
            busy_seconds=before.busy_seconds + result.busy_seconds,
        )

    def call(self, method: str, *args: Any) -> Any:
        """A method of the least busy worker, waited for (the driver's rare own embedding)."""
        self.start()
        actor = self.actors[min(range(len(self.actors)), key=self.load.__getitem__)]
        return self.ray.get(getattr(actor, method).options(max_task_retries=0).remote(*args))

    def close(self) -> None:
        """Stop the workers, and leave the cluster if this process joined it (a cluster started here stops)."""
        if self.ray is None:
            return
        for actor in self.actors:
            self.ray.kill(actor)
        if self.joined:
            self.ray.shutdown()
        self.actors, self.infos, self.load, self.joined = [], [], [], False


class WorkerEmbedder:
    """The driver's embedder when Ray workers embed: the same model, described by the workers instead of
    loaded here (a second copy of the model would cost this process its load time and memory). ``name`` is
    known from the settings; ``dim`` from ``dim`` (an existing collection's manifest) or the workers, which
    then start; the driver's rare own embedding (see ``Ingestor._embed``) runs on a worker."""

    def __init__(self, workers: RayWorkers, name: str, dim: int | None = None):
        self.workers = workers
        self.name = name
        self._dim = dim
        self._max_tokens: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.workers.info["dim"])
        return self._dim

    @property
    def max_tokens(self) -> int:
        if self._max_tokens is None:
            self._max_tokens = int(self.workers.info["max_tokens"])
        return self._max_tokens

    def count_tokens(self, text: str) -> int:
        return int(self.workers.call("count_tokens", text))

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.workers.call("embed", texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_passages([text])[0]

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.embed_passages(texts)


# ---------------------------------------------------------------------- the driver


@dataclass
class _Entry:
    """One file in the driver's queue: decided here (``outcome``: None unchanged, or Skipped), or a task."""

    path: Path
    outcome: Skipped | None = None
    task: FileTask | None = None
    record: tuple[str, float, int] | None = None  # sha256, mtime, size of what was hashed


class RayIngestor(Ingestor):
    """An Ingestor whose files are read, chunked and embedded by Ray workers (``workers``); commits stay
    here. ``task_bytes``/``task_files``: the size of a batch of files for one worker. Other keyword arguments
    are the Ingestor's (its chunker and flagger are not used: the workers have their own)."""

    def __init__(self, *args: Any, workers: RayWorkers, task_bytes: int = 256 * 1024, task_files: int = 64, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pool = workers
        self.task_bytes = task_bytes
        self.task_files = task_files
        workers.expect(self.embedder.name, self.collection.dim)

    # -------------------------------------------------- the driver's side of each file

    def _entry(self, path: Path) -> _Entry:
        scanned = self._scan(path)
        if scanned is None or isinstance(scanned, Skipped):
            return _Entry(path, outcome=scanned)
        source, stat, sha = scanned
        stored = frozenset(self.collection.document_ids(source))
        known = frozenset(self.collection.embed_hashes(source)) if stored else frozenset()  # an edited file: its inputs not re-embedded
        task = FileTask(str(path), source, stored, known)
        return _Entry(path, task=task, record=(sha, stat.st_mtime, stat.st_size))

    def _batches(self, files: list[Path]) -> Iterator[_Batch]:
        """Files in order, hashed here, grouped into batches of about ``task_bytes`` to read."""
        entries: list[_Entry] = []
        size = n_tasks = 0
        for path in files:
            entry = self._entry(path)
            entries.append(entry)
            if entry.record is not None:
                n_tasks += 1
                size += entry.record[2]
            if size >= self.task_bytes or n_tasks >= self.task_files or len(entries) >= 4 * self.task_files:
                yield _Batch(entries)
                entries, size, n_tasks = [], 0, 0
        if entries:
            yield _Batch(entries)

    # -------------------------------------------------- the loop

    def ingest(self, paths: Iterable[Path]) -> IngestReport:
        """As ``Ingestor.ingest``; ``seconds`` leaves out starting Ray and the workers (their model loads),
        as an in-process ingest's leave out loading the model: it times the work."""
        starting = self.pool.start_seconds
        try:
            report = super().ingest(paths)
        finally:
            self.pool.close()
        report.seconds -= self.pool.start_seconds - starting
        return report

    def _process(self, files: list[Path], pending: _Pending, report: IngestReport) -> None:
        try:
            self._run(files, pending, report)
        finally:
            report.workers = [self.pool.stats[i] for i in sorted(self.pool.stats)]

    def _run(self, files: list[Path], pending: _Pending, report: IngestReport) -> None:
        """Keep every worker busy with the next batches, and commit the results in file order."""
        pool = self.pool
        batches = self._batches(files)
        queue: deque[_Batch] = deque()  # batches not yet committed, in file order
        upcoming: _Batch | None = None
        exhausted = False
        done = 0
        while True:
            window = 4 * pool.in_flight * max(1, len(pool.actors))  # bounds the results held here
            while not exhausted and len(queue) < window:
                if upcoming is None:
                    upcoming = next(batches, None)
                    if upcoming is None:
                        exhausted = True
                        break
                if upcoming.tasks:
                    if not pool.free:
                        break
                    pool.submit(upcoming)
                queue.append(upcoming)
                upcoming = None
            if not queue:
                return
            head = queue[0]
            if head.ref is not None and not head.finished:
                out = {b.ref: b for b in queue if b.ref is not None and not b.finished}
                ready, _ = pool.ray.wait(list(out), num_returns=1, timeout=1.0)
                for ref in ready:
                    pool.finished(out[ref])
                continue
            queue.popleft()
            results = self._results(head, queue)
            if results is None:
                continue  # split and sent out again
            for entry, result in zip(head.entries, results):
                self._take(entry, result, pending, report)
                done += 1
                self._bar.set_postfix(files=f"{done}/{len(files)}", workers=len(pool.actors), refresh=False)

    def _results(self, head: _Batch, queue: deque[_Batch]) -> list[FileResult | None] | None:
        """The batch's result per entry (None for those decided here), or None when the batch was split and
        its files sent out again one by one."""
        if head.ref is None:
            return [None] * len(head.entries)
        ray = self.pool.ray
        try:
            result: BatchResult = ray.get(head.ref)
        except ray.exceptions.RayTaskError as exc:  # the code raised, the worker did not die: as in-process
            raise exc.as_instanceof_cause() from None
        except ray.exceptions.RayError as exc:  # the worker died on every try
            if len(head.tasks) > 1:  # each file alone, so that one bad file does not take others down
                for part in reversed([_Batch([e]) for e in head.entries]):
                    if part.tasks:
                        self.pool.submit(part)
                    queue.appendleft(part)
                return None
            reason = f"the Ray worker reading it died {MAX_TASK_RETRIES + 1} times ({type(exc).__name__})"
            return [FileResult(skipped=reason) if e.task is not None else None for e in head.entries]
        self.pool.count(head.actor, result)
        files = iter(result.files)
        return [next(files) if e.task is not None else None for e in head.entries]

    def _take(self, entry: _Entry, result: FileResult | None, pending: _Pending, report: IngestReport) -> None:
        """One file's outcome into the report and the pending commit, exactly as ``Ingestor._read_file``."""
        if entry.task is None:
            if entry.outcome is None:
                report.files_unchanged += 1
            else:
                report.skipped.append(entry.outcome)
            return
        assert result is not None and entry.record is not None
        if result.skipped is not None:
            report.skipped.append(Skipped(str(entry.path), result.skipped))
            return
        report.files_read += 1
        if result.note is not None:
            report.notes.append(Skipped(str(entry.path), result.note))
        report.documents_unchanged += len(entry.task.stored & result.ids)
        vectors = dict(zip(result.hashes, result.vectors)) if result.vectors is not None else {}
        for doc, chunks in zip(result.documents, result.chunks):
            self._add(doc, chunks, pending, report, vectors)
        sha, mtime, size = entry.record
        pending.files.append(FileRecord(entry.task.source, sha, size, mtime, result.ids))


def _cause(exc: BaseException) -> str:
    """The last line of what went wrong in a worker, without Ray's wrapping."""
    cause = getattr(exc, "cause", None) or exc
    lines = [line for line in f"{type(cause).__name__}: {cause}".splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(exc).__name__
