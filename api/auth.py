"""API keys (kept only as SHA-256 hashes), their scopes (admin, the collections a key sees and administers) and
per-key rate limits."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from core.errors import UserError

_HEX = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a collection name, as the API accepts it
_LISTS = re.compile(r"(^|[:,\n])\s*(collections|admin)\s*=")  # a value with one is read the new way
ORDER = ("admin", "collections=", "admin=")  # the options of a key, in the order they are written


@dataclass(frozen=True)
class Grant:
    """What a key may do: ``admin`` on every collection it sees, or only on ``admin_of``; it sees ``collections``
    (None: every one)."""

    admin: bool = False
    collections: frozenset[str] | None = None
    admin_of: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Principal:
    id: str  # "key:<first 12 hex of the hash>" or "anonymous:<client address>": safe to log and to label metrics
    admin: bool  # admin on every collection it sees
    collections: frozenset[str] | None = None  # the collections it sees; None: every one
    admin_of: frozenset[str] = frozenset()  # collections it administers besides (`admin=`)

    @property
    def restricted(self) -> bool:
        return self.collections is not None

    @property
    def full_admin(self) -> bool:
        """Admin on every collection, existing or not: /metrics (its labels name collections)."""
        return self.admin and self.collections is None

    @property
    def admin_somewhere(self) -> bool:
        return self.admin or bool(self.admin_of)

    def sees(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections

    def administers(self, collection: str) -> bool:
        return self.sees(collection) and (self.admin or collection in self.admin_of)

    def visible(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if self.sees(n)]


class KeyStore:
    """Parses ASSISTANT_API_KEYS and checks presented keys. The plain keys are hashed on load and dropped; a
    presented key is hashed and compared in constant time with every known hash.

    An entry is ``KEY`` or ``sha256:<64 hex>``, then options, each after a ':' and in this order: ``admin``
    (admin on every collection it sees), ``collections=a,b`` (sees only these; without it, every collection),
    ``admin=a`` (admin on these only; among its collections). The fixed order turns the likely slip of a ','
    between two keys (``k1:collections=a,k2:admin``) into an error. Entries are separated by ';' (or new lines);
    a value with neither a ';' nor a ``collections=`` / ``admin=`` option is read the old way, entries
    separated by ',' (``key1,key2:admin``), so existing settings keep their meaning. Errors name the entry by its position, never its text."""

    def __init__(self, entries: dict[str, Grant]):
        self._hashes = entries  # sha256 hex -> grant

    @classmethod
    def parse(cls, raw: str | None) -> KeyStore:
        raw = raw or ""
        scoped = ";" in raw or _LISTS.search(raw) is not None
        items = re.split(r"[;\n]" if scoped else r"[,\n]", raw)
        entries: dict[str, Grant] = {}
        first_seen: dict[str, int] = {}
        position = 0
        for item in items:
            item = item.strip()
            if not item:
                continue
            position += 1
            digest, grant = _parse_entry(item, position) if scoped else _parse_legacy(item, position)
            if digest in entries:
                before = entries[digest]
                if grant.collections is not None or grant.admin_of or before.collections is not None or before.admin_of:
                    raise UserError(f"ASSISTANT_API_KEYS entry {position}: the same key as entry {first_seen[digest]}; give each key once")
                grant = Grant(admin=before.admin or grant.admin)
            else:
                first_seen[digest] = position
            entries[digest] = grant
        return cls(entries)

    @property
    def enabled(self) -> bool:
        return bool(self._hashes)

    def verify(self, presented: str) -> Principal | None:
        digest = hash_key(presented)
        found = None
        for known, grant in self._hashes.items():  # no early exit: the time taken says nothing about the keys
            if hmac.compare_digest(known, digest):
                found = Principal(f"key:{known[:12]}", grant.admin, grant.collections, grant.admin_of)
        return found


def _digest(key: str, position: int) -> str:
    if key.startswith("sha256:"):
        digest = key.removeprefix("sha256:").lower()
        if not _HEX.match(digest):
            raise UserError(f"ASSISTANT_API_KEYS entry {position}: 'sha256:' must be followed by 64 hex digits")
        return digest
    if len(key) < 16:
        raise UserError(f"ASSISTANT_API_KEYS entry {position}: a key needs at least 16 characters")
    return hash_key(key)


def _parse_legacy(item: str, position: int) -> tuple[str, Grant]:
    """``key[:admin]`` or ``sha256:<hex>[:admin]``: the comma-separated form, read exactly as before scopes."""
    admin = item.endswith(":admin")
    return _digest(item.removesuffix(":admin"), position), Grant(admin=admin)


def _parse_entry(item: str, position: int) -> tuple[str, Grant]:
    where = f"ASSISTANT_API_KEYS entry {position}"
    parts = [p.strip() for p in item.split(":")]
    key_parts = 2 if parts[0] == "sha256" else 1
    key, options = ":".join(parts[:key_parts]), parts[key_parts:]
    if "," in key:
        raise UserError(f"{where}: a key cannot contain ','; separate keys with ';' when any key has collections= or admin=")
    if key.startswith(("collections=", "admin=")) or key == "admin":
        raise UserError(f"{where}: starts with an option; write KEY:collections=NAMES:admin=NAMES")
    digest = _digest(key, position)
    admin = False
    lists: dict[str, frozenset[str]] = {}
    stage = -1  # the options come in this order: admin, collections=, admin= (ORDER)
    for number, option in enumerate(options, start=1):
        name, equals, value = option.partition("=")
        label = name.strip() + equals
        if label not in ORDER:
            raise UserError(f"{where}: option {number} after the key is not one of 'admin', 'collections=NAMES', 'admin=NAMES'")
        if ORDER.index(label) == stage:
            raise UserError(f"{where}: '{label}' is given twice")
        if ORDER.index(label) < stage:
            raise UserError(
                f"{where}: write the options in the order KEY:admin:collections=NAMES or KEY:collections=NAMES:admin=NAMES; "
                f"'{label}' after a list may mean a ',' separates two keys: separate keys with ';'"
            )
        stage = ORDER.index(label)
        if label == "admin":
            admin = True
        else:
            lists[label] = _names(value, f"{where}: '{label}'")
    collections, admin_of = lists.get("collections="), lists.get("admin=", frozenset())
    if admin and admin_of:
        raise UserError(f"{where}: give either ':admin' (every collection it sees) or ':admin=NAMES', not both")
    if collections is not None and not admin_of <= collections:
        raise UserError(f"{where}: 'admin=' names a collection that is not among its 'collections='; add it there")
    return digest, Grant(admin=admin, collections=collections, admin_of=admin_of)


def _names(value: str, what: str) -> frozenset[str]:
    names = [n.strip() for n in value.split(",")]
    if not any(names):
        raise UserError(f"{what} lists no collection")
    for number, name in enumerate(names, start=1):
        if not _NAME.match(name):  # the text is not shown: a key misplaced into the list would be
            raise UserError(
                f"{what} item {number} is not a collection name (letters, digits, '-' and '_', at most 64); "
                "keys are separated by ';', names in a list by ','"
            )
    return frozenset(names)


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
