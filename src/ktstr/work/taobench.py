"""`Taobench(TaobenchConfig)`: taobench's KV object-cache request mix, inside one worker.

taobench (DCPerf) stresses a TAO-like cache server: *fast threads* serve
requests from an in-memory object cache; a get that misses is handed to a
*slow thread*, which waits for the backing store (`miss_latency_us`), fills
the cache with a set and answers. The clients send a get/set mix over keys
drawn from a skewed (Zipf-like) popularity, so the hit rate follows the key
skew and the cache size. Every hand-over is a futex wake between threads: client
-> fast thread, fast -> slow thread on a miss, responder -> client.

One ktstr worker runs clients, fast and slow threads as threads of one process
(use `workers=1`). The cache is `shards` LRU maps, each behind its own lock
(memcached's item locks). Figures, in taobench's terms, go to `loop.metrics`:
`total_qps`, `fast_qps` (answered by a fast thread: hits and sets), `slow_qps`
(misses answered by a slow thread), `get_qps`, `set_qps`, `hit_rate` (hits per get),
`latency_p50_us`/`p90`/`p99`/`max` over all requests as the clients see them,
and `miss_latency_p50_us`. The clients' wake-to-run latency after the
response wake becomes the worker's `wake_latency_us`; `work_units` counts requests.

Defaults (module constants): `fast_threads=0` and `slow_threads=0` mean one per
CPU of the worker's affinity mask, `clients=0` two per fast thread.
"""

from __future__ import annotations

import os
import random
import threading
import time
from bisect import bisect_left
from collections import OrderedDict, deque
from dataclasses import dataclass
from itertools import accumulate

from ktstr.errors import ConfigError
from ktstr.validators import count, is_int, is_number
from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop
from ktstr.work.schbench import FUTEX_BLOCKED, Futex, Stats

TAOBENCH_FAST_THREADS = 0  # 0: one per CPU
TAOBENCH_SLOW_THREADS = 0  # 0: one per CPU
TAOBENCH_CLIENTS = 0  # 0: two per fast thread
TAOBENCH_KEYS = 10_000  # small enough to set up in well under a second under TCG
TAOBENCH_CACHE_ITEMS = 2_000
TAOBENCH_GET_PCT = 90
TAOBENCH_VALUE_BYTES = 256
TAOBENCH_MISS_LATENCY_US = 500
TAOBENCH_ZIPF_S = 0.9
TAOBENCH_SHARDS = 16
#: Pre-drawn key indices each client cycles through (no random draw per request).
KEY_TABLE = 2048  # pre-drawn (key, kind) pairs per client: set-up cost, not per-request cost
SUPERVISE_S = 0.05

_GET, _SET = 0, 1


@dataclass(frozen=True, slots=True, init=False)
class TaobenchConfig:
    """The request mix and server shape; see the module docstring."""

    fast_threads: int
    slow_threads: int
    clients: int
    keys: int
    cache_items: int
    get_pct: int
    value_bytes: int
    miss_latency_us: int
    zipf_s: float
    shards: int

    def __init__(self, fast_threads: int = TAOBENCH_FAST_THREADS,
                 slow_threads: int = TAOBENCH_SLOW_THREADS, clients: int = TAOBENCH_CLIENTS,
                 keys: int = TAOBENCH_KEYS, cache_items: int = TAOBENCH_CACHE_ITEMS,
                 get_pct: int = TAOBENCH_GET_PCT, value_bytes: int = TAOBENCH_VALUE_BYTES,
                 miss_latency_us: int = TAOBENCH_MISS_LATENCY_US,
                 zipf_s: float = TAOBENCH_ZIPF_S, shards: int = TAOBENCH_SHARDS) -> None:
        put = object.__setattr__
        put(self, "fast_threads", count(fast_threads, "TaobenchConfig fast_threads", 0))
        put(self, "slow_threads", count(slow_threads, "TaobenchConfig slow_threads", 0))
        put(self, "clients", count(clients, "TaobenchConfig clients", 0))
        put(self, "keys", count(keys, "TaobenchConfig keys"))
        put(self, "cache_items", count(cache_items, "TaobenchConfig cache_items"))
        if not is_int(get_pct) or not 0 <= get_pct <= 100:
            raise ConfigError(f"TaobenchConfig get_pct = {get_pct!r} is not a percentage; "
                              "hint: pass 0..100 (90 = nine gets per set)")
        put(self, "get_pct", get_pct)
        put(self, "value_bytes", count(value_bytes, "TaobenchConfig value_bytes"))
        put(self, "miss_latency_us", count(miss_latency_us, "TaobenchConfig miss_latency_us", 0))
        if not is_number(zipf_s) or not 0 <= zipf_s <= 3:
            raise ConfigError(f"TaobenchConfig zipf_s = {zipf_s!r} is not a Zipf exponent; "
                              "hint: pass 0 (uniform keys) .. 3 (very skewed), e.g. 0.9")
        put(self, "zipf_s", float(zipf_s))
        put(self, "shards", count(shards, "TaobenchConfig shards"))


class _Req:
    """One client's request slot, reused for every request it sends."""

    __slots__ = ("futex", "hit", "key", "kind", "latency", "miss_latency", "stamp",
                 "wakeup", "work_start")

    def __init__(self) -> None:
        self.futex = Futex()
        self.kind = _GET
        self.key = 0
        self.hit = False
        self.stamp = 0  # responder's clock just before it posts the client
        self.latency = Stats()
        self.miss_latency = Stats()
        self.wakeup = Stats()
        self.work_start = 0


class _Server:
    def __init__(self, cfg: TaobenchConfig, cpus: int) -> None:
        self.cfg = cfg
        self.n_fast = cfg.fast_threads or cpus
        self.n_slow = cfg.slow_threads or cpus
        self.n_clients = cfg.clients or 2 * self.n_fast
        self.stopping = threading.Event()
        self.shards: list[OrderedDict[int, bytes]] = [OrderedDict() for _ in range(cfg.shards)]
        self.locks = [threading.Lock() for _ in range(cfg.shards)]
        self.per_shard = max(1, cfg.cache_items // cfg.shards)
        self.fast_q: list[deque[_Req]] = [deque() for _ in range(self.n_fast)]
        self.fast_f = [Futex() for _ in range(self.n_fast)]
        self.slow_q: deque[_Req] = deque()
        self.slow_f = [Futex() for _ in range(self.n_slow)]
        self.reqs = [_Req() for _ in range(self.n_clients)]
        self.counts = [[0, 0, 0, 0] for _ in range(self.n_clients)]  # gets, hits, sets, misses
        weights = [1.0 / (k + 1) ** cfg.zipf_s for k in range(cfg.keys)]
        self.cdf = list(accumulate(weights))
        self.value = bytes(cfg.value_bytes)
        self.threads: list[threading.Thread] = []

    def respond(self, req: _Req) -> None:
        req.stamp = time.monotonic_ns()
        req.futex.post()

    def fast_thread(self, i: int) -> None:
        q, fut, stopping = self.fast_q[i], self.fast_f[i], self.stopping
        shards, locks, nsh = self.shards, self.locks, len(self.shards)
        while not stopping.is_set():
            fut.word.value = FUTEX_BLOCKED
            while True:
                try:
                    req = q.popleft()
                except IndexError:
                    break
                s = req.key % nsh
                with locks[s]:
                    shard = shards[s]
                    if req.kind == _SET:
                        self._store(shard, req.key)
                        req.hit = True
                    else:
                        req.hit = shard.get(req.key) is not None
                        if req.hit:
                            shard.move_to_end(req.key)
                if req.hit:
                    self.respond(req)
                else:
                    self.slow_q.append(req)
                    self.slow_f[req.key % self.n_slow].post()
            fut.wait(stopping)

    def _store(self, shard: OrderedDict[int, bytes], key: int) -> None:
        shard[key] = bytes(self.value)  # a cache copies the object it is given
        shard.move_to_end(key)
        if len(shard) > self.per_shard:
            shard.popitem(last=False)

    def slow_thread(self, i: int) -> None:
        fut, stopping, q = self.slow_f[i], self.stopping, self.slow_q
        delay = self.cfg.miss_latency_us / 1e6
        while not stopping.is_set():
            fut.word.value = FUTEX_BLOCKED
            while True:
                try:
                    req = q.popleft()
                except IndexError:
                    break
                if delay:
                    time.sleep(delay)  # the backing store's answer
                s = req.key % len(self.shards)
                with self.locks[s]:
                    self._store(self.shards[s], req.key)
                self.respond(req)
            fut.wait(stopping)

    def client(self, c: int) -> None:
        req, counts, stopping = self.reqs[c], self.counts[c], self.stopping
        rng = random.Random(c)
        total = self.cdf[-1]
        keys = [bisect_left(self.cdf, rng.random() * total) for _ in range(KEY_TABLE)]
        kinds = [_GET if rng.randrange(100) < self.cfg.get_pct else _SET
                 for _ in range(KEY_TABLE)]
        fast = c % self.n_fast
        q, fut = self.fast_q[fast], self.fast_f[fast]
        i = rng.randrange(KEY_TABLE)
        while not stopping.is_set():
            i = (i + 1) % KEY_TABLE
            req.kind, req.key = kinds[i], keys[i]
            req.futex.word.value = FUTEX_BLOCKED
            start = time.monotonic_ns()
            q.append(req)
            fut.post()
            req.futex.wait(stopping)
            if stopping.is_set():
                break
            now = time.monotonic_ns()
            req.wakeup.add(max(1, (now - req.stamp) // 1000))
            lat = max(1, (now - start) // 1000)
            req.latency.add(lat)
            if req.kind == _SET:
                counts[2] += 1
            else:
                counts[0] += 1
                if req.hit:
                    counts[1] += 1
                else:
                    counts[3] += 1
                    req.miss_latency.add(lat)

    def start(self) -> None:
        for target, n, name in ((self.fast_thread, self.n_fast, "tao-fast"),
                                (self.slow_thread, self.n_slow, "tao-slow"),
                                (self.client, self.n_clients, "tao-client")):
            for i in range(n):
                self.threads.append(threading.Thread(target=target, args=(i,), name=name,
                                                     daemon=True))
        for t in self.threads:
            t.start()

    def stop(self) -> int:
        self.stopping.set()
        for f in (*self.fast_f, *self.slow_f, *(r.futex for r in self.reqs)):
            f.post()
        deadline = time.monotonic() + 10.0
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return sum(t.is_alive() for t in self.threads)

    def requests(self) -> int:
        return sum(c[0] + c[2] for c in self.counts)


@dataclass(frozen=True, slots=True, init=False)
class Taobench(WorkType):
    """taobench's cache server and clients inside one worker; see the module doc."""

    config: TaobenchConfig

    def __init__(self, config: TaobenchConfig | None = None) -> None:
        if config is None:
            config = TaobenchConfig()
        if not isinstance(config, TaobenchConfig):
            raise ConfigError(f"Taobench config = {config!r} is not a TaobenchConfig; "
                              "hint: pass work.TaobenchConfig(get_pct=..., ...)")
        object.__setattr__(self, "config", config)

    def run(self, loop: WorkLoop) -> None:
        srv = _Server(self.config, len(os.sched_getaffinity(0)))
        srv.start()
        t0 = time.monotonic_ns()
        try:
            while loop.running:
                time.sleep(SUPERVISE_S)
                loop.resume_after_wait()
                loop.work_units = loop.iterations = srv.requests()
        finally:
            stuck = srv.stop()
        wall = (time.monotonic_ns() - t0) / 1e9
        if stuck:
            loop.note(f"Taobench: {stuck} threads did not stop within 10 s")
        gets = sum(c[0] for c in srv.counts)
        hits = sum(c[1] for c in srv.counts)
        sets = sum(c[2] for c in srv.counts)
        misses = sum(c[3] for c in srv.counts)
        lat, miss, wake = Stats(), Stats(), Stats()
        for r in srv.reqs:
            lat.combine(r.latency)
            miss.combine(r.miss_latency)
            wake.combine(r.wakeup)
        loop.work_units = loop.iterations = gets + sets
        per_s = 1.0 / wall if wall > 0 else 0.0
        p50, p90, p99 = lat.percentiles((50.0, 90.0, 99.0))
        loop.metrics.update({
            "total_qps": (gets + sets) * per_s, "fast_qps": (hits + sets) * per_s,
            "slow_qps": misses * per_s, "get_qps": gets * per_s, "set_qps": sets * per_s,
            "hit_rate": hits / gets if gets else 0.0,
            "latency_p50_us": float(p50), "latency_p90_us": float(p90),
            "latency_p99_us": float(p99), "latency_max_us": float(lat.max),
            "miss_latency_p50_us": float(miss.percentiles((50.0,))[0]),
            "fast_threads": float(srv.n_fast), "slow_threads": float(srv.n_slow),
            "clients": float(srv.n_clients),
        })
        wake.feed(loop)
