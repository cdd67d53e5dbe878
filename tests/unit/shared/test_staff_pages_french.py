"""The staff pages' French, the part a machine can check of what the nurses' dashboard and the fleet page follow
(README, the paragraph after the tablet's Plain French): professionals read it all day, so not the tablet's
plain-language rules but one typography and one name for one thing. French spacing before « : ; ? ! », « » rather
than straight quotes, no English word in a sentence, « vous êtes … » agreed for either gender as the pages do
(« Connecté·e »), no jargon nor spoken French, and the nurse's two steps on an alert said with one verb each (« Je
prends », « Clôturer »). No nurse or colleague given a gender (« Une collègue »), no address of the API on screen, and
the session's words (expired, refused, signed out…) written once, in /web/staff.js, for both pages to say alike.
Read from the files as the browser gets them: the scripts' string literals, the pages' text
and the labels the alerting service sends, the validated clinical ones included (they pass; a new one that did not
would go back to the clinical team, whose words they are)."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from services.alerting.labels import reference
from shared.devservers import ROOT

DASHBOARD = ROOT / "services/alerting/dashboard"
FLEET = ROOT / "services/devices/fleet"
# The modules both staff pages import (/web/): their sign-in, their request client and its sentences.
SHARED_WEB = [ROOT / "shared/web/staff.js", ROOT / "shared/web/oidc.js"]

# What marks a literal as a sentence a person reads rather than code (a class, a selector, an id, an event name).
FRENCH = re.compile(
    r"[àâçéèêëîïôûùœ«»]|\b(?:le|la|les|de|des|du|un|une|en|et|au|est|pour|vous|votre|avec|dans|sur|pas|aucune?)\b",
    re.IGNORECASE,
)
# A word or a closing bracket glued to « : ; ? ! » ending a clause (a time's 14:35 or a URL's https:// is not).
UNSPACED = re.compile(r"[\w»)][:;?!](?=\s|$)")
# English a nurse or a fleet manager would read in place of the French the pages use elsewhere (« jeton », « tableau
# de bord », « chargement », « erreur », « actualiser »…).
ENGLISH = re.compile(
    r"\b(?:the|and|please|token|dashboard|stream|loading|error|warning|refresh|reload|click|update|deadline|timeout|"
    r"feedback|check|ticket|login|logout|email|OK)\b"
)
# « vous êtes déconnecté » to a reader of either gender: the pages write « Connecté·e ».
UNINCLUSIVE = re.compile(r"\bvous êtes \w+é\b(?!·)", re.IGNORECASE)
# A nurse, a colleague or the reader given a gender: « Une collègue », « déconnectée », « prise par elle », « une
# infirmière ». The pages write it neutrally (« Quelqu'un de l'équipe », « le personnel infirmier ») or, where French
# has no such word, dotted (« Connecté·e », « infirmier·ère »). The alert is feminine: « Alerte prise » is right.
GENDERED = re.compile(
    r"\b(?:une?|la|le|cette|ce|votre|autre) collègue\b|\b(?:dé)?connecté(?:e|s|es)?\b(?!·)|\bprise par (?:elle|lui)\b"
    r"|(?<!personnel )\binfirmi(?:ère|er)s?\b(?!·)|\bcoordinat(?:rice|eur)s?\b(?!·)",
    re.IGNORECASE,
)
# An address of the API on screen (« Réponse inattendue du serveur (/v1/me). »): a nurse can do nothing with it; the
# console keeps it for the support desk.
API_PATH = re.compile(r"/v1/")
# What a staff page says when the session ends or is refused (expired, closed, a token refused, signed out, the
# banner, the hospital's sign-in failing): the same words on both pages, so written once, in /web/staff.js.
SESSION_TALK = re.compile(
    r"\bsession\b|\breconnectez-vous\b|\bdéconnecté|\bse reconnecter\b|\bjeton\b.*\b(?:expiré|valide)\b"
    r"|\bn'a pas le rôle\b.*\bcette page\b|\bjeton d'identité\b|\bconnexion (?:avec le compte )?de l'hôpital\b"
    r"|\bservice d'identité de l'hôpital ne répond pas\b",
    re.IGNORECASE,
)
# Words a professional page does not use: machine jargon (« codes bruts ») and spoken French (« ne marche plus »,
# « faites un nouveau code »).
LOOSE = re.compile(r"\bbruts?\b|\bne marche\b|\bfaites un\b", re.IGNORECASE)
# Taking an alert is « prendre » (« Je prends », « Prise par … », « a déjà pris »), closing it « clôturer »: « prise
# en charge » is the column and the indicator's noun, never what happened to an alert; no synonym for either step.
OTHER_NAMES = re.compile(
    r"\balertes? (?:a été |ont été )?prises? en charge\b|\bacquitt|\brésolue?s?\b"
    r"|\bfermer l'alerte|\balertes? fermées?",
    re.IGNORECASE,
)


def _skip_code(text: str, i: int) -> int:
    """The index past `${…}` (i at its `{`), strings and nested braces in it included."""
    depth = 0
    while i < len(text):
        char = text[i]
        if char in "'\"`":
            i = _read_literal(text, i, [])
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def _read_literal(text: str, i: int, out: list[str]) -> int:
    """Appends the literal opening at i (its text, each `${…}` as « {} ») to out; returns the index past it."""
    quote, i = text[i], i + 1
    parts: list[str] = []
    while i < len(text) and text[i] != quote:
        if text[i] == "\\":
            parts.append(text[i + 1 : i + 2])
            i += 2
        elif quote == "`" and text.startswith("${", i):
            parts.append("{}")
            i = _skip_code(text, i + 1)
        else:
            parts.append(text[i])
            i += 1
    out.append("".join(parts))
    return i + 1


def js_literals(path: Path) -> list[str]:
    """Every string literal of a script, comments left out."""
    return literals(path.read_text(encoding="utf-8"))


def literals(text: str) -> list[str]:
    """Every string literal of a script's text, comments left out."""
    i = 0
    out: list[str] = []
    while i < len(text):
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        elif text[i] in "'\"`":
            i = _read_literal(text, i, out)
        else:
            i += 1
    return out


class _Text(HTMLParser):
    """A page's text as shown and as said (title, aria-label, placeholder, alt); scripts, styles and code out."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "code"):
            self._skip += 1
        self.texts += [
            value for name, value in attrs if name in ("title", "aria-label", "placeholder", "alt") and value
        ]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "code"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.texts.append(data)


def page_texts(path: Path) -> list[str]:
    parser = _Text()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.texts


def sentences(folder: Path) -> list[tuple[str, str]]:
    """(where, text) of each text a staff page shows or says, runs of spaces made one."""
    scripts = [(path.name, text) for path in sorted(folder.glob("*.js")) for text in js_literals(path)]
    # All of the page's text is read by someone; of the scripts' literals, only what looks like a sentence.
    found = [(where, text) for where, text in scripts if FRENCH.search(text)]
    found += [(f"{folder.name}/index.html", text) for text in page_texts(folder / "index.html")]
    return [(where, " ".join(text.split())) for where, text in found]


def labels() -> list[tuple[str, str]]:
    return [(f"labels.py {group}", text) for group, table in reference().items() for text in table.values()]


def shared_sentences() -> list[tuple[str, str]]:
    found = [(path.name, text) for path in SHARED_WEB for text in js_literals(path) if FRENCH.search(text)]
    return [(where, " ".join(text.split())) for where, text in found]


def staff_sentences() -> list[tuple[str, str]]:
    return sentences(DASHBOARD) + sentences(FLEET) + shared_sentences()


def offending(pattern: re.Pattern[str], texts: list[tuple[str, str]]) -> list[str]:
    return [f"{where}: {text}" for where, text in texts if pattern.search(text)]


def test_the_reading_catches_the_sentences_and_leaves_the_code() -> None:
    dashboard = {text for _, text in sentences(DASHBOARD)}
    # A template's sentence, its values in place; a sentence of the page; a button's name quoted.
    assert "Alerte clôturée{} — {}." in dashboard
    assert "Aucune alerte en attente." in dashboard
    assert "Du déclenchement à « Je prends ». Valeur principale : médiane." in dashboard
    assert "Alertes ouvertes" in dashboard  # index.html
    # Classes, selectors and error messages for developers are not French.
    assert not any(text.startswith(("#alert-rows", "badge ", "empty-row")) for text in dashboard)
    assert "stream token missing" not in dashboard


@pytest.mark.parametrize("source", [staff_sentences, labels])
def test_french_spacing_before_colons_semicolons_question_and_exclamation_marks(
    source: Callable[[], list[tuple[str, str]]],
) -> None:
    assert not offending(UNSPACED, source()), "a space goes before « : ; ? ! » in French"


@pytest.mark.parametrize("source", [staff_sentences, labels])
def test_quotes_are_french_quotes(source: Callable[[], list[tuple[str, str]]]) -> None:
    assert not offending(re.compile('"'), source()), "the staff pages quote with « »"


def test_no_english_word_in_a_staff_sentence() -> None:
    assert not offending(ENGLISH, staff_sentences() + labels())


def test_a_sentence_to_the_reader_agrees_for_either_gender() -> None:
    assert not offending(UNINCLUSIVE, staff_sentences())


def test_no_jargon_or_spoken_french() -> None:
    assert not offending(LOOSE, staff_sentences() + labels())


def test_taking_and_closing_an_alert_each_have_one_name() -> None:
    assert not offending(OTHER_NAMES, sentences(DASHBOARD) + labels())


def test_no_sentence_gives_a_nurse_or_a_colleague_a_gender() -> None:
    assert GENDERED.search("Une collègue a déjà pris cette alerte.")  # what the pattern is for
    assert not GENDERED.search("Alerte prise par Claire Martin (elle était prise par Karim Benali). Connecté·e :")
    assert not offending(GENDERED, staff_sentences() + labels())


def test_no_address_of_the_api_on_screen() -> None:
    assert not offending(API_PATH, staff_sentences())


def session_words() -> list[str]:
    """The sentences of /web/staff.js's section on the session, each situation's one sentence."""
    text = (ROOT / "shared/web/staff.js").read_text(encoding="utf-8")
    section = text[text.index("// --- The session's words") : text.index("// --- Requests")]
    return [" ".join(text.split()) for text in literals(section) if FRENCH.search(text)]


def test_the_session_s_words_are_written_once_for_both_pages() -> None:
    # Each situation's sentence is caught by the pattern, so that a page's own copy of one would be too.
    words = session_words()
    assert (
        "Vous êtes déconnecté·e." in words
        and "Votre session se termine à {} — reconnectez-vous pour continuer." in words
    )
    assert len(words) >= 10 and not [text for text in words if not SESSION_TALK.search(text)], words
    # The pages' scripts write none of their own: they say these, imported.
    scripts = [
        (where, text) for folder in (DASHBOARD, FLEET) for where, text in sentences(folder) if where.endswith(".js")
    ]
    assert not offending(SESSION_TALK, scripts), "a staff page's session sentence belongs in shared/web/staff.js"
    # What their HTML says of it, each page says identically (the hospital's sign-in down, the banner's button).
    said = {
        folder.name: sorted(
            text for where, text in sentences(folder) if where.endswith(".html") and SESSION_TALK.search(text)
        )
        for folder in (DASHBOARD, FLEET)
    }
    assert said["dashboard"] and said["dashboard"] == said["fleet"], said
