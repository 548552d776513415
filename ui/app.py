"""The Streamlit chat: `assistant ui` (or `make run`) starts it; `streamlit run ui/app.py` works too.

Three views in the sidebar: Chat (streamed, cited answers with the guardrails' notices and feedback; a
conversation's follow-ups are read with its earlier turns, and past conversations can be opened, renamed and
deleted), Upload (add files to a collection) and Evaluation (the latest `assistant eval` report). Settings come from
the ASSISTANT_* environment like everywhere else; ASSISTANT_UI__API_URL makes it a client of a running API.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import streamlit as st

from core.config import Settings
from core.errors import AssistantError
from ui import render
from ui.backend import Options, make_backend
from ui.feedback import FeedbackStore

st.set_page_config(page_title="Domain assistant", page_icon=":material/clinical_notes:", layout="wide")


@st.cache_resource(show_spinner="Loading the assistant ...")
def resources(environment: tuple[tuple[str, str], ...]):
    """Settings, backend and feedback store, built once per configuration (the key is the environment)."""
    settings = Settings()
    return settings, make_backend(settings), FeedbackStore(settings.ui.feedback_db)


settings, backend, feedback = resources(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("ASSISTANT_"))))
state = st.session_state
state.setdefault("messages", [])
state.setdefault("conversation_id", None)  # None: the next question starts a new conversation


# ---------------------------------------------------------------------- sidebar

st.sidebar.title("Domain assistant")
view = st.sidebar.radio("View", ["Chat", "Upload", "Evaluation"], key="view", label_visibility="collapsed")
try:
    collections = backend.collections()
except AssistantError as exc:
    collections = []
    st.sidebar.error(str(exc))


def chat_settings() -> tuple[str | None, Options]:
    sidebar = st.sidebar
    if not collections:
        sidebar.warning("No collections yet: add documents on the Upload view or with `assistant ingest`.")
        return None, Options()
    collection = sidebar.selectbox("Collection", collections, key="collection")
    sidebar.caption("Answers come only from this collection's documents.")
    k = sidebar.slider("Passages (k)", 1, 20, 5, key="k")
    dense = sidebar.slider(
        "Hybrid weight (0 = keywords only, 1 = meaning only)", 0.0, 1.0, float(settings.retrieval.dense_weight), 0.05, key="dense_weight"
    )
    temperature = sidebar.slider("Temperature (0 = deterministic)", 0.0, 1.5, float(settings.generator.temperature), 0.1, key="temperature")
    max_tokens = sidebar.number_input("Max answer tokens", 16, 2048, int(settings.generator.max_new_tokens), 16, key="max_tokens")
    adapter = sidebar.toggle(
        "LoRA adapter",
        value=True,
        key="adapter",
        disabled=not backend.supports_adapter_switch,
        help="The project's fine-tuned adapter (grounded, cited answers). Off: the base model."
        + ("" if backend.supports_adapter_switch else " The API server decides this."),
    )
    return collection, Options(k=k, dense_weight=dense, temperature=temperature, max_tokens=int(max_tokens), adapter=adapter)


# ---------------------------------------------------------------------- chat


def show_answer(message: dict[str, Any], index: int) -> None:
    answer = message["view"]
    st.markdown(answer["answer"])
    if answer.get("rewritten"):
        # A follow-up is searched as a standalone question built from the conversation: say which.
        st.caption(f"Searched for: {answer['standalone']}")
    for level, text in render.notices(answer):
        getattr(st, level)(text)
    table = render.computation_html(answer)
    if table:
        st.markdown(table, unsafe_allow_html=True)
    citations = answer.get("citations", [])
    claims = render.citing_sentences(answer["answer"], len(answer.get("sources", [])))
    if citations:
        st.caption(f"Sources ({len(citations)} cited of {len(answer['sources'])} passages given to the model)")
    for source in citations:
        with st.expander(f"[{source['number']}] {source['title']}"):
            spans = render.cited_spans(source["snippet"], claims.get(source["number"], []))
            st.markdown(render.highlighted_html(source["snippet"], spans), unsafe_allow_html=True)
            st.caption(render.source_caption(source))
    if "guard_events" in answer:  # a stored turn of a reopened conversation was rated (or not) back then
        feedback_controls(message, index)


def messages_of(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    """A stored conversation's turns as chat messages (the answer with its cited passages)."""
    out: list[dict[str, Any]] = []
    for turn in conversation["turns"]:
        out.append({"role": "user", "content": turn["message"], "collection": turn["collection"]})
        view = {
            "answer": turn["answer"],
            "citations": turn["citations"],
            "sources": turn["citations"],
            "standalone": turn["standalone"],
            "rewritten": turn["standalone"] != turn["message"],
        }
        out.append({"role": "assistant", "view": view, "question": turn["message"], "collection": turn["collection"]})
    return out


def conversation_sidebar() -> None:
    """New, open, rename and delete conversations (the backend keeps them: this process's store, or the API's)."""
    sidebar = st.sidebar
    sidebar.subheader("Conversations")
    if sidebar.button("New conversation", icon=":material/add_comment:", key="new-conversation"):
        state.messages, state.conversation_id = [], None
        st.rerun()
    try:
        past = backend.conversations()
    except AssistantError as exc:
        sidebar.error(str(exc))
        return
    if not past:
        sidebar.caption("Your questions and their follow-ups are kept here.")
        return
    labels = {c["id"]: f"{c['title'] or 'Untitled'} · {c['collection']}" for c in past}
    ids = list(labels)
    current = ids.index(state.conversation_id) if state.conversation_id in labels else None
    # Keyed by the open conversation, so that starting a new one (or deleting) does not keep the old choice.
    chosen = sidebar.selectbox(
        "Open", ids, index=current, format_func=labels.get, placeholder="Open a past conversation", key=f"open-{state.conversation_id}"
    )
    if chosen and chosen != state.conversation_id:
        state.messages, state.conversation_id = messages_of(backend.conversation(chosen)), chosen
        st.rerun()
    if state.conversation_id in labels:
        title = sidebar.text_input(
            "Title", value=next(c["title"] for c in past if c["id"] == state.conversation_id), key=f"title-{state.conversation_id}"
        )
        rename, delete = sidebar.columns(2)
        if rename.button("Rename", disabled=not title.strip(), key="rename-conversation"):
            backend.rename(state.conversation_id, title)
            st.rerun()
        if delete.button("Delete", type="secondary", key="delete-conversation"):
            backend.delete(state.conversation_id)
            state.messages, state.conversation_id = [], None
            st.rerun()


def feedback_controls(message: dict[str, Any], index: int) -> None:
    if message.get("rated"):
        st.caption(f"Thanks: feedback saved ({'helpful' if message['rated'] > 0 else 'not helpful'}).")
        return
    up, down, comment = st.columns([1, 1, 8])
    note = comment.text_input(
        "Comment (optional)", key=f"comment-{index}", label_visibility="collapsed", placeholder="Optional comment, sent with your rating"
    )
    rating = (
        1
        if up.button(":material/thumb_up:", key=f"up-{index}", help="Helpful")
        else (-1 if down.button(":material/thumb_down:", key=f"down-{index}", help="Not helpful") else 0)
    )
    if rating:
        feedback.add(collection=message["collection"], question=message["question"], answer=message["view"], rating=rating, comment=note)
        message["rated"] = rating
        st.rerun()


def chat() -> None:
    collection, options = chat_settings()
    counts = feedback.counts()
    st.sidebar.download_button(
        "Export feedback (JSONL)",
        feedback.export_jsonl(),
        file_name="feedback.jsonl",
        mime="application/x-ndjson",
        disabled=not (counts["up"] + counts["down"]),
        help=f"{counts['up']} helpful, {counts['down']} not helpful so far",
    )
    conversation_sidebar()
    st.title("Ask your documents")
    for index, message in enumerate(state.messages):
        with st.chat_message(message["role"]):
            if message["role"] == "user":
                st.markdown(message["content"])
                st.caption(message["collection"])
            elif "view" in message:
                show_answer(message, index)
            else:
                st.error(message["content"])
    question = st.chat_input("Ask a question about the documents", disabled=collection is None)
    if not question or collection is None:
        return
    state.messages.append({"role": "user", "content": question, "collection": collection})
    with st.chat_message("user"):
        st.markdown(question)
        st.caption(collection)
    with st.chat_message("assistant"):
        placeholder = st.empty()
        text, answer = "", None
        try:
            for item in backend.stream(question, collection, options, state.conversation_id):
                if isinstance(item, str):
                    text += item
                    placeholder.markdown(text + " ▌")
                else:
                    answer = item
                    state.conversation_id = item.get("conversation_id") or state.conversation_id
        except AssistantError as exc:
            placeholder.empty()
            state.messages.append({"role": "assistant", "content": f"Could not answer: {exc}", "collection": collection})
            st.error(f"Could not answer: {exc}")
            return
        placeholder.empty()
        message = {"role": "assistant", "view": answer, "question": question, "collection": collection}
        state.messages.append(message)
        show_answer(message, len(state.messages) - 1)


# ---------------------------------------------------------------------- upload


def upload() -> None:
    st.title("Add documents")
    choice = st.selectbox("Collection", [*collections, "New collection ..."], key="upload-collection")
    name = (
        st.text_input("New collection name (letters, digits, - and _)", key="new-collection") if choice == "New collection ..." else choice
    )
    files = st.file_uploader(
        "Files",
        accept_multiple_files=True,
        key="files",
        help="PDF (scanned pages read by OCR), DOCX, HTML, Markdown, text, CSV, JSON(L), XML (MedQuAD), TAT-QA JSON, PNG, JPEG, TIFF",
    )
    if not st.button("Add to collection", disabled=not files or not name, type="primary"):
        return
    bar = st.progress(0.0, "Starting ...")
    try:
        report = backend.upload(name, [(f.name, f.getvalue()) for f in files], lambda share, text: bar.progress(share, text))
    except AssistantError as exc:
        st.error(f"Upload failed: {exc}")
        return
    added = report.get("files", [])
    if added:
        st.success(
            f"Added {len(added)} file(s) to {name!r}: {report.get('documents_added', 0)} documents, {report.get('chunks_added', 0)} chunks."
        )
    for skipped in report.get("skipped", []):
        st.warning(f"Skipped {skipped['file']}: {skipped['reason']}")
    st.caption(f"Collection totals: {report.get('totals', {})}")


# ---------------------------------------------------------------------- evaluation


def latest_report(folder: Path) -> Path | None:
    reports = [p for p in Path(folder).glob("**/*.json") if p.is_file()]
    return max(reports, key=lambda p: p.stat().st_mtime) if reports else None


def evaluation() -> None:
    st.title("Evaluation")
    path = latest_report(settings.ui.reports_dir)
    if path is None:
        st.info(
            f"No evaluation report in {settings.ui.reports_dir}/ yet: `assistant eval --suite all --out {settings.ui.reports_dir}/` writes one."
        )
        return
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        summary: dict[str, float] = {k: float(v) for k, v in report["summary"].items() if isinstance(v, (int, float))}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        st.error(f"{path} is not a readable evaluation report: {exc}")
        return
    st.caption(f"{path} ({report.get('created_at', 'undated')}; configuration: {report.get('config', {}).get('name', 'default')})")
    scores = {k: v for k, v in summary.items() if 0.0 <= v <= 1.0}
    if scores:
        st.subheader("Metrics")
        st.bar_chart(scores, horizontal=True)
    other = {k: v for k, v in summary.items() if k not in scores}
    if other:
        st.dataframe([{"metric": k, "value": v} for k, v in other.items()], hide_index=True)
    items = report.get("items", [])
    metrics = sorted({m for item in items for m in item.get("scores", {})})
    if items and metrics:
        st.subheader("Worst-scoring questions")
        metric = st.selectbox("Ranked by", metrics, key="eval-metric")
        ranked = sorted((i for i in items if metric in i.get("scores", {})), key=lambda i: i["scores"][metric])[:20]
        st.dataframe(
            [
                {"id": i.get("id"), "question": i.get("question"), metric: i["scores"][metric], "answer": (i.get("answer") or "")[:200]}
                for i in ranked
            ],
            hide_index=True,
        )


{"Chat": chat, "Upload": upload, "Evaluation": evaluation}[view]()
