"""FakeKratos's self-service pages: plain HTML forms rendered from the flows' UI nodes.

Like Ory's own UIs, the pages know nothing of their own: they render ``ui.nodes`` and
``ui.messages`` of a flow and post the form to ``ui.action``.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

STYLE = """
:root { color-scheme: light dark; --accent: #4f46e5; }
* { box-sizing: border-box; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       background: #f4f4f7; color: #1d1d27; }
@media (prefers-color-scheme: dark) { body { background: #16161d; color: #e8e8ef; }
  .card { background: #22222c; border-color: #33333f; } input { background: #16161d; color: inherit; } }
header { background: #1d1d27; color: #fff; padding: .75rem 1.5rem; display: flex; gap: 1rem;
         align-items: center; }
header strong { font-weight: 600; } header span { opacity: .7; font-size: .9rem; }
main { max-width: 28rem; margin: 2.5rem auto; padding: 0 1rem; }
.card { background: #fff; border: 1px solid #e2e2ea; border-radius: 12px; padding: 1.75rem;
        box-shadow: 0 1px 3px rgba(0,0,0,.06); }
h1 { font-size: 1.4rem; margin: 0 0 1rem; }
label { display: block; font-size: .9rem; margin: .9rem 0 .3rem; font-weight: 500; }
input[type=text], input[type=password], input[type=email] { width: 100%; padding: .6rem .7rem;
  border: 1px solid #c9c9d4; border-radius: 8px; font-size: 1rem; }
button { margin-top: 1.2rem; width: 100%; padding: .7rem; border: 0; border-radius: 8px;
         background: var(--accent); color: #fff; font-size: 1rem; font-weight: 600; cursor: pointer; }
button.secondary { background: #6b6b7b; }
.msg { padding: .6rem .8rem; border-radius: 8px; margin: 0 0 .8rem; font-size: .95rem; }
.msg.info { background: #eef0ff; color: #2c2c7a; } .msg.error { background: #fdecec; color: #8a1c1c; }
.msg.success { background: #e8f7ee; color: #1d5c35; }
.qr { display: block; margin: .5rem auto; border-radius: 8px; background: #fff; padding: 8px; }
code.secret { display: block; text-align: center; font-size: .95rem; letter-spacing: .04em;
              padding: .5rem; background: rgba(127,127,127,.12); border-radius: 6px;
              white-space: nowrap; overflow-x: auto; }
.hint { font-size: .85rem; opacity: .75; margin-top: 1rem; }
.links { margin-top: 1.2rem; font-size: .9rem; display: flex; justify-content: space-between; }
a { color: var(--accent); }
table { width: 100%; font-size: .9rem; border-collapse: collapse; } td { padding: .2rem 0; vertical-align: top; }
"""


#: The fake's icon: a key on the UI's accent colour.
ICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<rect width="16" height="16" rx="3" fill="#4f46e5"/>'
    b'<circle cx="6" cy="8" r="3" fill="none" stroke="#fff" stroke-width="1.6"/>'
    b'<path d="M9 8h5M12 8v2.5" stroke="#fff" stroke-width="1.6"/></svg>'
)


def document(title: str, body: str, *, subtitle: str = "FakeKratos · self-service UI") -> bytes:
    """Return a whole HTML page."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><strong>Ory Kratos</strong><span>{escape(subtitle)}</span></header>"
        f'<main><div class="card"><h1>{escape(title)}</h1>{body}</div></main></body></html>'
    ).encode()


def messages(texts: Iterable[dict[str, Any]]) -> str:
    """Render ``ui.messages`` (or a node's messages)."""
    return "".join(
        f'<p class="msg {escape(str(t.get("type", "info")))}" data-id="{escape(str(t.get("id", "")))}">'
        f"{escape(str(t.get('text', '')))}</p>"
        for t in texts
    )


def _label(node: dict[str, Any]) -> str:
    label = node.get("meta", {}).get("label") or {}
    return str(label.get("text", ""))


def form(ui: dict[str, Any]) -> str:
    """Render a flow's ``ui`` container: one form per node group, posting to ``ui.action``.

    As Ory's own UIs do, each method (profile, password, totp, ...) gets a form of its
    own, with the ``default`` group's nodes (the CSRF token) in each, so a required field
    of one method never blocks another's submit.
    """
    nodes = [n for n in ui.get("nodes", []) if isinstance(n, dict)]
    shared = [n for n in nodes if n.get("group") == "default"]
    groups: list[str] = []
    for node in nodes:
        if node.get("group") != "default" and node.get("group") not in groups:
            groups.append(str(node.get("group")))
    if len(groups) <= 1:
        return _one_form(ui, nodes)
    return "".join(
        _one_form(ui, shared + [n for n in nodes if n.get("group") == group]) for group in groups
    )


def _one_form(ui: dict[str, Any], nodes: list[dict[str, Any]]) -> str:
    fields: list[str] = []
    buttons: list[str] = []
    for node in nodes:
        attributes = node.get("attributes", {})
        kind = attributes.get("node_type")
        if kind == "img":
            fields.append(
                f'<img class="qr" id="{escape(attributes["id"])}" src="{escape(attributes["src"])}" '
                f'width="{int(attributes["width"])}" height="{int(attributes["height"])}" '
                f'alt="{escape(_label(node))}">'
            )
        elif kind == "text":
            fields.append(
                f"<label>{escape(_label(node))}</label>"
                f'<code class="secret" id="{escape(attributes["id"])}">'
                f"{escape(str(attributes['text']['text']))}</code>"
            )
        elif kind == "input":
            name = escape(attributes["name"])
            value = escape(str(attributes.get("value", "")))
            if attributes["type"] == "submit":
                buttons.append(
                    f'<button type="submit" name="{name}" value="{value}">'
                    f"{escape(_label(node)) or 'Submit'}</button>"
                )
            elif attributes["type"] == "button":
                # A WebAuthn trigger: the fake cannot run Kratos's script, so it shows
                # the factor without acting on it.
                buttons.append(
                    f'<button type="button" name="{name}" disabled>'
                    f"{escape(_label(node)) or 'Button'}</button>"
                )
            elif attributes["type"] == "hidden":
                fields.append(f'<input type="hidden" name="{name}" value="{value}">')
            else:
                required = " required" if attributes.get("required") else ""
                autocomplete = attributes.get("autocomplete")
                extra = f' autocomplete="{escape(autocomplete)}"' if autocomplete else ""
                if attributes["name"] in ("totp_code", "lookup_secret"):
                    # The page's own choice: Kratos sends no autocomplete on these.
                    extra += ' autocomplete="one-time-code"' if not autocomplete else ""
                if attributes["name"] == "totp_code":
                    extra += ' inputmode="numeric" pattern="[0-9]*"'
                fields.append(
                    f'<label for="{name}">{escape(_label(node))}</label>'
                    f'<input id="{name}" type="{escape(attributes["type"])}" name="{name}" '
                    f'value="{value}"{required}{extra}>'
                )
            fields.append(messages(node.get("messages", [])))
    return (
        f'<form method="{escape(ui.get("method", "POST"))}" action="{escape(ui["action"])}">'
        + "".join(fields)
        + "".join(buttons)
        + "</form>"
    )


def links(*pairs: tuple[str, str]) -> str:
    """Render a row of links."""
    return (
        '<div class="links">'
        + "".join(f'<a href="{escape(h)}">{escape(t)}</a>' for t, h in pairs)
        + "</div>"
    )
