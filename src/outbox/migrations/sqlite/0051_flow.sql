-- Flow control shared by the daemons on a store (issue 15): per channel,
-- its token bucket (what it held when last taken from, and when) and the
-- time until which its provider or breaker paused it. Unix milliseconds.
CREATE TABLE flow (
    channel       TEXT PRIMARY KEY,
    tokens        REAL NOT NULL,
    refilled_at   INTEGER NOT NULL,
    paused_until  INTEGER NOT NULL DEFAULT 0
);
