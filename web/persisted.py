"""Persisted documents: Apollo's automatic persisted queries (APQ) and, behind a setting,
trusted documents (only the operations of a build-time manifest run).

APQ: a client sends `extensions.persistedQuery.sha256Hash` alone; an unknown hash answers
`PERSISTED_QUERY_NOT_FOUND` and the client resends it with the document, which is
verified against the hash and remembered. The store is per instance and bounded: a miss
on another instance costs the client one round trip, never a failure.

Trusted documents: a manifest maps ids to documents, as Relay's compiler (`persistConfig`)
and GraphQL Codegen's client preset (`persistedDocuments`) write it, or in Apollo's
persisted-query manifest format. A request names a document by
`extensions.persistedQuery.sha256Hash`, `documentId` or `doc_id`, or sends the text of a
listed document; anything else answers `PERSISTED_QUERY_NOT_IN_LIST`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from core.config import ConfigError

#: documents larger than this are never remembered for APQ
MAX_REMEMBERED_BYTES = 64 * 1024


class PersistedQueryError(Exception):
    """Answered as a GraphQL request error carrying `code`."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def sha256_hex(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def load_manifest(path: Path) -> dict[str, str]:
    """Id → document, from Relay's or Codegen's `{id: document}` map or Apollo's manifest."""
    try:
        raw = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise ConfigError(f"TRUSTED_DOCUMENTS: cannot read {path}: {error}") from None
    documents: dict[str, str] = {}
    if isinstance(raw, dict) and raw.get("format") == "apollo-persisted-query-manifest":
        for operation in raw.get("operations") or []:
            if isinstance(operation, dict):
                documents[str(operation.get("id"))] = str(operation.get("body"))
    elif isinstance(raw, dict):
        documents = {str(key): value for key, value in raw.items() if isinstance(value, str)}
    if not documents:
        raise ConfigError(f"TRUSTED_DOCUMENTS: {path} lists no documents")
    return documents


class PersistedDocuments:
    def __init__(self, *, apq_capacity: int, manifest: Mapping[str, str] | None = None) -> None:
        self._capacity = apq_capacity
        self._remembered: OrderedDict[str, str] = OrderedDict()
        self.trusted: dict[str, str] | None = None
        if manifest is not None:
            self.trusted = dict(manifest)
            # a listed document may also be sent as text, or named by its SHA-256
            for document in manifest.values():
                self.trusted.setdefault(sha256_hex(document), document)
            self._trusted_texts = frozenset(manifest.values())

    def resolve(
        self,
        query: str | None,
        extensions: Mapping[str, Any] | None,
        document_id: object = None,
    ) -> str | None:
        """The document to run; raises `PersistedQueryError` when there is none to run."""
        requested = _requested_hash(extensions)
        if requested is None and isinstance(document_id, str):
            requested = document_id
        if self.trusted is not None:
            return self._resolve_trusted(query, requested)
        if requested is None:
            return query
        requested = requested.lower()
        if query is None:
            remembered = self._remembered.get(requested)
            if remembered is None:
                raise PersistedQueryError(
                    "PERSISTED_QUERY_NOT_FOUND",
                    "PersistedQueryNotFound: send the document with its hash",
                    200,
                )
            self._remembered.move_to_end(requested)
            return remembered
        if sha256_hex(query) != requested:
            raise PersistedQueryError(
                "BAD_USER_INPUT", "persistedQuery.sha256Hash does not match the document", 400
            )
        if self._capacity > 0 and len(query) <= MAX_REMEMBERED_BYTES:
            self._remembered[requested] = query
            self._remembered.move_to_end(requested)
            if len(self._remembered) > self._capacity:
                self._remembered.popitem(last=False)
        return query

    def _resolve_trusted(self, query: str | None, requested: str | None) -> str:
        assert self.trusted is not None
        if requested is not None:
            document = self.trusted.get(requested) or self.trusted.get(requested.lower())
            if document is None:
                raise PersistedQueryError(
                    "PERSISTED_QUERY_NOT_FOUND", "no trusted document has this id", 200
                )
            if query is not None and query != document:
                raise PersistedQueryError(
                    "BAD_USER_INPUT", "the document does not match the trusted one of its id", 400
                )
            return document
        if query is not None and query in self._trusted_texts:
            return query
        raise PersistedQueryError(
            "PERSISTED_QUERY_NOT_IN_LIST",
            "only trusted documents run here: send a listed document's id",
            400,
        )


def _requested_hash(extensions: Mapping[str, Any] | None) -> str | None:
    persisted = (extensions or {}).get("persistedQuery")
    if not isinstance(persisted, Mapping):
        return None
    value = persisted.get("sha256Hash")
    if not isinstance(value, str) or not value:
        raise PersistedQueryError(
            "BAD_USER_INPUT", "extensions.persistedQuery needs a sha256Hash", 400
        )
    return value


def request_error_body(error: PersistedQueryError) -> dict[str, Any]:
    return {"errors": [{"message": error.message, "extensions": {"code": error.code}}]}
