-- Which node owns each loaded document when several konsens servers share
-- this database. A claim is a compare-and-swap on the row; every grant
-- increments `epoch`, which never repeats (a released lease keeps its row
-- and epoch), so a write can be fenced by the epoch its node remembers.
-- `expires_at` is on the database's clock, the one clock all nodes share.
CREATE TABLE konsens_leases (
    document   text        PRIMARY KEY,
    node       text        NOT NULL,
    address    text        NOT NULL,
    epoch      bigint      NOT NULL,
    expires_at timestamptz NOT NULL
);
