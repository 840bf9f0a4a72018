"""The Gradio Blocks chat app: streamed chat beside item cards, a profile panel with removable
constraints, a user picker, example prompts and a stop button; plus JSON API endpoints
(``/start``, ``/chat``, ``/feedback``, ``/remove_constraint``, ``/users``) for `gradio_client`.

All per-session data lives in one `gr.State` (a plain dict), so two browsers never share a
conversation; the backend (and its models) is built once and shared by every session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recagent.errors import RecagentError
from recagent.ui.backend import FEEDBACK_KINDS, ChatBackend, ProfileView
from recagent.ui.render import card_html, empty_cards_html, profile_html, why_html

NEW_USER = "__new__"
CSS_PATH = Path(__file__).with_name("style.css")
# Glyphs from common text fonts (emoji fonts are missing on many Linux desktops).
FEEDBACK_LABELS = {"like": "♥ Like", "dislike": "✗ Dislike", "seen": "✓ Seen it"}
# Standard fonts only: the app makes no request outside this server (no web fonts).
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]


def theme():
    """The app's theme (pass to ``launch(theme=...)``, which owns themes in Gradio 6)."""
    import gradio as gr

    return gr.themes.Soft(primary_hue="indigo", secondary_hue="slate", neutral_hue="slate",
                          font=SYSTEM_FONTS, font_mono=MONO_FONTS, radius_size="md")


def css() -> str:
    """The app's stylesheet (``ui/style.css``)."""
    return CSS_PATH.read_text(encoding="utf-8")


KNOWN_USERS_OFF = ("Chatting as a known user is off on this server; start as a new user (the operator turns "
                   "it on with --known-users or ui.known_users=true).")


def new_ui_state(backend: ChatBackend, user_id: str | None, known_users: bool = False) -> dict:
    """The per-session UI state: the backend's state plus what is on screen.

    Keys: ``s`` (backend state), ``cards`` (shown `Card` dicts), ``profile`` (`ProfileView`
    dict), ``feedback`` (item id -> kind given in this reply), ``user`` (picker value), ``sid``
    (random session id, set on first use) and ``seq`` (version number; see `recagent.ui.mailbox`).

    Args:
        backend: the shared backend.
        user_id: a known user id, or None for a new user.
        known_users: False refuses ``user_id`` (a `gr.Error`): visitors may not chat as a user of the log.
    """
    if user_id is not None and not known_users:
        import gradio as gr

        raise gr.Error(KNOWN_USERS_OFF)
    s = _call(backend.new_session, user_id)
    # "sid" is given by the mailbox on first use: this dict is also the template every page copies.
    return {"s": s, "cards": [], "profile": _call(backend.profile, s).to_dict(), "feedback": {},
            "user": user_id or NEW_USER, "sid": None, "seq": 0}


def build_app(backend: ChatBackend, max_cards: int = 6, max_chips: int = 8, max_message_chars: int = 2000,
              concurrency: int = 2, title: str = "recagent", default_user: str | None = None,
              known_users: bool = False):
    """Build the Blocks app around one shared backend.

    Args:
        backend: a `ChatBackend` (models already loaded).
        max_cards: card slots on screen (replies with more items show the first ones).
        max_chips: removable-constraint buttons on screen.
        max_message_chars: longer messages are refused with a `gr.Error`.
        concurrency: chat turns processed at once (UI and API share the limit).
        title: browser tab title.
        default_user: the user picked when a page opens (None = new user).
        known_users: offer the user picker (chat as a user of the log; off = new users only, and
            ``/users`` lists nobody). A demo feature for public data.
    """
    import gradio as gr

    if default_user is not None and not known_users:
        raise RecagentError(f"--user {default_user}: chatting as a known user is off; add --known-users "
                            "(or set ui.known_users=true) to allow it.")
    from recagent.ui.mailbox import Mailbox, StopSignals

    box = Mailbox()  # feedback given while a reply is being written joins the turn's final state
    stops = StopSignals()  # per-session stop events of the turns now running
    users = backend.users() if known_users else []
    choices = [("New user (no history)", NEW_USER)] + [(label, uid) for uid, label in users]
    initial = new_ui_state(backend, default_user, known_users)

    with gr.Blocks(title=title, fill_width=True) as demo:
        state = gr.State(initial)
        with gr.Row(elem_classes="ra-top", equal_height=True):
            gr.HTML('<div class="ra-brand"><span class="ra-logo">◆</span> recagent'
                    '<span class="ra-tag">conversational recommender</span></div>', scale=3)
            user_dd = gr.Dropdown(choices=choices, value=default_user or NEW_USER, label="Who is chatting?", filterable=True,
                                  scale=2, elem_id="ra-user", visible=known_users)
            restart = gr.Button("New conversation", size="sm", scale=0, elem_id="ra-restart")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=240, elem_classes="ra-side"):
                gr.HTML('<h3 class="ra-h">Your profile</h3>')
                profile = gr.HTML(profile_html(initial["profile"]), elem_id="ra-profile")
                with gr.Row(elem_classes="ra-chip-row"):
                    chips = [gr.Button("", visible=False, size="sm", elem_classes="ra-constraint",
                                       elem_id=f"ra-chip-{j}") for j in range(max_chips)]
            with gr.Column(scale=5, min_width=340):
                chatbot = gr.Chatbot(value=[], height=470, show_label=False, elem_id="ra-chat",
                                     placeholder="**Hi!** Tell me what you feel like, or name something you loved.")
                with gr.Row(elem_classes="ra-input", equal_height=True):
                    msg = gr.Textbox(placeholder="e.g. funny sci-fi from the 80s, no horror", show_label=False,
                                     scale=5, container=False, max_lines=4, elem_id="ra-msg")
                    send = gr.Button("Send", variant="primary", scale=0, min_width=80, elem_id="ra-send")
                    stop = gr.Button("Stop", variant="stop", scale=0, min_width=70, elem_id="ra-stop")
                gr.Examples(examples=[[e] for e in backend.examples()], inputs=[msg], label="Try one")
            with gr.Column(scale=7, min_width=420):
                gr.HTML('<h3 class="ra-h">Recommendations</h3>')
                empty = gr.HTML(empty_cards_html(), elem_id="ra-empty")
                with gr.Row(equal_height=False, elem_classes="ra-grid"):  # a CSS grid, see style.css
                    slots = [_slot(gr, i) for i in range(max_cards)]

        # API-only endpoints (not drawn): the same flow as JSON for gradio_client.
        with gr.Column(visible=False):
            api_in = gr.Textbox()
            api_kind = gr.Textbox()
            api_out = gr.JSON()
            api_btns = {n: gr.Button(n) for n in ("start", "chat", "feedback", "remove_constraint", "users")}

        # -- view helpers ------------------------------------------------------------------
        def profile_updates(ui: dict) -> list:
            cons = ui["profile"]["constraints"]
            out = [profile_html(ui["profile"])]
            for j in range(max_chips):
                out.append(gr.update(value=f"✕  {cons[j][1]}", visible=True) if j < len(cons) else gr.update(visible=False))
            return out

        def card_updates(ui: dict) -> list:
            out = [gr.update(visible=not ui["cards"])]
            for i in range(max_cards):
                if i < len(ui["cards"]):
                    c = ui["cards"][i]
                    img = c.get("image_path")
                    out += [gr.update(visible=True), gr.update(value=img, visible=bool(img)),
                            card_html(c, i + 1, ui["feedback"].get(c["item_id"])), why_html(c)]
                else:
                    out += [gr.update(visible=False), gr.update(value=None, visible=False), "", ""]
            return out

        def skip_cards() -> list:
            return [gr.skip()] * (1 + 4 * max_cards)

        def skip_profile() -> list:
            return [gr.skip()] * (1 + max_chips)

        profile_outs = [profile, *chips]
        card_outs = [empty] + [c for s in slots for c in (s["col"], s["img"], s["info"], s["why"])]

        # -- handlers --------------------------------------------------------------------
        def ui_start(user: str | None, ui: dict):
            ui = new_ui_state(backend, None if user in (None, "", NEW_USER) else str(user), known_users)
            return [[], ui, *profile_updates(ui), *card_updates(ui)]

        def turn(message: str, ui: dict):
            """One chat turn as a stream of (reply text, ui state, changed cards/profile). Cards
            come before their reasons; feedback on them meanwhile is queued in ``box`` and merged
            into the final state (issue 11)."""
            message = " ".join(str(message or "").split())
            if not message:
                raise gr.Error("Type a message first, e.g. 'a funny sci-fi from the 80s'.")
            if len(message) > max_message_chars:
                raise gr.Error(f"Your message has {len(message)} characters; the limit is {max_message_chars}. Shorten it and send again.")
            start = ui = box.begin(dict(ui), apply_fb)
            finished = False
            halt = stops.begin(ui["sid"])
            try:
                for upd in _under(halt, backend.respond_stream(ui["s"], message)):
                    changed_cards = upd.cards is not None
                    if changed_cards:
                        cards = [c.to_dict() for c in upd.cards]
                        same = [c["item_id"] for c in cards] == [c["item_id"] for c in ui["cards"]]
                        ui = {**ui, "cards": cards, "feedback": ui["feedback"] if same else {}}
                    if upd.profile is not None:
                        ui = {**ui, "profile": upd.profile.to_dict()}
                    if upd.done and upd.state is not None:
                        ui = box.finish({**ui, "s": upd.state}, apply_fb)
                        finished = True
                    else:
                        ui = {**ui, "feedback": {**ui["feedback"], **box.queued(ui)}}
                    yield upd.text, ui, changed_cards or finished, upd.profile is not None or finished, upd.done
            except RecagentError as exc:
                raise gr.Error(str(exc)) from None
            finally:
                stops.end(start["sid"], halt)
                if not finished:  # stopped or failed: queued feedback joins the state the turn started from
                    box.finish({**start, "cards": ui["cards"], "feedback": {}}, apply_fb)

        def apply_fb(ui: dict, item_id: str, kind: str) -> dict:
            return _apply_feedback(backend, ui, item_id, kind)

        def ui_chat(message: str, history: list, ui: dict):
            history = list(history or [])
            text = " ".join(str(message or "").split())
            pending = history + [{"role": "user", "content": text}, {"role": "assistant", "content": "…"}]
            for reply, ui, cards_changed, prof_changed, _done in turn(message, ui):
                pending[-1] = {"role": "assistant", "content": reply or "…"}
                yield ["", list(pending), ui,
                       *(profile_updates(ui) if prof_changed else skip_profile()),
                       *(card_updates(ui) if cards_changed else skip_cards())]

        def feedback(i: int, kind: str, ui: dict):
            if i >= len(ui["cards"]):
                raise gr.Error("That card is no longer shown; send a new message to get fresh picks.")
            item = ui["cards"][i]["item_id"]
            new, save = box.give(ui, item, kind, apply_fb)
            return [new if save else gr.skip(), card_html(ui["cards"][i], i + 1, kind), *profile_updates(new)]

        def remove_chip(j: int, ui: dict):
            cons = ui["profile"]["constraints"]
            if j >= len(cons):
                raise gr.Error("That constraint is already gone.")
            ui = box.current(ui)
            s = _call(backend.remove_constraint, ui["s"], cons[j][0])
            ui = box.store({**ui, "s": s, "profile": _call(backend.profile, s).to_dict()})
            return [ui, *profile_updates(ui)]

        # -- wiring -------------------------------------------------------------------------
        start_outs = [chatbot, state, *profile_outs, *card_outs]
        user_dd.change(ui_start, [user_dd, state], start_outs, api_visibility="private")
        restart.click(ui_start, [user_dd, state], start_outs, api_visibility="private")
        chat_evt = gr.on([msg.submit, send.click], ui_chat, [msg, chatbot, state],
                         [msg, chatbot, state, *profile_outs, *card_outs], api_visibility="private",
                         concurrency_id="turn", concurrency_limit=concurrency, show_progress="hidden")
        # Stop ends the LLM generation itself (the event reaches every LLM call of the turn), not
        # only the UI event: the model is free for other sessions within a fraction of a second.
        def stop_turn(ui: dict) -> None:
            stops.stop(ui.get("sid"))

        stop.click(stop_turn, [state], None, cancels=[chat_evt], queue=False, api_visibility="private")
        for i, s in enumerate(slots):
            for kind in FEEDBACK_KINDS:
                s[kind].click(lambda ui, i=i, kind=kind: feedback(i, kind, ui), [state],
                              [state, s["info"], *profile_outs], api_visibility="private")
        for j, chip in enumerate(chips):
            chip.click(lambda ui, j=j: remove_chip(j, ui), [state], [state, *profile_outs], api_visibility="private")

        _wire_api(gr, backend, api_btns, api_in, api_kind, api_out, state, turn, concurrency, users, known_users,
                  box, apply_fb)
    return demo


def _slot(gr, i: int) -> dict:
    """One card slot: image, text, feedback buttons and a "why this?" accordion."""
    with gr.Column(visible=False, min_width=250, elem_classes="ra-slot", elem_id=f"ra-slot-{i}") as col:
        img = gr.Image(visible=False, show_label=False, interactive=False, height=210, container=False,
                       buttons=[], elem_classes="ra-img")
        info = gr.HTML("", elem_classes="ra-info")
        with gr.Row(elem_classes="ra-fb-row"):
            btns = {k: gr.Button(FEEDBACK_LABELS[k], size="sm", min_width=60, elem_classes=f"ra-fb ra-fb-{k}",
                                 elem_id=f"ra-{k}-{i}") for k in FEEDBACK_KINDS}
        with gr.Accordion("Why this?", open=False, elem_classes="ra-why-acc"):
            why = gr.HTML("")
    return {"col": col, "img": img, "info": info, "why": why, **btns}


def _wire_api(gr, backend, btns, api_in, api_kind, api_out, state, turn, concurrency, users, known_users,
              box, apply_fb) -> None:
    """JSON endpoints sharing the session's `gr.State` with the UI (gradio_client keeps one
    session per `Client`). ``users``: what ``/users`` lists (empty when known users are off)."""

    def api_start(user: str, ui: dict):
        user = user.strip() if user and user.strip() not in ("", NEW_USER) else None
        ui = new_ui_state(backend, user, known_users)
        return {"user": ui["user"], "profile": ui["profile"]}, ui

    def api_chat(message: str, ui: dict):
        for reply, ui, _c, _p, done in turn(message, ui):
            yield {"reply": reply, "done": done, "cards": ui["cards"], "profile": ui["profile"]}, ui

    def api_feedback(item_id: str, kind: str, ui: dict):
        new, save = box.give(ui, str(item_id), str(kind), apply_fb)
        return {"profile": new["profile"], "feedback": new["feedback"], "queued": not save}, (new if save else gr.skip())

    def api_remove(key: str, ui: dict):
        ui = box.current(ui)
        s = _call(backend.remove_constraint, ui["s"], key)
        ui = box.store({**ui, "s": s, "profile": _call(backend.profile, s).to_dict()})
        return {"profile": ui["profile"]}, ui

    btns["start"].click(api_start, [api_in, state], [api_out, state], api_name="start")
    btns["chat"].click(api_chat, [api_in, state], [api_out, state], api_name="chat",
                       concurrency_id="turn", concurrency_limit=concurrency)
    btns["feedback"].click(api_feedback, [api_in, api_kind, state], [api_out, state], api_name="feedback")
    btns["remove_constraint"].click(api_remove, [api_in, state], [api_out, state], api_name="remove_constraint")
    listed = [list(u) for u in users]  # built once: the same list the picker shows
    btns["users"].click(lambda: listed, None, [api_out], api_name="users")


def _apply_feedback(backend: ChatBackend, ui: dict, item_id: str, kind: str) -> dict:
    if kind not in FEEDBACK_KINDS:
        import gradio as gr

        raise gr.Error(f"Feedback '{kind}' is unknown; use one of {', '.join(FEEDBACK_KINDS)}.")
    s = _call(backend.feedback, ui["s"], item_id, kind)
    prof: ProfileView = _call(backend.profile, s)
    return {**ui, "s": s, "profile": prof.to_dict(), "feedback": {**ui["feedback"], item_id: kind}}


def _call(fn, *args: Any):
    """Call the backend; project errors become `gr.Error` (a message, not a traceback)."""
    try:
        return fn(*args)
    except RecagentError as exc:
        import gradio as gr

        raise gr.Error(str(exc)) from None


def _under(halt, gen):
    """Iterate ``gen`` with every step inside ``stopping(halt)``: Gradio may run each step in a
    different worker thread, so the stop context is entered per step, around the code that
    calls the LLM."""
    from recagent.agent.llm import stopping

    while True:
        with stopping(halt):
            try:
                item = next(gen)
            except StopIteration:
                return
        yield item
