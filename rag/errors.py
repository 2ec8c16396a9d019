"""Citadel's error tree: library errors are translated at the adapter boundary.

    CitadelError                  one family for the CLI and the UI to catch and show
    ├── ConfigurationError        bad settings or settings file
    ├── InvalidQuestion           a question retrieval refuses: empty
    │   └── QuestionTooLong       ... or over retrieval.max_query_chars
    ├── InvalidQuestionSet        an evaluation file that cannot be read
    ├── EmbedderError             embedding model missing or unusable
    ├── StoreError                the vector store failed or refused an operation
    │   ├── StoreUnavailable      cannot open or reach the store (locked, server down)
    │   ├── CollectionNotFound    no such collection
    │   └── EmbeddingModelMismatch  collection built with another embedding model
    ├── GeneratorError            the answer-writing model failed
    │   ├── GeneratorUnavailable  model server unreachable (answers fall back to search mode)
    │   ├── ModelNotFound         the model is not pulled on the server
    │   ├── GenerationTimeout     no first token, or the stream went idle, within its limit
    │   └── GenerationFailed      the server reported an error or dropped the stream
    └── (the server's own errors: see ui/service/errors.py)

Each carries a sentence meant for a person; the original exception is chained.
"""

from __future__ import annotations


class CitadelError(Exception):
    """Base of every error Citadel reports to a user."""


class ConfigurationError(CitadelError):
    pass


class InvalidQuestion(CitadelError):
    pass


class QuestionTooLong(InvalidQuestion):
    pass


class InvalidQuestionSet(CitadelError):
    pass


class EmbedderError(CitadelError):
    pass


class StoreError(CitadelError):
    pass


class StoreUnavailable(StoreError):
    pass


class CollectionNotFound(StoreError):
    pass


class EmbeddingModelMismatch(StoreError):
    @classmethod
    def between(cls, collection: str, built_with: str, wanted: str) -> EmbeddingModelMismatch:
        return cls(
            f"collection {collection!r} was built with the embedding model {built_with!r}; "
            f"this run uses {wanted!r}. Rebuild it with {wanted!r} from its stored chunks "
            f"(no re-parsing): `citadel reindex {collection}`; or set "
            f"CITADEL_EMBEDDING__MODEL={built_with} to keep using the old model."
        )


class GeneratorError(CitadelError):
    pass


class GeneratorUnavailable(GeneratorError):
    pass


class ModelNotFound(GeneratorError):
    pass


class GenerationTimeout(GeneratorError):
    pass


class GenerationFailed(GeneratorError):
    pass
