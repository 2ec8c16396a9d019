"""Whether a question needs the conversation to be understood (a follow-up) or stands alone.

Only a follow-up is rewritten with the history: a standalone question rewritten with an
unrelated history is searched for the wrong subject (and, with a model, waits for a
rewrite it does not need). English and French, by words and short patterns: cheap, and
predictable enough to test. The signals:

- a continuation: "and for replicas?", "what about X?", "same for", "et pour ...", "idem";
- a word pointing back: it, this, they, there, il, cela, y, en, le/la/les as an object...,
  unless the question itself holds what it points to ("Is there a VPN?", "Is it possible
  to...", "Les stagiaires ont-ils droit...", "How do employees book their leave?");
- an ellipsis: no content word at all ("Why?"), or a few words opened by a preposition
  ("In France?").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from rag.types import Message


@dataclass(frozen=True)
class _Token:
    word: str  # case-folded, without its elision apostrophe ("l'" -> "l")
    raw: str  # as written ("IT" is the department, "it" a pronoun)
    hyphen: bool  # attached to the previous word by a hyphen: "peuvent-ils", "envoie-le"


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Function words and question words: a question with nothing else has no subject of its own.
_STOP = _set(
    """a an the and or but if then so of to in on at by for from with without about into
    over under after before during since until between as than is are was were be been
    being am do does did done have has had having can could may might must shall should
    will would what which who whom whose when where why how much many long often there
    here this that these those it its they them their theirs he she him his her hers we us
    our you your i me my mine one ones not no yes any some all each every other another
    more most less same such very just only also too else again really exactly precisely
    anything something nothing s t d ll re ve m ok okay please then now still ever
    le la les l un une des du de d au aux à a est sont être été était ai as avons avez ont
    avait sera et ou où mais donc or ni car que qu qui quoi dont quel quelle quels quelles
    lequel laquelle comment combien pourquoi quand je j tu il elle on nous vous ils elles
    me m te t se s lui leur leurs y en ce c cet cette ces ceci cela ça ca celui celle ceux
    celles mon ma mes ton ta tes son sa ses notre nos votre vos ne n pas plus moins très
    aussi également encore alors vraiment exactement précisément même pareil idem autre
    autres dans sur sous pour par avec sans chez vers entre pendant après avant depuis
    peut peux puis dois doit faut fait faire oui non si"""
)
# A question opened by one of these, and short, is an ellipsis: "For contractors?"
_PREPOSITIONS = _set(
    """for in on at with without from during after before about under by since
    pour en à a au aux dans avec sans pendant après avant sur chez depuis sous par"""
)
_ELLIPSIS_WORDS = 4
_OPENERS = _set("and or but also same et mais pareil idem quid")
_OPENING_PHRASES = ("what about", "how about", "what if", "de même", "même chose")
_ANYWHERE = _set("also aussi également")
_PHRASES = re.compile(
    r"\b(the (other|previous|former|latter)( ones?\b|$)|the same( for| thing|$)|as well$"
    r"|(previous|last|first|second|next|other) ones?\b|la même chose|qu'en est il"
    r"|\bl'autre\b|\b(le|la|les) précédente?s?|(le|la) même$)"
)
# Words that refer back whenever the question does not hold what they point to.
_ALWAYS = _set("they them he she him theirs lui cela ça ca ceci")
_POSSESSIVES = _set("its their his her leur leurs son sa ses")
_SUBJECTS = _set("it il elle ils elles")
_CLAUSE = _set("if when and but because once so after before until while unless , ;")
_CLAUSE |= _set("si quand lorsque et mais car parce puisque")
_TIME = _set(
    """year month week quarter morning afternoon evening weekend summer winter spring
    autumn fall time semester année an mois semaine trimestre matin soir après-midi
    week-end été hiver printemps automne semestre"""
)
# "it support", "IT's policy": the department, not a pronoun.
_IT_NOUNS = _set(
    """support department team policy policies helpdesk desk service services staff
    security admin administrator administrators equipment asset assets manager ticket
    tickets director systems infrastructure budget contact charter approval"""
)
# "Is it possible to...", "does it take long to...": a dummy subject, it points to nothing.
_DUMMY_IT = _set(
    """possible allowed ok okay mandatory necessary required true legal permitted worth
    safe normal better best easy hard difficult compulsory obligatory acceptable forbidden
    important free common usual take takes took cost costs"""
)
_EXISTENTIAL_BEFORE = _set("is are was were be")
_EXISTENTIAL_AFTER = _set("is are was were s will be should must may might can could has have")
_THAT_GENERIC = _set("so such now")
_THOSE_GENERIC = _set("who whom whose which that with in of from on at under over")
# French impersonal "il": "il faut", "y a-t-il", "il existe", "est-il possible de".
_IMPERSONAL = _set("faut fallait faudra existe existent reste suffit agit vaut passe manque")
_IMPERSONAL_ADJ = _set(
    """possible nécessaire obligatoire interdit autorisé permis utile conseillé
    recommandé vrai normal prévu"""
)
_BE = _set("est était sera")
_HAVE = _set("a avait aura")
_CLITICS = _set("je j tu il elle on nous vous ils elles ne n")
_OBJECTS = _set("le la les l")
_IMPERATIVE_OBJECTS = _set("le la les lui leur en y")
_BEFORE_INFINITIVE = _set(
    """comment où peux peut puis pouvons pouvez peuvent dois doit devons devez doivent
    faut veux veut voulez vais va"""
)
_NOT_INFINITIVES = _set(
    """dossier fichier papier calendrier courrier premier dernier métier janvier février
    centre ordre membre titre nombre lettre livre registre cadre chiffre hiver"""
)
_EN_VERBS = _set("ai as a avons avez ont avait aura reste restent faut existe")
_EN_BEFORE = _CLITICS | _set("combien m t s")
_RELATIVES = _set("que qu qui dont")
_WORD = re.compile(r"[^\W_]+'?|[,;]")


def depends_on_history(question: str, history: Sequence[Message]) -> bool:
    """Whether `question` can be understood only with the conversation before it."""
    if not any(m.role in ("user", "assistant") and m.content.strip() for m in history):
        return False
    tokens = _tokens(question)
    words = [t.word for t in tokens if t.word not in ",;"]
    if not words:
        return False
    text = " ".join(_normalised(question).casefold().replace("-", " ").split())
    content = [w for w in words if _is_content(w)]
    return (
        words[0] in _OPENERS
        or text.startswith(_OPENING_PHRASES)
        or any(w in _ANYWHERE for w in words)
        or bool(_PHRASES.search(text.rstrip(" ?!.")))
        or not content
        or (words[0] in _PREPOSITIONS and len(words) <= _ELLIPSIS_WORDS)
        or any(_refers_back(tokens, i) for i in range(len(tokens)))
    )


def _normalised(question: str) -> str:
    return unicodedata.normalize("NFC", question).replace("’", "'").replace("‘", "'")


def _tokens(question: str) -> list[_Token]:
    text = _normalised(question)
    tokens = []
    for match in _WORD.finditer(text):
        raw = match.group()
        start = match.start()
        hyphen = start > 0 and text[start - 1] == "-"
        if raw.casefold() == "t" and hyphen and text[match.end() : match.end() + 1] == "-":
            continue  # the euphonic t of "a-t-il"
        tokens.append(_Token(raw.casefold().rstrip("'"), raw.rstrip("'"), hyphen))
    return tokens


def _refers_back(tokens: Sequence[_Token], i: int) -> bool:
    t = tokens[i]
    w = t.word
    before = tokens[i - 1].word if i > 0 else ""
    after = tokens[i + 1].word if i + 1 < len(tokens) else ""
    if t.hyphen and w in _IMPERATIVE_OBJECTS and _is_content(before):
        return True  # "envoie-le", "inscris-y-toi"
    if w in _ALWAYS:
        return not _antecedent_in_earlier_clause(tokens, i)
    if w in _POSSESSIVES:
        return not (w == "its" and t.raw == "ITS") and not _content_before(tokens, i)
    if w in _SUBJECTS:
        return _subject_refers_back(tokens, i)
    if w in ("this", "these", "cet", "cette", "ces"):
        return after not in _TIME
    if w == "that":
        return (i == 0 or before in _STOP) and before not in _THAT_GENERIC
    if w == "those":
        return after not in _THOSE_GENERIC
    if w == "there":
        return before not in _EXISTENTIAL_BEFORE and after not in _EXISTENTIAL_AFTER
    if w in ("ce", "c"):
        return _ce_refers_back(tokens, i)
    if w in ("celui", "celle", "ceux", "celles"):
        return after not in _RELATIVES
    if w == "y":  # not in "il y a", "y a-t-il"
        then = tokens[i + 2].word if i + 2 < len(tokens) else ""
        return after not in _HAVE or (before != "il" and then != "il")
    if w == "en":
        return before in _EN_BEFORE or after in _EN_VERBS
    if w in _OBJECTS:
        return _object_pronoun(tokens, i)
    return False


def _subject_refers_back(tokens: Sequence[_Token], i: int) -> bool:
    t = tokens[i]
    after = tokens[i + 1].word if i + 1 < len(tokens) else ""
    following = tokens[i + 2].word if i + 2 < len(tokens) else ""
    if t.word == "it":
        if t.raw == "IT" or after in _IT_NOUNS:
            return False
        later = [x.word for x in tokens[i + 2 :]]
        adjective = following if after in ("is", "was", "s") else after
        if adjective in _DUMMY_IT and "to" in later:
            return False  # "is it possible to...", "how long does it take to..."
        return not _antecedent_in_earlier_clause(tokens, i)
    # French: inverted ("est-il") or not, the verb is the word next to the pronoun.
    verb = tokens[i - 1].word if t.hyphen and i > 0 else after
    if t.word == "il":
        if verb in _IMPERSONAL or verb == "y":
            return False
        if verb in _HAVE and i >= 2 and tokens[i - 2].word == "y":
            return False  # "y a-t-il"
        rest = [x.word for x in tokens[i + 1 :]]
        adjective = after if t.hyphen else following
        if verb in _BE and adjective in _IMPERSONAL_ADJ and {"de", "d", "que", "qu"} & set(rest):
            return False  # "est-il possible de..."
    if t.hyphen and i > 0 and _content_before(tokens, i - 1):
        return False  # "Les stagiaires ont-ils droit...": the subject is in the question
    return not _antecedent_in_earlier_clause(tokens, i)


def _ce_refers_back(tokens: Sequence[_Token], i: int) -> bool:
    t = tokens[i]
    after = tokens[i + 1].word if i + 1 < len(tokens) else ""
    if t.hyphen or after in _RELATIVES or after in _TIME:
        return False  # "est-ce que", "ce que", "ce mois"
    if t.word == "c" and after in _BE and i + 2 < len(tokens):
        # "c'est quoi le télétravail ?", "qu'est-ce que c'est que X": X is named
        return not (tokens[i + 2].word in ("quoi", "que", "qui") and _content_after(tokens, i + 2))
    return True


def _object_pronoun(tokens: Sequence[_Token], i: int) -> bool:
    """le/la/les/l' as an object ("je le trouve où ?", "comment l'obtenir ?"), not an
    article: after a subject pronoun or "qui", or between "comment"/a modal and an infinitive."""
    before = tokens[i - 1].word if i > 0 else ""
    after = tokens[i + 1].word if i + 1 < len(tokens) else ""
    if before in _CLITICS or before == "qui":
        return True  # no article comes there: "je le trouve où ?", "qui les valide ?"
    infinitive = re.search(r"(er|ir|re|oir)$", after) and after not in _NOT_INFINITIVES
    return before in _BEFORE_INFINITIVE and bool(infinitive)


def _content_before(tokens: Sequence[_Token], i: int) -> bool:
    return any(_is_content(t.word) for t in tokens[:i])


def _content_after(tokens: Sequence[_Token], i: int) -> bool:
    return any(_is_content(t.word) for t in tokens[i + 1 :])


def _antecedent_in_earlier_clause(tokens: Sequence[_Token], i: int) -> bool:
    """A pronoun after "if", "when", a comma...: what it points to may be in the clause
    before ("How do I reset my password if I forgot it?")."""
    boundaries = [k for k in range(i) if tokens[k].word in _CLAUSE]
    return bool(boundaries) and _content_before(tokens, boundaries[-1])


def _is_content(word: str) -> bool:
    return word not in _STOP and word not in ",;"
