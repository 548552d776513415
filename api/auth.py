"""API keys (kept only as SHA-256 hashes), scopes and per-key rate limits."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import threading
import time
from dataclasses import dataclass

from core.errors import UserError

_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Principal:
    id: str  # "key:<first 12 hex of the hash>" or "anonymous:<client address>": safe to log and to label metrics
    admin: bool


class KeyStore:
    """Parses ASSISTANT_API_KEYS: ``key[:admin]`` or ``sha256:<64 hex>[:admin]``, comma-separated. The plain
    keys are hashed on load and dropped; a presented key is hashed and compared in constant time."""

    def __init__(self, entries: dict[str, bool]):
        self._hashes = entries  # sha256 hex -> admin

    @classmethod
    def parse(cls, raw: str | None) -> KeyStore:
        entries: dict[str, bool] = {}
        for position, item in enumerate((raw or "").split(","), start=1):
            item = item.strip()
            if not item:
                continue
            admin = item.endswith(":admin")
            key = item.removesuffix(":admin")
            if key.startswith("sha256:"):
                digest = key.removeprefix("sha256:").lower()
                if not _HEX.match(digest):
                    raise UserError(f"ASSISTANT_API_KEYS entry {position}: 'sha256:' must be followed by 64 hex digits")
            else:
                if len(key) < 16:
                    raise UserError(f"ASSISTANT_API_KEYS entry {position}: a key needs at least 16 characters")
                digest = hash_key(key)
            entries[digest] = entries.get(digest, False) or admin
        return cls(entries)

    @property
    def enabled(self) -> bool:
        return bool(self._hashes)

    def verify(self, presented: str) -> Principal | None:
        digest = hash_key(presented)
        found = None
        for known, admin in self._hashes.items():  # no early exit: the time taken says nothing about the keys
            if hmac.compare_digest(known, digest):
                found = Principal(f"key:{known[:12]}", admin)
        return found


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class RateLimiter:
    """A token bucket per principal: ``per_minute`` requests a minute, bursts up to ``per_minute``."""

    def __init__(self, per_minute: int, *, clock=time.monotonic, max_principals: int = 100_000):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.max_principals = max_principals
        self._buckets: dict[str, tuple[float, float]] = {}  # id -> (tokens, last time)
        self._lock = threading.Lock()

    def take(self, principal: str) -> float:
        """0 when the request may go ahead, else the seconds until it could."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(principal, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[principal] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[principal] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            if len(self._buckets) > self.max_principals:  # forget full buckets first: they carry no state
                for key in [k for k, (t, _) in self._buckets.items() if t >= self.capacity][: len(self._buckets) // 2]:
                    del self._buckets[key]
        return wait


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
