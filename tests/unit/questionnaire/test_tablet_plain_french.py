"""The tablet's own French, the part a machine can check of the plain-language rules it follows (README, The tablet:
for patients who read with difficulty): short sentences, everyday words, no bracketed clause, and a button quoted in
a sentence by the words the button shows. Read from the files as the browser gets them (the page's text and the
scripts' sentences) and from the service's labels the tablet shows as they are. The FHIR Questionnaire's questions
and answers (validated PRO-CTCAE French) are not ours and are not read here."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from services.questionnaire.api import MESSAGE_STATUS_LABELS, STATUS_LABELS
from shared.devservers import ROOT
from shared.opening_hours import IN_HOURS_NOTICE, OUT_OF_HOURS_NOTICE

TABLET = ROOT / "services/questionnaire/tablet"

# Past 15 words a reader who reads with difficulty loses the start of the sentence before its end (plain-language
# guidance aims at 10 to 15); every sentence of the tablet holds under it, so no exception is listed.
MAX_WORDS = 15

# A simpler word says each of these: « code » for an enrolment code, « n'est plus valable » for expired, « mes
# réponses » for the review; « erreur », « échec », « invalide » say something went wrong, not what to do.
BANNED = (
    "enrôl",
    "enrol",
    "identifiant",
    "synchronis",
    "veuillez",
    "expir",
    "récapitulatif",
    "erreur",
    "échec",
    "invalide",
    "serveur",
    "connexion internet",
    "n°",
)

# A button's name keeps its parenthesis: « Suivant » is the word every sentence quotes, « ou passer » what the button
# also does on a question that can be left without an answer.
BRACKETS_ALLOWED = {"Suivant (ou passer)"}

# Marks the review shows, quoted by the sentence that points at them: not buttons.
QUOTED_MARKS = {"À vérifier"}


class _Text(HTMLParser):
    """The page's text as shown (runs of text between tags) and as said (alt, aria-label), scripts and styles out."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.names: list[str] = []  # the text of each button, link and label
        self._skip = 0
        self._open: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        if tag in ("button", "a", "label"):
            self._open.append([])
        for name, value in attrs:
            if name in ("alt", "aria-label") and value:
                self.texts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1
        if tag in ("button", "a", "label") and self._open:
            self.names.append(" ".join("".join(self._open.pop()).split()))

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        for run in self._open:
            run.append(data)
        if data.strip():
            self.texts.append(" ".join(data.split()))


def page() -> _Text:
    parser = _Text()
    parser.feed((TABLET / "index.html").read_text(encoding="utf-8"))
    return parser


def _skip_string(source: str, i: int) -> int:
    """The index after the string or template starting at `i` (a template's `${…}` may hold strings and templates)."""
    quote, j = source[i], i + 1
    while source[j] != quote:
        if source[j] == "\\":
            j += 2
        elif quote == "`" and source.startswith("${", j):
            j = _expression_end(source, j + 2) + 1
        else:
            j += 1
    return j + 1


def _expression_end(source: str, j: int) -> int:
    """The index of the `}` closing a template's `${` whose expression starts at `j`."""
    depth = 0
    while True:
        c = source[j]
        if c in "\"'`":
            j = _skip_string(source, j)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                return j
            depth -= 1
        j += 1


def literals(source: str) -> list[str]:
    """The string literals of a script, comments and regular expressions left out; literals joined by `+` as one;
    a template's `${…}` as its constant's value when it names one of this file, else as a number."""
    found: list[str] = []
    joined = False
    i, n = 0, len(source)
    last = ""  # the last significant character of code: a `/` after one of these starts a regular expression
    while i < n:
        c = source[i]
        if source.startswith("//", i):
            i = source.find("\n", i) if "\n" in source[i:] else n
        elif source.startswith("/*", i):
            i = source.index("*/", i) + 2
        elif c == "/" and (last == "" or last in "(,=:[!&|?{};"):
            i += 1
            in_class = False
            while source[i] != "/" or in_class:
                if source[i] == "\\":
                    i += 1
                elif source[i] == "[":
                    in_class = True
                elif source[i] == "]":
                    in_class = False
                i += 1
            i += 1
            last = "/"
        elif c in "\"'`":
            j, text = i + 1, []
            while source[j] != c:
                if source[j] == "\\":
                    text.append({"n": "\n", "u": ""}.get(source[j + 1], source[j + 1]))
                    if source[j + 1] == "u":
                        text[-1] = chr(int(source[j + 2 : j + 6], 16))
                        j += 4
                    j += 2
                elif c == "`" and source.startswith("${", j):
                    end = _expression_end(source, j + 2)
                    text.append("\x00" + source[j + 2 : end] + "\x00")
                    j = end + 1
                else:
                    text.append(source[j])
                    j += 1
            value = "".join(text)
            if joined and found:
                found[-1] += value
            else:
                found.append(value)
            joined = False
            i, last = j + 1, c
        else:
            if not c.isspace():
                joined = c == "+" and last in "\"'`"
                last = c
            i += 1
    constants = dict(re.findall(r"const ([A-Z_]+) =\s*\"([^\"]*)\";", source))
    return [re.sub(r"\x00([^\x00]*)\x00", lambda m: constants.get(m.group(1).strip(), "0"), value) for value in found]


def french(text: str) -> bool:
    """Whether a script's literal is something a patient reads or hears, not a selector, a header or a path."""
    if re.search(r"[#\[\]=<>{}/\\]", text) or " " not in text.strip():
        return False
    return bool(re.search(r"[àâçéèêëîïôûùü'«]", text, re.IGNORECASE) or re.match(r"[A-ZÀ-Ý]", text))


def script_texts() -> list[str]:
    texts = []
    for path in sorted(TABLET.glob("*.js")):
        texts += [" ".join(t.split()) for t in literals(path.read_text(encoding="utf-8")) if french(t)]
    return texts


def service_texts() -> list[str]:
    """What the questionnaire service gives the tablet to show as it is: where the answers and the message are, and
    the notice after a send."""
    return [*STATUS_LABELS.values(), *MESSAGE_STATUS_LABELS.values(), IN_HOURS_NOTICE, OUT_OF_HOURS_NOTICE]


def all_texts() -> list[str]:
    return page().texts + script_texts() + service_texts()


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?…])\s+", text.strip()) if s]


def words(sentence: str) -> list[str]:
    return [w for w in sentence.split() if re.search(r"\w", w)]


def test_the_checks_read_the_tablet_s_sentences() -> None:
    """Guards the guard: an extraction that found nothing would pass every rule."""
    texts = all_texts()
    for expected in (
        "En cas d'urgence, appelez le 15.",  # the page and app.js
        "Demandez un nouveau code à la personne qui vous a prêté la tablette.",  # app.js, a constant in a template
        "Vérifiez la date et l'heure dans les réglages de la tablette.",  # sending.js, literals joined with +
        "Arrêter la lecture",  # listen.js
        "Appeler l'équipe soignante : ",  # comfort.js
        "Autres réponses plus bas",  # the page
    ):
        assert any(expected.strip() in text for text in texts), expected
    assert not any("Content-Type" in t or "#question" in t for t in texts)


def test_no_sentence_is_longer_than_the_reader_can_hold() -> None:
    long = [(len(words(s)), s) for text in all_texts() for s in sentences(text) if len(words(s)) > MAX_WORDS]
    assert not long, "\n".join(f"{n} words: {s}" for n, s in long)


def test_no_word_a_simpler_one_says() -> None:
    found = [
        (word, text)
        for text in all_texts()
        for word in BANNED
        if re.search(rf"(?<!\w){re.escape(word)}", text, re.IGNORECASE)
    ]
    assert not found, "\n".join(f"« {word} » in: {text}" for word, text in found)


def test_no_bracketed_clause_and_one_colon_at_most_a_sentence() -> None:
    bracketed = [t for t in all_texts() if ("(" in t or ")" in t) and t not in BRACKETS_ALLOWED]
    assert not bracketed, bracketed
    colons = [s for text in all_texts() for s in sentences(text) if s.rstrip(" :").count(" :") > 1]
    assert not colons, colons


def test_a_button_quoted_in_a_sentence_is_named_as_the_button_shows_it() -> None:
    """« Touchez « Arrêter » » next to a button that says « Arrêter la dictée » sends the patient looking for a word
    that is on no button."""
    shown = set(page().names) | set(script_texts()) | QUOTED_MARKS
    quoted = {q.strip() for text in all_texts() for q in re.findall(r"«([^»]*)»", text)}
    assert quoted, "no quoted button found: the check reads nothing"
    assert quoted <= shown, sorted(quoted - shown)


def test_the_patient_is_told_of_the_team_never_of_a_nurse_of_one_gender() -> None:
    """« Votre infirmière a vu vos réponses » guessed who read them, and that she is a woman: the tablet names the
    team, as it does everywhere else."""
    found = [t for t in all_texts() if re.search(r"\binfirmi(?:er|ère)s?\b", t, re.IGNORECASE)]
    assert not found, found
