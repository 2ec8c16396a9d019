"""Telling a follow-up, which needs the conversation, from a question that stands alone, in
English and French: only a follow-up is rewritten with the history."""

from __future__ import annotations

import pytest

from rag.followup import depends_on_history
from rag.types import Message

HISTORY = [
    Message("user", "How many days of paid annual leave do employees get?"),
    Message("assistant", "Full-time employees receive 25 days per calendar year [1]."),
]

FOLLOW_UPS = [
    # continuations and ellipses
    "And for replicas?",
    "and how many carry over?",
    "What about contractors?",
    "How about part-timers?",
    "Same for managers?",
    "Why?",
    "How much?",
    "Which one?",
    "In France?",
    "For contractors?",
    "What about the other one?",
    "And the previous one?",
    "Does the policy say the same for the other?",
    "Is it the same for managers?",
    "Can contractors also get it?",
    "Does that apply to contractors as well?",
    # words pointing back
    "Does it apply to interns?",
    "Where is it stored?",
    "Who approves it?",
    "Is it mandatory?",
    "How long does it take?",
    "What does the policy say about it?",
    "What is its retention period?",
    "Are they paid?",
    "Can I carry them over?",
    "What are their opening hours?",
    "Is that mandatory?",
    "Does this apply to contractors?",
    "Do those count?",
    "How do I get there?",
    "Is parking available there?",
]
SUIVIS = [
    "Et pour les cadres ?",
    "Et si je suis malade ?",
    "Et en France ?",
    "Pareil pour les stagiaires ?",
    "Idem pour les CDD ?",
    "La même chose pour les cadres ?",
    "Cela vaut aussi pour les CDD ?",
    "Pourquoi ?",
    "Combien ?",
    "Et l'autre ?",
    "Que dit l'autre document ?",
    "Qu'en est-il des CDD ?",
    "Le précédent était mieux ?",
    "Est-il obligatoire ?",
    "Peut-il être reporté ?",
    "Est-ce qu'elle est payée ?",
    "Combien coûte-t-il ?",
    "Les stagiaires y ont-ils droit ?",
    "Combien en reste-t-il ?",
    "J'en ai besoin pour quand ?",
    "Comment l'obtenir ?",
    "Où le trouver ?",
    "Je le demande à qui ?",
    "Qui les valide ?",
    "Ça s'applique aux stagiaires ?",
    "C'est obligatoire ?",
    "Celui de Lyon est ouvert ?",
    "Quelle est sa durée ?",
    "Quel est leur délai ?",
    "Ce document s'applique-t-il aux stagiaires ?",
]
STANDALONE = [
    "How many days of paid annual leave do employees get?",
    "Which zpool command creates a mirrored ZFS pool?",
    "Where is the office in Lyon?",
    "Can the other parent take leave too?",
    "snake_case_setting",
    "resolv.conf",
    # "it" as the IT department
    "What is IT's policy?",
    "What is it support policy?",
    "Who is the IT contact?",
    # "there" existential, "it" a dummy subject
    "Is there a VPN?",
    "Are there parking spaces at the office?",
    "What holidays are there this year?",
    "Is it possible to work remotely?",
    "Is it mandatory to wear a badge?",
    "How long does it take to get reimbursed?",
    # what the pronoun points to is in the question
    "How do employees book their leave?",
    "How do I reset my password if I forgot it?",
    "If employees are sick, do they need a certificate?",
    "Which documents say that leave expires?",
    "What is the rule that applies to contractors?",
    "Can those who work part-time get meal vouchers?",
]
AUTONOMES = [
    "Y a-t-il un VPN ?",
    "Il y a un parking au bureau ?",
    "Faut-il un justificatif ?",
    "Combien de jours faut-il ?",
    "Est-il possible de télétravailler le vendredi ?",
    "Est-il obligatoire de porter un badge ?",
    "Que se passe-t-il si je suis malade ?",
    "Les salariés peuvent-ils télétravailler ?",
    "Le télétravail est-il autorisé le vendredi ?",
    "Les stagiaires ont-ils droit aux tickets restaurant ?",
    "Les salariés peuvent-ils poser leurs congés en août ?",
    "Ceux qui travaillent à temps partiel ont-ils droit aux tickets ?",
    "Qu'est-ce que le télétravail ?",
    "C'est quoi le délai de prévenance ?",
    "Combien de jours de congés ai-je ce mois-ci ?",
    "Où se trouve le bureau de Lyon ?",
    "Quel est le dossier à remplir pour les congés ?",
    "Comment le dossier est-il traité ?",
    "Quelles sont les heures d'ouverture du bureau en France ?",
    "Quel est l'horaire de l'accueil ?",
    "Comment demander un congé parental ?",
]


@pytest.mark.parametrize("question", FOLLOW_UPS + SUIVIS)
def test_a_follow_up_depends_on_the_history(question: str) -> None:
    assert depends_on_history(question, HISTORY)


@pytest.mark.parametrize("question", STANDALONE + AUTONOMES)
def test_a_standalone_question_does_not_depend_on_the_history(question: str) -> None:
    assert not depends_on_history(question, HISTORY)


def test_nothing_depends_on_an_empty_history() -> None:
    assert not depends_on_history("Does it apply to interns?", [])
    assert not depends_on_history("Et pour les cadres ?", [Message("system", "Be brief.")])


def test_curly_apostrophes_read_like_straight_ones() -> None:
    assert depends_on_history("Comment l’obtenir ?", HISTORY)
    assert not depends_on_history("Qu’est-ce que le télétravail ?", HISTORY)
