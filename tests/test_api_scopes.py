"""API keys scoped to collections (ASSISTANT_API_KEYS `KEY:collections=a,b:admin=a`): the syntax and its
errors, then every endpoint on a real uvicorn server. A collection out of a key's sight answers exactly as one
that does not exist; admin actions on a visible collection the key does not administer are a 403."""

from __future__ import annotations

import hashlib
import json
import uuid

import httpx
import pytest

from api.auth import KeyStore, hash_key
from core.errors import UserError
from tests.conftest import ingest_once, run_cli
from tests.live_server import live
from tests.test_api import METFORMIN, app_for, settings, sse_events, with_api  # noqa: F401 (settings: the fixture)

DOCS_READER = "docs-reader-0123456789"  # sees docs only
DOCS_ADMIN = "docs-admin-0123456789"  # sees docs and other, admin on docs only
SCOPED_ADMIN = "scoped-admin-0123456789"  # sees docs only, admin there (':admin' on every collection it sees)
ADMIN_ON_DOCS = "admin-on-docs-0123456789"  # sees every collection, admin on docs only
FULL = "full-admin-0123456789"  # as before scopes: every collection, admin everywhere
KEYS = (
    f"{DOCS_READER}:collections=docs; {DOCS_ADMIN}:collections=docs,other:admin=docs;\n"
    f"{SCOPED_ADMIN}:admin:collections=docs; {ADMIN_ON_DOCS}:admin=docs; {FULL}:admin"
)
ASK = "What is metformin used for?"


def h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


# --- the syntax -----------------------------------------------------------------------------------------------


def test_the_old_comma_separated_form_keeps_its_meaning():
    store = KeyStore.parse(f"{DOCS_READER},{FULL}:admin , {DOCS_READER}")
    reader, admin = store.verify(DOCS_READER), store.verify(FULL)
    assert reader is not None and not reader.admin and reader.collections is None and reader.sees("anything")
    assert admin is not None and admin.full_admin and admin.administers("anything")
    # base64 keys end in '=': without ';' or a collections= / admin= option they are read the old way
    assert KeyStore.parse("YWJjZGVmZ2hpamtsbW5vcA==,cXJzdHV2d3h5ejAxMjM0NQ==:admin").verify("cXJzdHV2d3h5ejAxMjM0NQ==").admin


def test_scoped_entries():
    hashed = hashlib.sha256(b"hashed-key-0123456789").hexdigest()
    store = KeyStore.parse(KEYS + f"\n sha256:{hashed.upper()} : collections = medical , finance : admin = finance ;;")
    reader, docs_admin, scoped, on_docs, full = (store.verify(k) for k in (DOCS_READER, DOCS_ADMIN, SCOPED_ADMIN, ADMIN_ON_DOCS, FULL))
    assert reader.collections == {"docs"} and not reader.admin_somewhere and reader.sees("docs") and not reader.sees("other")
    assert docs_admin.visible(["docs", "other", "secret"]) == ["docs", "other"]
    assert docs_admin.administers("docs") and not docs_admin.administers("other") and not docs_admin.full_admin
    assert scoped.administers("docs") and not scoped.administers("other") and not scoped.full_admin
    assert on_docs.sees("secret") and on_docs.administers("docs") and not on_docs.administers("secret")
    assert full.full_admin and full.collections is None
    by_hash = store.verify("hashed-key-0123456789")
    assert by_hash.collections == {"medical", "finance"} and by_hash.admin_of == {"finance"} and not by_hash.admin
    assert reader.id == f"key:{hash_key(DOCS_READER)[:12]}"
    assert all(k not in repr(store.__dict__) for k in (DOCS_READER, DOCS_ADMIN, FULL))


SECRET = "s3cret-key-0123456789"
OTHER = "0ther-key-0123456789"


@pytest.mark.parametrize(
    "raw, message",
    [
        (f"{SECRET},{OTHER}:collections=docs", "entry 1: a key cannot contain ','; separate keys with ';'"),
        (f"{SECRET}:collections=docs,{OTHER}:admin", "entry 1: write the options in the order KEY:admin:collections=NAMES or"),
        (f"{SECRET}:collections=docs,{OTHER}:collections=x", "entry 1: 'collections=' is given twice"),
        (f"{SECRET}:admin=docs,{OTHER}:collections=x", "entry 1: write the options in the order"),
        (f"{SECRET}:collections=docs;{OTHER}:colections=docs", "entry 2: option 1 after the key is not one of 'admin'"),
        (f"{SECRET}:collections=docs;{OTHER}:admin:admin", "entry 2: 'admin' is given twice"),
        (f"{SECRET}:collections=a:collections=b", "entry 1: 'collections=' is given twice"),
        (
            f"{SECRET}:admin:collections=docs:admin=docs",
            "entry 1: give either ':admin' (every collection it sees) or ':admin=NAMES', not both",
        ),
        (f"{SECRET}:collections=docs:admin=other", "entry 1: 'admin=' names a collection that is not among its 'collections='"),
        (f"{SECRET}:collections=docs:admin=docs,{OTHER}", "entry 1: 'admin=' names a collection that is not among its"),
        (f"{SECRET}:collections=", "entry 1: 'collections=' lists no collection"),
        (f"{SECRET}:collections=docs,,", "entry 1: 'collections=' item 2 is not a collection name"),
        (f"{SECRET}:collections=docs,../etc", "entry 1: 'collections=' item 2 is not a collection name"),
        (f"{SECRET}:admin=docs,{OTHER}+x", "entry 1: 'admin=' item 2 is not a collection name"),
        (f"collections=docs:{SECRET}", "entry 1: starts with an option; write KEY:collections=NAMES:admin=NAMES"),
        (f"{SECRET}:collections=docs;{SECRET}:admin", "entry 2: the same key as entry 1; give each key once"),
        ("short:collections=docs", "entry 1: a key needs at least 16 characters"),
        (f"sha256:{SECRET}:collections=docs", "entry 1: 'sha256:' must be followed by 64 hex digits"),
    ],
)
def test_bad_entries_are_named_by_position_never_by_their_text(raw, message):
    with pytest.raises(UserError, match="^ASSISTANT_API_KEYS " + message.replace("(", r"\(").replace(")", r"\)")) as caught:
        KeyStore.parse(raw)
    assert SECRET not in str(caught.value) and OTHER not in str(caught.value) and "+x" not in str(caught.value)


def test_serve_refuses_bad_keys_at_startup_without_showing_them(cli_env):
    env = {**cli_env, "ASSISTANT_API_KEYS": f"{SECRET}:collections=docs:admin=other"}
    r = run_cli(["serve", "--port", "0"], env)
    assert r.returncode == 2 and "entry 1: 'admin=' names a collection that is not among its 'collections='" in r.stderr
    assert SECRET not in r.stderr + r.stdout


# --- every endpoint ---------------------------------------------------------------------------------------------


@pytest.fixture
def scoped(settings, tmp_path, embedder):  # noqa: F811 (the fixture imported above)
    for name, text in {"other": "Warfarin thins the blood.", "secret": "The merger closes in March; nobody may know."}.items():
        folder = tmp_path / f"corpus-{name}"
        folder.mkdir()
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
        ingest_once(settings.index_dir / name, embedder, [folder])
    return with_api(settings, api_keys=KEYS)


def out_of_scope_requests(c: httpx.Client, key: str, name: str) -> dict[str, httpx.Response]:
    """Every read endpoint that names a collection, asked about ``name`` with ``key``."""
    ask = {"question": ASK, "collection": name}
    chat = {"model": name, "messages": [{"role": "user", "content": ASK}]}
    return {
        "ask": c.post("/v1/ask", json=ask, headers=h(key)),
        "ask/stream": c.post("/v1/ask/stream", json=ask, headers=h(key)),
        "search": c.get("/v1/search", params={"q": "merger", "collection": name}, headers=h(key)),
        "search as_of": c.get("/v1/search", params={"q": "merger", "collection": name, "as_of": 1}, headers=h(key)),
        "versions": c.get(f"/v1/collections/{name}/versions", headers=h(key)),
        "chat": c.post("/v1/chat/completions", json=chat, headers=h(key)),
        "chat stream": c.post("/v1/chat/completions", json={**chat, "stream": True}, headers=h(key)),
    }


def admin_requests(c: httpx.Client, key: str, name: str) -> dict[str, httpx.Response]:
    upload = [("files", ("note.txt", b"Statins lower cholesterol.", "text/plain"))]
    return {
        "upload": c.post("/v1/documents", data={"collection": name}, files=upload, headers=h(key)),
        "delete": c.delete("/v1/documents/abc", params={"collection": name}, headers=h(key)),
        "rollback": c.post(f"/v1/collections/{name}/rollback", json={"to": 1}, headers=h(key)),
    }


def shown(responses: dict[str, httpx.Response], name: str) -> dict[str, tuple[int, str]]:
    """Status and body of each, the collection's name (which the message repeats) replaced by NAME."""
    return {what: (r.status_code, r.text.replace(name, "NAME")) for what, r in responses.items()}


def test_a_collection_out_of_scope_answers_exactly_as_one_that_does_not_exist(scoped):
    with live(app_for(scoped)) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        unknown = shown(out_of_scope_requests(c, FULL, "nope"), "nope")  # how an unknown collection was always reported
        assert unknown["ask"][0] == 404 and json.loads(unknown["ask"][1])["detail"].startswith("no collection at ")
        assert {status for status, _ in unknown.values()} == {404}
        for key in (DOCS_READER, DOCS_ADMIN, SCOPED_ADMIN):
            secret = shown(out_of_scope_requests(c, key, "secret"), "secret")
            assert secret == shown(out_of_scope_requests(c, key, "nope"), "nope"), key
            # The same words as an unknown collection for an unrestricted key; the chat's 404 lists the models
            # this key may see, so it differs from that key's in the list only.
            assert {w: v for w, v in secret.items() if not w.startswith("chat")} == {
                w: v for w, v in unknown.items() if not w.startswith("chat")
            }, key
            visible = "docs, other" if key == DOCS_ADMIN else "docs"
            for what in ("chat", "chat stream"):
                assert secret[what][0] == 404 and f"model 'NAME' not found: the models are the collections ({visible})" in secret[what][1]
        # ... and an admin's write on it too (the upload does not create the unknown one).
        for key in (DOCS_ADMIN, SCOPED_ADMIN):
            secret = shown(admin_requests(c, key, "secret"), "secret")
            assert secret == shown(admin_requests(c, key, "nope"), "nope") and {status for status, _ in secret.values()} == {404}, key
            assert secret["rollback"] == unknown["versions"], key  # the same words as any unknown collection
        assert not (scoped.index_dir / "nope").exists() and not (scoped.index_dir / ".uploads" / "nope").exists()
        # A reader is refused admin actions before the collection matters: 403 for both alike.
        secret = shown(admin_requests(c, DOCS_READER, "secret"), "secret")
        assert secret == shown(admin_requests(c, DOCS_READER, "nope"), "nope") and {status for status, _ in secret.values()} == {403}


def test_lists_show_only_the_collections_a_key_may_see(scoped):
    with live(app_for(scoped)) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:

        def listed(key):
            collections = [m["name"] for m in c.get("/v1/collections", headers=h(key)).json()]
            models = [m["id"] for m in c.get("/v1/models", headers=h(key)).json()["data"]]
            assert collections == models
            return collections

        assert listed(FULL) == listed(ADMIN_ON_DOCS) == ["docs", "other", "secret"]
        assert listed(DOCS_READER) == listed(SCOPED_ADMIN) == ["docs"]
        assert listed(DOCS_ADMIN) == ["docs", "other"]


def test_a_key_works_on_its_collections(scoped):
    from openai import NotFoundError, OpenAI

    with live(app_for(scoped)) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        ask = {"question": ASK, "collection": "docs"}
        r = c.post("/v1/ask", json=ask, headers=h(DOCS_READER))
        assert r.status_code == 200 and r.json()["answer"].startswith(METFORMIN)
        with c.stream("POST", "/v1/ask/stream", json=ask, headers=h(DOCS_READER)) as r:
            assert r.status_code == 200 and sse_events(r.read().decode())[-1][0] == "done"
        r = c.get("/v1/search", params={"q": "asthma inhalers", "collection": "docs"}, headers=h(DOCS_READER))
        assert r.status_code == 200 and r.json()["hits"][0]["title"] == "asthma"
        r = c.get("/v1/collections/docs/versions", headers=h(DOCS_READER))
        assert r.status_code == 200 and r.json()["version"] >= 1
        assert c.get("/v1/search", params={"q": "warfarin", "collection": "other"}, headers=h(DOCS_ADMIN)).status_code == 200
        assert c.get("/v1/search", params={"q": "merger", "collection": "secret"}, headers=h(ADMIN_ON_DOCS)).status_code == 200
        client = OpenAI(base_url=srv.url + "/v1", api_key=DOCS_READER, max_retries=0)
        assert [m.id for m in client.models.list()] == ["docs"]
        reply = client.chat.completions.create(model="docs", messages=[{"role": "user", "content": ASK}])
        assert reply.choices[0].message.content.startswith(METFORMIN)
        with pytest.raises(NotFoundError, match=r"model 'secret' not found: the models are the collections \(docs\)"):
            client.chat.completions.create(model="secret", messages=[{"role": "user", "content": ASK}])


def test_admin_on_some_collections(scoped):
    with live(app_for(scoped)) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        for key in (DOCS_ADMIN, SCOPED_ADMIN, ADMIN_ON_DOCS):
            upload = [("files", (f"{key}.md", f"# Warfarin {key}\n\nWarfarin is an anticoagulant.".encode(), "text/markdown"))]
            r = c.post("/v1/documents", data={"collection": "docs"}, files=upload, headers=h(key))
            assert r.status_code == 200 and r.json()["documents_added"] == 1, (key, r.text)
            hit = c.get("/v1/search", params={"q": f"Warfarin {key}", "collection": "docs", "k": 1}, headers=h(key)).json()["hits"][0]
            r = c.delete(f"/v1/documents/{hit['document_id']}", params={"collection": "docs"}, headers=h(key))
            assert r.status_code == 200 and r.json()["documents_removed"] == 1, key
            versions = c.get("/v1/collections/docs/versions", headers=h(key)).json()
            r = c.post("/v1/collections/docs/rollback", json={"to": versions["version"] - 1}, headers=h(key))
            assert r.status_code == 200, (key, r.text)
        # A visible collection it does not administer: 403, saying which.
        for key, name in ((DOCS_ADMIN, "other"), (ADMIN_ON_DOCS, "other"), (ADMIN_ON_DOCS, "secret"), (ADMIN_ON_DOCS, "fresh")):
            for what, r in admin_requests(c, key, name).items():
                assert r.status_code == 403 and f"lacks the admin scope on collection '{name}'" in r.json()["detail"], (key, name, what)
        assert not (scoped.index_dir / "fresh").exists()
        # /metrics names every collection in its labels: only an admin that sees them all.
        assert [c.get("/metrics", headers=h(k)).status_code for k in (FULL, ADMIN_ON_DOCS, SCOPED_ADMIN, DOCS_READER)] == [
            200,
            403,
            403,
            403,
        ]
        # The old ':admin' still creates collections by uploading.
        r = c.post("/v1/documents", data={"collection": "fresh"}, files=[("files", ("a.txt", b"Hi there.", "text/plain"))], headers=h(FULL))
        assert r.status_code == 200 and (scoped.index_dir / "fresh").exists()


def test_a_conversation_that_was_on_a_collection_now_out_of_scope_cannot_be_continued(scoped):
    owner = f"{DOCS_READER}:collections=docs,secret;{FULL}:admin"  # the same key before its scope was narrowed
    with live(app_for(with_api(scoped, api_keys=owner))) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:

        def turn(collection, conversation_id=None):
            body = {"question": ASK, "collection": collection, "conversation_id": conversation_id}
            r = c.post("/v1/ask", json={k: v for k, v in body.items() if v}, headers=h(DOCS_READER))
            assert r.status_code == 200 and r.json()["conversation_id"], r.text
            return r.json()["conversation_id"]

        on_secret = turn("secret")
        moved = turn("docs", turn("secret"))  # its last turn is on docs, an earlier one on secret
        on_docs = turn("docs")
    with live(app_for(scoped)) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        listed = c.get("/v1/conversations", headers=h(DOCS_READER)).json()
        assert [x["id"] for x in listed] == [on_docs]
        unknown = str(uuid.uuid4())
        for hidden in (on_secret, moved, unknown):
            ask = {"question": "And its side effects?", "collection": "docs", "conversation_id": hidden}
            for r in (
                c.post("/v1/ask", json=ask, headers=h(DOCS_READER)),
                c.post("/v1/ask/stream", json=ask, headers=h(DOCS_READER)),
                c.get(f"/v1/conversations/{hidden}", headers=h(DOCS_READER)),
                c.patch(f"/v1/conversations/{hidden}", json={"title": "x"}, headers=h(DOCS_READER)),
            ):
                assert (r.status_code, r.json()["detail"]) == (404, f"no conversation {hidden!r}"), r.request.url
        r = c.post(
            "/v1/ask", json={"question": "And its side effects?", "collection": "docs", "conversation_id": on_docs}, headers=h(DOCS_READER)
        )
        assert r.status_code == 200 and r.json()["conversation_id"] == on_docs
        assert c.get(f"/v1/conversations/{on_docs}", headers=h(DOCS_READER)).json()["turn_count"] == 2
        # It can still be deleted; an unrestricted key's conversations are untouched by scopes.
        assert c.delete(f"/v1/conversations/{on_secret}", headers=h(DOCS_READER)).status_code == 200
        assert c.get("/v1/conversations", headers=h(FULL)).json() == []


def test_the_chat_in_api_mode_offers_only_the_collections_its_key_may_see(scoped):
    from ui.backend import ApiBackend, Options

    with live(app_for(scoped)) as srv:
        assert ApiBackend(srv.url, FULL).collections() == ["docs", "other", "secret"]
        backend = ApiBackend(srv.url, DOCS_READER)
        assert backend.collections() == ["docs"]
        assert list(backend.stream(ASK, "docs", Options()))[-1]["answer"].startswith(METFORMIN)
        with pytest.raises(UserError, match="the API answered 404: no collection at"):
            list(backend.stream(ASK, "secret", Options()))
        with pytest.raises(UserError, match="the API answered 403: this key lacks the admin scope"):
            backend.upload("docs", [("a.txt", b"Hi there.")], lambda *_: None)
        admin = ApiBackend(srv.url, DOCS_ADMIN)
        assert admin.collections() == ["docs", "other"]
        assert admin.upload("docs", [("a.txt", b"Statins lower cholesterol.")], lambda *_: None)["documents_added"] == 1
        with pytest.raises(UserError, match="the API answered 404: no collection at"):
            admin.upload("secret", [("a.txt", b"Hi there.")], lambda *_: None)
        with pytest.raises(UserError, match="the API answered 403: this key lacks the admin scope on collection 'other'"):
            admin.upload("other", [("a.txt", b"Hi there.")], lambda *_: None)
