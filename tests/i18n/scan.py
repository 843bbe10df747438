"""The translation coverage checks (docs/development.md, "Translations"), no database needed.

1. `untranslated_texts()`: every customer-facing template (templates/, without admin/ and the
   staff-only mails) is read with Django's own template Lexer; the text between the tags is
   parsed as HTML, and any run of words outside {% translate %} / {% blocktranslate %} (text, or
   a placeholder, title, alt, aria-label, data-confirm or button value attribute) is reported
   as `file:line: "text"`. Code (<code>, <pre>, <script>, <style>, <svg>, <kbd>, <samp>) is not
   translated and is skipped; a few texts that stay as they are sit in ALLOWED.
2. `extracted_messages()`: what makemessages would extract, found the way Django renders it:
   each template compiled and its translate/blocktranslate nodes asked for their msgid (with
   Django's own BlockTranslateNode.render_token_list, so trimmed and %(var)s are exactly the
   runtime's), and the gettext calls (_, gettext, gettext_lazy, ngettext, pgettext, ...) with
   literal strings in the apps' Python code.
3. `catalog_problems()`: each of those messages is in every language's
   locale/<lang>/LC_MESSAGES/django.po, translated (every plural form) and not fuzzy, and the
   committed django.mo holds exactly the .po's translations (compiled with
   `manage.py compilemessages` after the last change).

Run by hand: `.venv/bin/python -m tests.i18n.scan` prints every problem (exit 1 when any).
"""

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
TEMPLATES = BASE_DIR / "templates"
LOCALE = BASE_DIR / "locale"
PYTHON_APPS = ("accounts", "catalog", "orders", "providers", "content", "support", "panel")

# Not customer-facing, stay English: the admin's own templates, and the mails only staff get
# (their events are notify_staff's, accounts/notifications.py: audience STAFF).
EXCLUDED_TEMPLATES = (
    "admin/",
    "notifications/email/provider_balance_low.",
    "notifications/email/provider_out_of_funds.",
    "notifications/email/order_needs_review.",
    "notifications/email/payment_disputed.",
    "notifications/email/ticket_new.",
    # Markup only: its tag's name is built by template tags, which no HTML parser can follow.
    "allauth/elements/button.html",
)
# Texts that are the same in every language (exact, after whitespace is collapsed).
ALLOWED = {
    "API",  # the product's word, the same in every market's language
    "API v2",
    "URL",
    "ID",
    "CSV",
    "IPv4",
    "IPv6",
    "PHP",
    "Python",
    "curl",
    "JSON",
    "HTTP",
    "POST",
    "GET",
}
# HTML tags whose text is code or drawing, never translated.
SKIPPED_TAGS = {"code", "pre", "script", "style", "svg", "kbd", "samp", "textarea"}
# Attributes a person reads (the others are machine values: ids, classes, URLs).
READ_ATTRIBUTES = {
    "placeholder",
    "title",
    "alt",
    "aria-label",
    "label",
    "data-confirm",
    "data-copied-text",
    "data-fee-text",
}
BUTTON_INPUTS = {"submit", "button", "reset"}
MARK = "\x00"  # stands for a template tag or variable inside the text
LETTER = re.compile(r"[^\W\d_]")
TAG_NAME_END = re.compile(r"</?[A-Za-z][A-Za-z0-9]*$")


@dataclass(frozen=True)
class Untranslated:
    path: str
    line: int
    text: str

    def __str__(self) -> str:
        return f'templates/{self.path}:{self.line}: "{self.text}"'


def customer_templates() -> list[Path]:
    found = []
    for path in sorted(TEMPLATES.rglob("*")):
        name = path.relative_to(TEMPLATES).as_posix()
        if path.suffix in (".html", ".txt") and not name.startswith(EXCLUDED_TEMPLATES):
            found.append(path)
    return found


def _is_words(text: str) -> bool:
    text = " ".join(text.split()).strip(" ·:;,.!?()-—")
    return bool(LETTER.search(text)) and text not in ALLOWED


def _flatten(source: str) -> str:
    """The template with every tag and variable replaced by MARK (newlines kept, so lines
    match the file), and the text inside blocktranslate, comment and verbatim dropped the same
    way: what is left is the text that reaches the page untranslated."""
    from django.template.base import Lexer, TokenType

    tokens = Lexer(source).tokenize()
    out: list[str] = []
    depth = {"blocktranslate": 0, "comment": 0}
    for i, token in enumerate(tokens):
        following = tokens[i + 1].lineno if i + 1 < len(tokens) else token.lineno
        if token.token_type == TokenType.BLOCK:
            word = token.contents.split(None, 1)[0] if token.contents else ""
            if word in ("blocktranslate", "blocktrans"):
                depth["blocktranslate"] += 1
            elif word in ("endblocktranslate", "endblocktrans"):
                depth["blocktranslate"] -= 1
            elif word == "comment":
                depth["comment"] += 1
            elif word == "endcomment":
                depth["comment"] -= 1
        if token.token_type == TokenType.TEXT and not any(depth.values()):
            out.append(token.contents)
        elif out and TAG_NAME_END.search(out[-1]):
            out.append("0")  # inside a tag's name (<h{{ level }}>): keep it a name
        else:
            newlines = token.contents.count("\n") if token.token_type == TokenType.TEXT else 0
            out.append(MARK + "\n" * max(newlines, following - token.lineno))
    return "".join(out)


class _TextFinder(HTMLParser):
    def __init__(self, path: str) -> None:
        super().__init__(convert_charrefs=True)
        self.path = path
        self.skipping: list[str] = []
        self.found: list[Untranslated] = []

    def _report(self, text: str, line: int) -> None:
        for piece in text.split(MARK):
            if _is_words(piece):
                lead = piece[: len(piece) - len(piece.lstrip())].count("\n")
                self.found.append(Untranslated(self.path, line + lead, " ".join(piece.split())))
            line += piece.count("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED_TAGS and tag not in ("textarea",):
            self.skipping.append(tag)
        line = self.getpos()[0]
        values = dict(attrs)
        for name, value in attrs:
            # An <input type="submit"> shows its value; a <button>'s value is data.
            button = tag == "input" and name == "value" and values.get("type") in BUTTON_INPUTS
            if value and (name in READ_ATTRIBUTES or button):
                self._report(value, line)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        skipping = list(self.skipping)
        self.handle_starttag(tag, attrs)
        self.skipping = skipping

    def handle_endtag(self, tag: str) -> None:
        if self.skipping and self.skipping[-1] == tag:
            self.skipping.pop()

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self._report(data, self.getpos()[0])


def untranslated_in(path: Path) -> list[Untranslated]:
    name = path.relative_to(TEMPLATES).as_posix()
    flat = _flatten(path.read_text(encoding="utf-8"))
    if path.suffix == ".txt":  # a mail's plain text: all of it is read
        finder = _TextFinder(name)
        finder._report(flat, 1)
        return finder.found
    finder = _TextFinder(name)
    finder.feed(flat)
    finder.close()
    return finder.found


def untranslated_texts() -> list[Untranslated]:
    return [found for path in customer_templates() for found in untranslated_in(path)]


# --- what makemessages extracts -------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    msgid: str
    plural: str = ""
    context: str = ""
    where: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.context, self.msgid)


def _template_messages(path: Path) -> Iterator[Message]:
    from django.template import engines
    from django.template.base import Origin, Template, Variable
    from django.templatetags.i18n import BlockTranslateNode, TranslateNode

    engine = engines["django"].engine  # type: ignore[attr-defined]
    name = path.relative_to(TEMPLATES).as_posix()
    template = Template(path.read_text(encoding="utf-8"), Origin(str(path), name), name, engine)
    for node in template.nodelist.get_nodes_by_type(TranslateNode):
        var = node.filter_expression.var
        if isinstance(var, Variable) and var.literal is not None:
            context = node.message_context.resolve({}) if node.message_context else ""
            yield Message(str(var.literal), context=context or "", where=name)
    for node in template.nodelist.get_nodes_by_type(BlockTranslateNode):
        singular, _ = node.render_token_list(node.singular)
        plural = node.render_token_list(node.plural)[0] if node.plural else ""
        context = node.message_context.resolve({}) if node.message_context else ""
        yield Message(singular, plural, context or "", name)


GETTEXT = {
    "_": ("msgid",),
    "gettext": ("msgid",),
    "gettext_lazy": ("msgid",),
    "gettext_noop": ("msgid",),
    "ngettext": ("msgid", "plural"),
    "ngettext_lazy": ("msgid", "plural"),
    "pgettext": ("context", "msgid"),
    "pgettext_lazy": ("context", "msgid"),
    "npgettext": ("context", "msgid", "plural"),
    "npgettext_lazy": ("context", "msgid", "plural"),
}


def _python_messages(path: Path) -> Iterator[Message]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        roles = GETTEXT.get(name)
        if roles is None or len(node.args) < len(roles):
            continue
        values = {}
        for role, arg in zip(roles, node.args, strict=False):
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                values[role] = arg.value
        if "msgid" in values:
            where = f"{path.relative_to(BASE_DIR).as_posix()}:{node.lineno}"
            yield Message(
                values["msgid"], values.get("plural", ""), values.get("context", ""), where
            )


def python_files() -> list[Path]:
    files = []
    for app in PYTHON_APPS:
        for path in sorted((BASE_DIR / app).rglob("*.py")):
            # The admin's modules (admin.py, *_admin.py) are staff-only and stay English; a
            # string they take from Django's admin is translated by Django's own catalogs.
            staff_only = path.name == "admin.py" or path.name.endswith("_admin.py")
            if "migrations" not in path.parts and "sandbox" not in path.parts and not staff_only:
                files.append(path)
    return files


def extracted_messages() -> list[Message]:
    found: list[Message] = []
    for path in customer_templates():
        found.extend(_template_messages(path))
    for path in python_files():
        found.extend(_python_messages(path))
    return found


# --- the catalogs ----------------------------------------------------------------------------


def catalog_languages() -> list[str]:
    """The locale directory of each language but English, from settings.LANGUAGES."""
    from django.conf import settings
    from django.utils.translation import to_locale

    return [to_locale(code) for code, _ in settings.LANGUAGES if code != "en"]


def catalog_problems() -> list[str]:
    import polib

    problems: list[str] = []
    messages = extracted_messages()
    for lang in catalog_languages():
        po_path = LOCALE / lang / "LC_MESSAGES" / "django.po"
        if not po_path.exists():
            problems.append(f"{po_path.relative_to(BASE_DIR)}: missing (makemessages -l {lang})")
            continue
        po = polib.pofile(str(po_path))
        entries = {(e.msgctxt or "", e.msgid): e for e in po if not e.obsolete}
        problems.extend(_missing(lang, messages, entries))
        problems.extend(_stale_mo(lang, po, po_path.with_suffix(".mo")))
    return problems


def _missing(lang: str, messages: list[Message], entries: dict) -> Iterator[str]:
    seen = set()
    for message in messages:
        if message.key in seen:
            continue
        seen.add(message.key)
        entry = entries.get(message.key)
        text = message.msgid if len(message.msgid) < 70 else message.msgid[:67] + "..."
        if entry is None:
            yield f'{lang}: not in the catalog ({message.where}): "{text}"'
        elif "fuzzy" in entry.flags:
            yield f'{lang}: fuzzy ({message.where}): "{text}"'
        elif not entry.translated() or (message.plural and not entry.msgid_plural):
            yield f'{lang}: not translated ({message.where}): "{text}"'


def _stale_mo(lang: str, po: object, mo_path: Path) -> Iterator[str]:
    import polib

    if not mo_path.exists():
        yield f"{lang}: {mo_path.relative_to(BASE_DIR)} missing (manage.py compilemessages)"
        return
    mo = polib.mofile(str(mo_path))

    def table(catalog: object) -> dict:
        # What msgfmt compiles: the translated entries that are not fuzzy (the header aside).
        rows = {}
        for e in catalog:  # type: ignore[attr-defined]
            plural = tuple(sorted((int(k), v) for k, v in e.msgstr_plural.items()))
            done = all(v for _, v in plural) if plural else bool(e.msgstr)
            if e.obsolete or "fuzzy" in e.flags or not done or not e.msgid:
                continue
            rows[(e.msgctxt or "", e.msgid)] = (e.msgstr, plural)
        return rows

    if table(po) != table(mo):
        yield f"{lang}: django.mo is older than django.po (run manage.py compilemessages)"


def main() -> int:
    import django

    sys.path.insert(0, str(BASE_DIR))
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")
    os.environ.setdefault("DEBUG", "true")
    django.setup()
    problems = [str(u) for u in untranslated_texts()] + catalog_problems()
    print("\n".join(problems) or "Every template string is marked and translated.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
