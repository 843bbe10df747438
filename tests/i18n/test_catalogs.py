"""The translation coverage checks (tests/i18n/scan.py): no database, a few seconds.

.venv/bin/pytest -p no:cacheprovider -n 0 tests/i18n/test_catalogs.py
.venv/bin/python -m tests.i18n.scan        # the same checks, every problem printed
"""

import shutil
import subprocess
from pathlib import Path

import polib
import pytest

from tests.i18n import scan


def test_every_customer_template_string_is_marked_for_translation():
    found = scan.untranslated_texts()
    assert not found, (
        "Text outside {% translate %} / {% blocktranslate %} in the customer's templates "
        "(wrap it, or add it to tests/i18n/scan.py ALLOWED if it is the same in every "
        "language):\n" + "\n".join(str(u) for u in found)
    )


def test_every_marked_string_is_translated_in_every_catalog_and_compiled():
    problems = scan.catalog_problems()
    assert not problems, (
        "Run `make messages`, translate each entry in locale/<lang>/LC_MESSAGES/django.po "
        "(no fuzzy), then `make messages` again to compile:\n" + "\n".join(problems)
    )


def test_the_languages_are_english_and_three_more():
    assert scan.catalog_languages() == ["es", "pt_BR", "ru"]


# --- the checks can fail ----------------------------------------------------------------------


def _template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str) -> Path:
    monkeypatch.setattr(scan, "TEMPLATES", tmp_path)
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_scan_names_file_line_and_text_of_each_unmarked_string(tmp_path, monkeypatch):
    _template(
        tmp_path,
        monkeypatch,
        "orders/page.html",
        '{% load i18n %}<h1>{% translate "Orders" %}</h1>\n'
        "<p>\n  Left out {{ count }} times</p>\n"
        '<input type="search" placeholder="Order ID">\n'
        "{% blocktranslate %}Inside {{ x }}{% endblocktranslate %}\n"
        "{% comment %}A note{% endcomment %}{# another #}\n"
        "<pre><code>curl -d key=KEY</code></pre><script>let a = 'b';</script>\n"
        '<button name="action" value="order">{% translate "Place order" %}</button>\n'
        '<h{{ level }} class="h5">x</h{{ level }}> · 12 %\n'
        '<input type="submit" value="Send">\n',
    )
    found = [str(u) for u in scan.untranslated_texts()]
    assert found == [
        'templates/orders/page.html:3: "Left out"',
        'templates/orders/page.html:3: "times"',
        'templates/orders/page.html:4: "Order ID"',
        'templates/orders/page.html:9: "x"',
        'templates/orders/page.html:10: "Send"',
    ]


def test_the_scan_reads_a_mail_text_whole_and_skips_the_admin(tmp_path, monkeypatch):
    _template(tmp_path, monkeypatch, "admin/page.html", "<p>Staff only</p>")
    _template(
        tmp_path,
        monkeypatch,
        "notifications/email/x.txt",
        "{% load i18n %}{% translate 'Hello' %}\n\nYour order <b>is</b> done.\n",
    )
    assert [str(u) for u in scan.untranslated_texts()] == [
        'templates/notifications/email/x.txt:3: "Your order <b>is</b> done."'
    ]


def test_extraction_gives_the_msgids_django_looks_up(tmp_path, monkeypatch):
    path = _template(
        tmp_path,
        monkeypatch,
        "x.html",
        "{% load i18n %}{% translate 'Plain' context 'menu' %}"
        "{% blocktranslate trimmed count n=items|length %}\n  One {{ n }} item\n"
        "{% plural %}{{ n }} items{% endblocktranslate %}",
    )
    messages = list(scan._template_messages(path))
    assert [(m.context, m.msgid, m.plural) for m in messages] == [
        ("menu", "Plain", ""),
        ("", "One %(n)s item", "%(n)s items"),
    ]


@pytest.fixture
def locale_copy(tmp_path, monkeypatch):
    copy = tmp_path / "locale"
    shutil.copytree(scan.LOCALE, copy)
    monkeypatch.setattr(scan, "LOCALE", copy)
    return copy


def _first(po: polib.POFile, msgid: str) -> polib.POEntry:
    return next(e for e in po if e.msgid == msgid)


def test_the_catalog_check_reports_missing_fuzzy_untranslated_and_stale(locale_copy):
    es = locale_copy / "es" / "LC_MESSAGES" / "django.po"
    po = polib.pofile(str(es))
    po.remove(_first(po, "Log in"))
    _first(po, "Log out").flags.append("fuzzy")
    _first(po, "Sign up").msgstr = ""
    po.save(str(es))
    ru = locale_copy / "ru" / "LC_MESSAGES" / "django.po"
    po = polib.pofile(str(ru))
    _first(po, "Orders").msgstr = "Заказики"  # changed after the last compile
    po.save(str(ru))

    problems = scan.catalog_problems()

    assert any(p.startswith("es: not in the catalog (") and '"Log in"' in p for p in problems)
    assert any(p.startswith("es: fuzzy (") and '"Log out"' in p for p in problems)
    assert any(p.startswith("es: not translated (") and '"Sign up"' in p for p in problems)
    assert "ru: django.mo is older than django.po (run manage.py compilemessages)" in problems
    assert not any(p.startswith("pt_BR") for p in problems)


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="GNU gettext is not installed")
def test_msgfmt_accepts_every_catalog(tmp_path):
    """With gettext on the machine, its stricter check too: msgfmt --check-format compares
    the placeholders of every translation with its msgid's (compilemessages runs the same)."""
    for lang in scan.catalog_languages():
        po = scan.LOCALE / lang / "LC_MESSAGES" / "django.po"
        subprocess.run(
            ["msgfmt", "--check-format", "-o", str(tmp_path / f"{lang}.mo"), str(po)], check=True
        )
