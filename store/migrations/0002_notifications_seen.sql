-- Up to when (ms since the epoch) each token's member has seen the
-- notifications of their process; only ever moved forward.
CREATE TABLE notifications_seen (
    token_id text PRIMARY KEY,
    seen bigint NOT NULL
);
