"""The languages Citadel answers in (English and French, its first users' languages): which
one a question is in, and the sentence that says the documents do not answer, in each.

The model is told to refuse with the sentence of the question's language, and a refusal is
recognised in any of them.
"""

from __future__ import annotations

import re
import unicodedata

REFUSALS = {
    "en": "I could not find this in your documents.",
    "fr": "Je n'ai pas trouvé cette information dans vos documents.",
}
DEFAULT_LANGUAGE = "en"
LANGUAGE_NAMES = {"en": "English", "fr": "French"}  # as a prompt names them

# Frequent words that tell the two apart in a short question.
_MARKERS = {
    "en": frozenset(
        [
            "the",
            "a",
            "an",
            "is",
            "are",
            "was",
            "were",
            "do",
            "does",
            "did",
            "how",
            "what",
            "when",
            "where",
            "which",
            "who",
            "why",
            "can",
            "could",
            "should",
            "would",
            "will",
            "of",
            "to",
            "in",
            "on",
            "for",
            "with",
            "my",
            "our",
            "your",
            "i",
            "we",
            "it",
            "this",
            "that",
            "there",
        ]
    ),
    "fr": frozenset(
        [
            "le",
            "la",
            "les",
            "un",
            "une",
            "des",
            "du",
            "de",
            "est",
            "sont",
            "était",
            "comment",
            "quel",
            "quelle",
            "quels",
            "quelles",
            "quand",
            "où",
            "qui",
            "pourquoi",
            "peut",
            "puis",
            "dois",
            "doit",
            "faut",
            "mon",
            "ma",
            "mes",
            "notre",
            "nos",
            "votre",
            "vos",
            "je",
            "nous",
            "il",
            "elle",
            "ce",
            "cette",
            "ces",
            "en",
            "dans",
            "sur",
            "pour",
            "avec",
            "au",
            "aux",
            "et",
            "ou",
            "que",
            "qu",
            "est-ce",
            "combien",
        ]
    ),
}
_WORD = re.compile(r"[\w'’-]+")
_FRENCH_LETTERS = re.compile(r"[àâçéèêëîïôûùüÿœæ]", re.IGNORECASE)


def language_of(text: str) -> str:
    """ "fr" or "en" (the default when nothing tells)."""
    words = [w.casefold().strip("'’-") for w in _WORD.findall(text)]
    words = [w.split("'")[-1].split("’")[-1] for w in words]  # l'équipe -> équipe
    scores = {lang: sum(w in markers for w in words) for lang, markers in _MARKERS.items()}
    scores["fr"] += min(2, len(_FRENCH_LETTERS.findall(text)))
    best = max(scores, key=lambda lang: scores[lang])
    return best if scores[best] > scores[DEFAULT_LANGUAGE] else DEFAULT_LANGUAGE


def function_words(language: str) -> frozenset[str]:
    """The words that tell `language` in a question: its question and function words
    ("comment", "quelle", "votre"), which say nothing of what is asked, accents as written."""
    return _MARKERS.get(language, frozenset())


def refusal_for(question: str) -> str:
    return REFUSALS[language_of(question)]


def _normalised(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold().replace("’", "'"))
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return " ".join(folded.split()).rstrip(".")


_REFUSALS_NORMALISED = tuple(_normalised(r) for r in REFUSALS.values())


def says_not_found(text: str) -> bool:
    """The text contains a refusal sentence, in any language."""
    said = _normalised(text)
    return any(r in said for r in _REFUSALS_NORMALISED)
