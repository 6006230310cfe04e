"""A pool of engine actors for one model role, shared by every stage in the driver.

`ModelPool.start(config)` returns the running pool for `config.role` if there is one, so stages
that each ask for the `vlm` pool get the same engines, loaded once. The pool keeps its own asyncio
loop in a background thread: all bookkeeping (per-actor semaphores, in-flight counts, actor
replacement) lives there, and `generate` can be awaited from any event loop in the driver.

Faults: a dead actor (RayActorError / ActorDiedError, or an engine that died inside it) is
replaced, and the requests it held are sent again; each request still gets exactly one response.
The owning pool watches each engine (one `until_stopped` call kept pending on it), so an engine
that dies is replaced at once, even when no request of this process is on it.
A request that keeps failing comes back as `ModelResponse(ok=False, error=...)` after
`max_attempts` tries instead of raising.

Annotators in other processes share the engines: `pool.handle()` is a picklable `PoolHandle` (the
configuration and the engine actors' handles), and `handle.open()` makes an attached pool in the
annotator that sends its requests straight to those engines, so no request or image passes
through the driver. An attached pool neither starts, grows nor replaces engines (that stays with
the pool that owns them): an engine that dies is taken out of its slots, its requests retried on
the others or held until the owner's replacement arrives. The owner's current engines reach the
attached pool by `refresh(pool.handle())` (the annotators' driver sends it when they change), which
puts a replacement or an added engine into service and gives up a slot the owner gave up; with no
refresh within `OWNER_WAIT_S`, a request with no engine left fails as above (a transient reject,
redone by a rerun).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Iterable

import ray
from ray.exceptions import RayActorError, RayTaskError

from got_data.engines.actor import EngineActor, _is_engine_dead, request_payload
from got_data.engines.config import PoolConfig, read_model_config
from got_data.engines.errors import PoolClosedError, PoolConfigError
from got_data.engines.types import ModelRequest, ModelResponse

log = logging.getLogger(__name__)

START_ATTEMPTS = 3  # tries to (re)start one actor before its slot is given up
OWNER_WAIT_S = 900.0  # how long an attached pool with no live engine waits for the owner's replacement
_REGISTRY: dict[str, "ModelPool"] = {}
_REGISTRY_LOCK = threading.Lock()


@dataclass
class _Slot:
    """One actor position in the pool; survives the actor's replacement."""

    index: int
    semaphore: asyncio.Semaphore  # bounds the requests in flight on the slot's actor
    actor: Any = None
    generation: int = 0
    live: asyncio.Event = field(default_factory=asyncio.Event)
    replacing: bool = False
    given_up: bool = False
    in_flight: int = 0
    max_in_flight: int = 0
    waiting: int = 0
    completed: int = 0
    failed: int = 0
    restarts: int = 0
    info: dict = field(default_factory=dict)
    pending: list = field(default_factory=list)  # (payload, images, future) waiting for a flush
    flush_scheduled: bool = False


class ModelPool:
    """Engines for one role. Use `ModelPool.start(config)`, not the constructor."""

    def __init__(self, config: PoolConfig, attached: bool = False) -> None:
        self.config = config
        self.attached = attached  # serves through another process's engines (`PoolHandle.open`)
        self._users = 1
        self._closed = False
        self._slots: list[_Slot] = []
        self._scaling = False
        self._watchers: set[asyncio.Task] = set()  # (owner) one per engine: replaces it when it dies
        self._by_owner: dict[int, _Slot] = {}  # (attached) the owner's slot index -> this pool's slot
        # Requests waiting for the hop to the pool's loop, and answers waiting for the hop back,
        # per caller event loop (each list is touched only by the loop that owns that side).
        self._outgoing: dict[asyncio.AbstractEventLoop, list] = {}
        self._incoming: dict[asyncio.AbstractEventLoop, list] = {}
        self._use_gpus = ray.cluster_resources().get("GPU", 0) >= config.tensor_parallel_size
        self.in_flight_per_actor = config.in_flight_per_actor(self._use_gpus)
        self._node_id = ray.get_runtime_context().get_node_id()  # requests prefer engines on this node
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"pool-{config.role}", daemon=True)
        self._thread.start()

    # ---- lifecycle -------------------------------------------------------------------------

    @classmethod
    def start(cls, config: PoolConfig) -> "ModelPool":
        """The running pool for `config.role`, or a new one with its engines loaded and ready.

        Ray must be initialised. Raises PoolConfigError when the role already runs another model.
        """
        if not ray.is_initialized():
            raise PoolConfigError("ray is not initialised: call ray.init() before ModelPool.start()")
        config = config.resolved()
        with _REGISTRY_LOCK:
            running = _REGISTRY.get(config.role)
            if running is not None and not running._closed:
                if (running.config.model, running.config.family) != (config.model, config.family):
                    raise PoolConfigError(
                        f"role {config.role!r} is already served by {running.config.model} "
                        f"({running.config.family}); shut that pool down before serving {config.model}"
                    )
                running._users += 1
                return running
            pool = cls(config)
            try:
                pool._run(pool._start_slots(config.size_bounds()[0]))
            except BaseException:
                pool._close()
                raise
            _REGISTRY[config.role] = pool
            return pool

    def add_user(self) -> None:
        """One more holder of this pool (a second role it serves): the engines stop at the last release."""
        with _REGISTRY_LOCK:
            if self._closed:
                raise PoolClosedError(f"the {self.config.role} pool is shut down")
            self._users += 1

    def shutdown(self, force: bool = False) -> None:
        """Release this user's hold; the engines stop when the last user (or `force`) releases."""
        with _REGISTRY_LOCK:
            if self._closed:
                return
            self._users -= 1
            if self._users > 0 and not force:
                return
            if _REGISTRY.get(self.config.role) is self:
                del _REGISTRY[self.config.role]
        self._close()

    def _close(self) -> None:
        self._closed = True
        if self._thread.is_alive():
            self._run(self._stop_watching())
        actors = [] if self.attached else [s.actor for s in self._slots if s.actor is not None]
        for actor in actors:
            try:
                ray.get(actor.shutdown.remote(), timeout=30)
            except Exception as exc:  # already dead or stuck: kill below either way
                log.debug("engine shutdown failed: %s", exc)
            ray.kill(actor, no_restart=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self, coro) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _stop_watching(self) -> None:
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)

    async def _watch(self, slot: _Slot, generation: int, actor: Any) -> None:
        """(owner) Replace the slot's engine when its actor dies, whoever's requests were on it."""
        try:
            await actor.until_stopped.remote()
        except RayActorError as exc:
            self._on_actor_lost(slot, generation, f"engine actor died: {type(exc).__name__}")
        except RayTaskError as exc:  # the actor's loop failed the pending call: it is going down
            self._on_actor_lost(slot, generation, f"engine failed: {type(exc.cause).__name__ if exc.cause else exc}")

    async def _start_slots(self, count: int) -> None:
        new = [self._new_slot() for _ in range(count)]
        await asyncio.gather(*(self._launch(slot) for slot in new))
        failed = [slot for slot in new if slot.given_up]
        if failed:
            raise PoolClosedError(
                f"{len(failed)} of {count} {self.config.role} engines failed to start "
                f"({self.config.model}): {failed[0].info.get('error')}"
            )

    def _new_slot(self) -> _Slot:
        slot = _Slot(index=len(self._slots), semaphore=asyncio.Semaphore(self.in_flight_per_actor))
        self._slots.append(slot)
        return slot

    def _actor_options(self) -> dict:
        options: dict[str, Any] = {
            "num_cpus": self.config.num_cpus_per_actor,
            "max_concurrency": max(1000, 2 * self.in_flight_per_actor + 16),
            "max_restarts": 0,  # the pool restarts actors itself, so it knows what to re-send
            "max_task_retries": 0,
        }
        if self._use_gpus:
            options["num_gpus"] = self.config.tensor_parallel_size
        if self.config.scheduling_strategy:
            options["scheduling_strategy"] = self.config.scheduling_strategy
        return options

    async def _launch(self, slot: _Slot) -> None:
        """Start (or restart) the actor of `slot`, trying START_ATTEMPTS times."""
        remote_cls: Any = ray.remote(EngineActor)  # Ray's types do not model `actor.method.remote()`
        for attempt in range(1, START_ATTEMPTS + 1):
            actor = remote_cls.options(**self._actor_options()).remote(self.config)
            try:
                info = await actor.start.remote()
            except Exception as exc:
                ray.kill(actor, no_restart=True)
                slot.info = {"error": f"{type(exc).__name__}: {exc}"}
                log.warning("%s engine %d failed to start (try %d): %s", self.config.role, slot.index, attempt, exc)
                continue
            if self._closed:
                ray.kill(actor, no_restart=True)
                return
            slot.actor, slot.info = actor, info
            slot.generation += 1
            slot.live.set()
            watcher = self._loop.create_task(self._watch(slot, slot.generation, actor))
            self._watchers.add(watcher)
            watcher.add_done_callback(self._watchers.discard)
            return
        slot.given_up = True
        slot.live.set()  # wakes waiters, who see given_up and move on

    def _on_actor_lost(self, slot: _Slot, generation: int, reason: str) -> None:
        if slot.generation != generation or slot.replacing or self._closed:
            return  # already being replaced (another request saw the death first)
        if self.attached:  # the owner's engine: the owner replaces it, `refresh` brings the replacement
            log.warning("%s engine %d lost (%s); its requests go to the other engines until the owner's "
                        "replacement arrives", self.config.role, slot.index, reason)
            slot.live.clear()
            return
        log.warning("%s engine %d lost (%s); starting a replacement", self.config.role, slot.index, reason)
        slot.live.clear()
        slot.replacing = True
        old = slot.actor

        async def replace() -> None:
            try:
                ray.kill(old, no_restart=True)
            except Exception:  # already gone
                pass
            await self._launch(slot)
            slot.restarts += 1
            slot.replacing = False

        self._loop.create_task(replace())

    # ---- requests --------------------------------------------------------------------------

    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Answer one request; model and actor failures come back as `ok=False`, never raised.

        Requests a caller's event loop makes in one turn (a stage gathering its requests) cross to
        the pool's loop in one hop, and answers finished in one turn of the pool's loop come back
        in one hop: a thread wake-up per request costs more than a tiny model's decode step."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        outgoing = self._outgoing.get(loop)
        if outgoing is None:
            outgoing = self._outgoing[loop] = []
            loop.call_soon(self._hand_over, loop)
        outgoing.append((request, future))
        return await future

    def _hand_over(self, caller: asyncio.AbstractEventLoop) -> None:
        """(caller's loop) Send this turn's requests to the pool's loop."""
        batch = self._outgoing.pop(caller, [])
        if self._closed:
            for request, future in batch:
                if not future.done():
                    future.set_result(ModelResponse.failure(request.id, f"the {self.config.role} pool is shut down", attempts=0))
            return
        self._loop.call_soon_threadsafe(self._start_requests, batch, caller)

    def _start_requests(self, batch: list, caller: asyncio.AbstractEventLoop) -> None:
        """(pool's loop) Serve each request; its answer is queued for the caller's loop."""
        for request, future in batch:
            task = self._loop.create_task(self._generate(request))
            task.add_done_callback(partial(self._answer, caller, future))

    def _answer(self, caller: asyncio.AbstractEventLoop, future: asyncio.Future, done: asyncio.Task) -> None:
        """(pool's loop) Queue one answer; the first of a turn schedules the hop back."""
        incoming = self._incoming.get(caller)
        if incoming is None:
            incoming = self._incoming[caller] = []
            self._loop.call_soon(self._send_back, caller)
        incoming.append((future, done))

    def _send_back(self, caller: asyncio.AbstractEventLoop) -> None:
        batch = self._incoming.pop(caller, [])
        try:
            caller.call_soon_threadsafe(_settle, batch)
        except RuntimeError:  # the caller's loop closed meanwhile: nobody is waiting
            pass

    def generate_many(self, requests: Iterable[ModelRequest]) -> list[ModelResponse]:
        """Blocking convenience: all requests at once, responses in request order."""
        requests = list(requests)

        async def run() -> list[ModelResponse]:
            return list(await asyncio.gather(*(self._generate(r) for r in requests)))

        return self._run(run())

    async def _acquire(self) -> _Slot:
        """A live slot with a free in-flight place (its semaphore acquired)."""
        while True:
            if self._closed:
                raise PoolClosedError(f"the {self.config.role} pool is shut down")
            usable = [s for s in self._slots if not s.given_up]
            if not usable:
                raise PoolClosedError(f"every {self.config.role} engine failed and could not be restarted")
            live = [s for s in usable if s.live.is_set()]
            if not live:
                waits = [asyncio.ensure_future(s.live.wait()) for s in usable]
                timeout = OWNER_WAIT_S if self.attached else None  # an owner restarts or gives up by itself
                done, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                if not done:
                    for stale in usable:
                        stale.given_up = True
                continue
            slot = choose_slot(live, self._node_id)
            if slot.semaphore.locked():
                self._maybe_scale_up()
            slot.waiting += 1
            try:
                await slot.semaphore.acquire()
            finally:
                slot.waiting -= 1
            if slot.live.is_set() and not slot.given_up:
                return slot
            slot.semaphore.release()  # its actor died while we waited

    def _maybe_scale_up(self) -> None:
        _, most = self.config.size_bounds()
        if self.attached or self._scaling or len(self._slots) >= most:
            return
        if any(s.live.is_set() and not s.semaphore.locked() for s in self._slots):
            return
        self._scaling = True
        slot = self._new_slot()

        async def grow() -> None:
            await self._launch(slot)
            self._scaling = False

        self._loop.create_task(grow())

    async def _generate(self, request: ModelRequest) -> ModelResponse:
        started = time.monotonic()
        attempts, error = 0, "no attempt made"
        payload = request_payload(request)
        while attempts < self.config.max_attempts:
            try:
                slot = await self._acquire()
            except PoolClosedError as exc:
                error = str(exc)
                break
            attempts += 1
            generation = slot.generation
            slot.in_flight += 1
            slot.max_in_flight = max(slot.max_in_flight, slot.in_flight)
            try:
                result = await self._submit(slot, payload, list(request.images))
            except RayActorError as exc:
                error = f"engine actor died: {type(exc).__name__}"
                self._on_actor_lost(slot, generation, error)
                continue
            except RayTaskError as exc:
                if exc.cause is not None and _is_engine_dead(exc.cause):
                    error = "engine died"
                    self._on_actor_lost(slot, generation, error)
                else:
                    error = f"{type(exc.cause).__name__ if exc.cause else 'task error'}: {exc.cause or exc}"
                    slot.failed += 1
                continue
            except Exception as exc:  # e.g. an image ObjectRef that was lost
                error = f"{type(exc).__name__}: {exc}"
                slot.failed += 1
                continue
            finally:
                slot.in_flight -= 1
                slot.semaphore.release()
            attempts += result["attempts"] - 1
            if result["ok"] or not result["retryable"]:
                slot.completed += 1
                fields = {k: result[k] for k in ("text", "finish_reason", "prompt_tokens", "output_tokens", "error")}
                fields["logprobs"] = result.get("logprobs")
                return ModelResponse(id=request.id, ok=result["ok"], latency_s=time.monotonic() - started,
                                     attempts=attempts, **fields)
            error = result["error"]
            slot.failed += 1
        return ModelResponse.failure(request.id, error, attempts=attempts, latency_s=time.monotonic() - started)

    def _submit(self, slot: _Slot, payload: ModelRequest, images: list) -> asyncio.Future:
        """Queue one request for `slot`'s actor; requests queued in the same loop turn share a call."""
        future = self._loop.create_future()
        slot.pending.append((payload, images, future))
        if len(slot.pending) >= self.config.max_batch_per_call:
            self._flush(slot)
        elif not slot.flush_scheduled:
            slot.flush_scheduled = True
            self._loop.call_soon(self._flush, slot)
        return future

    def _flush(self, slot: _Slot) -> None:
        slot.flush_scheduled = False
        batch, slot.pending = slot.pending, []
        if not batch:
            return
        futures = [f for _, _, f in batch]
        try:
            stream = slot.actor.generate_batch.options(num_returns="streaming").remote(
                [p for p, _, _ in batch], [i for _, i, _ in batch])
        except Exception as exc:  # e.g. arguments that cannot be serialized
            for future in futures:
                future.set_exception(exc)
            return

        async def deliver() -> None:
            # The actor yields results as requests finish; each is handed over at once.
            try:
                async for ref in stream:
                    for index, result in await ref:
                        if not futures[index].done():
                            futures[index].set_result(result)
            except Exception as exc:
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
                return
            for future in futures:  # the stream ended without an answer: never expected
                if not future.done():
                    future.set_exception(RuntimeError("the engine actor returned no result for this request"))

        self._loop.create_task(deliver())

    # ---- introspection ---------------------------------------------------------------------

    def stats(self) -> dict:
        """Per-actor counters (caller side and engine side) and the engines' cache metrics."""
        actors = []
        totals: dict[str, float] = {}
        for slot in list(self._slots):
            row = {
                "index": slot.index, "live": slot.live.is_set() and not slot.given_up,
                "in_flight": slot.in_flight, "max_in_flight": slot.max_in_flight,
                "completed": slot.completed, "failed": slot.failed, "restarts": slot.restarts,
                "node_id": slot.info.get("node_id"), "pid": slot.info.get("pid"),
            }
            if row["live"] and slot.actor is not None:
                try:
                    engine = ray.get(slot.actor.metrics.remote(), timeout=30)
                except Exception as exc:  # actor dying right now: report without engine metrics
                    row["engine_error"] = f"{type(exc).__name__}"
                else:
                    row["engine"] = engine
                    for key, value in engine.items():
                        if key not in ("in_flight", "max_in_flight", "served"):
                            totals[key] = totals.get(key, 0) + value
            actors.append(row)
        return {"role": self.config.role, "model": self.config.model, "users": self._users,
                "max_in_flight_per_actor": self.in_flight_per_actor,
                "actors": actors, "engine": totals}

    def reset_caches(self) -> None:
        """Empty every live engine's prefix, multimodal and encoder caches, so a benchmark's passes
        start equally cold; serving is unaffected apart from the lost reuse."""
        ray.get([actor.reset_caches.remote() for actor in self.actors()], timeout=60)

    def handle(self) -> PoolHandle:
        """What an annotator needs to send requests to this pool's engines itself (picklable): the live
        engines, each with its slot and generation, the slots starting or being replaced, and those
        given up."""
        live = [s for s in self._slots if s.live.is_set() and not s.given_up and s.actor is not None]
        live_indexes = {s.index for s in live}
        return PoolHandle(self.config, [s.actor for s in live], [dict(s.info) for s in live],
                          tuple((s.index, s.generation) for s in live),
                          tuple(s.index for s in self._slots if s.given_up),
                          tuple(s.index for s in self._slots if not s.given_up and s.index not in live_indexes))

    def refresh(self, handle: PoolHandle) -> None:
        """(attached) Serve through the owner's engines as `handle` lists them now: a replacement or an
        added engine goes into service, a slot starting or being replaced rests (its requests wait or go
        elsewhere), one the owner gave up is dropped."""
        if not self.attached:
            raise PoolConfigError("refresh() is for a pool attached to another process's engines")
        if self._closed:
            return

        async def apply() -> None:
            listed = set()
            for actor, info, (index, generation) in zip(handle.actors, handle.infos, handle.slots):
                listed.add(index)
                slot = self._by_owner.get(index)
                if slot is None:
                    slot = self._by_owner[index] = self._new_slot()
                if slot.generation != generation or slot.given_up:
                    slot.actor, slot.info, slot.generation, slot.given_up = actor, info, generation, False
                    slot.live.set()
            for index in handle.resting:
                if index not in self._by_owner:
                    self._by_owner[index] = self._new_slot()
            for index, slot in self._by_owner.items():
                if index in handle.gone:
                    slot.given_up = True
                    slot.live.set()  # wakes waiters, who see given_up and move on
                elif index not in listed:
                    slot.given_up = False
                    slot.live.clear()  # the owner is starting or replacing it

        self._run(apply())

    def actors(self) -> list:
        """Handles of the live engine actors (for operations: inspecting or killing one)."""
        return [s.actor for s in self._slots if s.live.is_set() and not s.given_up and s.actor is not None]

    def request_capacity(self) -> int:
        """Requests the pool serves at once at its largest size (engines x in-flight per engine): what
        the runner's in-flight bound must cover to keep every engine busy."""
        return self.config.size_bounds()[1] * self.in_flight_per_actor

    def model_info(self) -> dict:
        """Which model answers, as records publish it: its name (never a host path), a revision, the family."""
        return {"role": self.config.role, "name": model_name(self.config.model), "family": self.config.family,
                "revision": model_revision(self.config.model)}


def choose_slot(live: list[_Slot], node_id: str | None) -> _Slot:
    """Where the next request goes (node-affine routing): the least busy engine on the caller's node
    that has a free place, else the least busy with a free place anywhere, else the least busy on the
    caller's node (where one exists) to wait for. An image a request carries then crosses the network
    only when every engine of its node is full, and never when the node has an idle engine."""
    def load(slot: _Slot) -> int:
        return slot.in_flight + slot.waiting

    local = [s for s in live if node_id is not None and s.info.get("node_id") == node_id]
    for candidates in ([s for s in local if not s.semaphore.locked()], [s for s in live if not s.semaphore.locked()],
                       local):
        if candidates:
            return min(candidates, key=load)
    return min(live, key=load)


@dataclass
class PoolHandle:
    """A pool's engines as another process sees them: its configuration, its live actors' handles and
    each one's (slot, generation), the slots the owner gave up and those it is (re)starting."""

    config: PoolConfig
    actors: list
    infos: list[dict]
    slots: tuple[tuple[int, int], ...] = ()
    gone: tuple[int, ...] = ()
    resting: tuple[int, ...] = ()  # slots whose engine is starting or being replaced

    @property
    def version(self) -> tuple:
        """Changes exactly when the owner's engines do (a replacement, an engine added or given up)."""
        return self.slots, self.gone, self.resting

    def open(self) -> ModelPool:
        """An attached pool in this process over the engines (see the module docstring); `shutdown()`
        stops only its own loop, never the engines. With every engine being replaced, its requests wait."""
        if not self.actors and not self.resting:
            raise PoolClosedError(f"the {self.config.role} pool has no live engine to share")
        pool = ModelPool(self.config, attached=True)
        pool.refresh(self)
        return pool


def _settle(batch: list) -> None:
    """(caller's loop) Hand each finished task's outcome to the future its caller awaits."""
    for future, done in batch:
        if future.done():  # the caller gave up waiting
            continue
        if done.cancelled():
            future.cancel()
        elif done.exception() is not None:
            future.set_exception(done.exception())
        else:
            future.set_result(done.result())


def model_name(model: str) -> str:
    """What records call a model: a hub id as given; a local folder by its name, a Hugging Face cache
    snapshot (`.../models--Org--Name/snapshots/SHA`) by its hub id. Records are published, so the
    host path of a checkpoint never goes in them; `model_revision` pins which weights they were."""
    if not (os.path.isabs(model) or model.startswith(".") or Path(model).is_dir()):
        return model
    parts = Path(os.path.realpath(model)).parts
    if "snapshots" in parts[:-1] and parts.index("snapshots") > 0:
        repo = parts[parts.index("snapshots") - 1]
        if repo.startswith("models--"):
            return repo.removeprefix("models--").replace("--", "/")
    return parts[-1] if len(parts) > 1 else "model"


def model_revision(model: str) -> str:
    """Git sha of a checkout, the snapshot sha of an HF cache path, else a hash of config.json."""
    path = Path(model)
    if path.is_dir():
        if (path / ".git").exists():
            try:
                sha = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True,
                                     text=True, check=True, timeout=10).stdout.strip()
                if sha:
                    return sha
            except (OSError, subprocess.SubprocessError):
                pass
        parts = path.resolve().parts
        if "snapshots" in parts[:-1]:
            return parts[parts.index("snapshots") + 1]
    config = read_model_config(model)
    digest = hashlib.sha256(repr(sorted(config.items())).encode()).hexdigest()[:16]
    return f"config-{digest}"
