-- konsens store schema, version 1: what the sled store keeps, one table per tree.

-- Documents as chunks: a snapshot, then the incrementals written after it.
-- `seq` orders a document's chunks as they were written.
CREATE TABLE chunks (
    seq         bigserial PRIMARY KEY,
    document    bytea   NOT NULL CHECK (length(document) = 16),
    is_snapshot boolean NOT NULL,
    bytes       bytea   NOT NULL
);
CREATE INDEX chunks_by_document ON chunks (document, seq);

-- Small values: the store's storageId.
CREATE TABLE meta (
    key   text  PRIMARY KEY,
    value bytea NOT NULL
);

-- The heads a document last shared with a remote storage (32-byte hashes back to back).
CREATE TABLE sync_states (
    document bytea NOT NULL,
    storage  text  NOT NULL,
    heads    bytea NOT NULL,
    PRIMARY KEY (document, storage)
);

-- Tokens by the SHA-256 hash of their secret; the record is the JSON the
-- sled store keeps, byte for byte (text, not jsonb, which would reorder it).
CREATE TABLE tokens (
    hash   text PRIMARY KEY,
    id     text NOT NULL UNIQUE,
    record text NOT NULL
);

CREATE TABLE document_process (
    document bytea PRIMARY KEY,
    process  bytea NOT NULL
);

-- Which member each Automerge actor belongs to (first binding wins).
CREATE TABLE actors (
    actor       bytea PRIMARY KEY,
    participant text  NOT NULL
);

-- Who delivered each accepted change (JSON).
CREATE TABLE provenance (
    document bytea NOT NULL,
    change   bytea NOT NULL,
    record   text  NOT NULL,
    PRIMARY KEY (document, change)
);
