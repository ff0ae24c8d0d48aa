-- Flow control shared by the daemons on the store (SQLite's 0051): per
-- channel, its token bucket (what it held when last taken from, and when)
-- and the time until which its provider or breaker paused it. Unix
-- milliseconds.
CREATE TABLE flow (
    channel       TEXT PRIMARY KEY,
    tokens        DOUBLE PRECISION NOT NULL,
    refilled_at   BIGINT NOT NULL,
    paused_until  BIGINT NOT NULL DEFAULT 0
);
