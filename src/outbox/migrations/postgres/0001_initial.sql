-- Crisis state, the audit trail, and the outbox: SQLite's 0001 for
-- PostgreSQL. Times are Unix milliseconds (BIGINT), as in the SQLite store,
-- so both stores read a row the same way.

CREATE TABLE crises (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    severity      TEXT NOT NULL,
    title         TEXT NOT NULL,
    summary       TEXT NOT NULL,
    localized     TEXT NOT NULL DEFAULT '{}',
    status        TEXT NOT NULL CHECK (status IN ('declared', 'updated', 'resolved')),
    version       BIGINT NOT NULL,
    last_message  TEXT,
    declared_at   BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    resolved_at   BIGINT
);
CREATE INDEX crises_by_status ON crises (status, declared_at);

-- Every transition and who or what made it.
CREATE TABLE crisis_events (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    crisis_id     TEXT NOT NULL REFERENCES crises (id),
    status        TEXT NOT NULL,
    actor_source  TEXT NOT NULL,
    actor_name    TEXT NOT NULL,
    message       TEXT,
    at            BIGINT NOT NULL
);
CREATE INDEX crisis_events_by_crisis ON crisis_events (crisis_id, seq);

CREATE TABLE announcements (
    id            TEXT PRIMARY KEY,
    crisis_id     TEXT NOT NULL REFERENCES crises (id),
    kind          TEXT NOT NULL,
    message       TEXT,
    created_at    BIGINT NOT NULL
);

-- The outbox: one row per announcement, channel and recipient.
CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    crisis_id        TEXT NOT NULL REFERENCES crises (id),
    announcement_id  TEXT NOT NULL REFERENCES announcements (id),
    kind             TEXT NOT NULL,
    channel          TEXT NOT NULL,
    recipient_id     TEXT,
    destination      TEXT NOT NULL,
    locale           TEXT NOT NULL,
    content          TEXT NOT NULL,
    priority         BIGINT NOT NULL DEFAULT 0,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'in_flight', 'retrying', 'sent', 'dead')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    available_at     BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT,
    last_error       TEXT,
    provider_ref     TEXT,
    created_at       BIGINT NOT NULL,
    finished_at      BIGINT
);
-- Claims read one channel's due rows of one state in their order. Each
-- state has a partial index of its own that holds only rows still to be
-- sent, so millions of finished deliveries cost a claim nothing, and
-- daemons claiming together skip each other's locked rows in it.
CREATE INDEX deliveries_pending_due ON deliveries (channel, priority, available_at)
    WHERE state = 'pending';
CREATE INDEX deliveries_retrying_due ON deliveries (channel, available_at)
    WHERE state = 'retrying';
CREATE INDEX deliveries_by_crisis ON deliveries (crisis_id, channel, state);

-- Replays of POSTs carrying an Idempotency-Key get the first response.
CREATE TABLE idempotency_keys (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    status        BIGINT NOT NULL,
    body          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Which crisis an outside source (the flag file, a webhook's incident)
-- currently drives.
CREATE TABLE source_links (
    source        TEXT NOT NULL,
    external_id   TEXT NOT NULL,
    crisis_id     TEXT NOT NULL REFERENCES crises (id),
    fingerprint   TEXT NOT NULL,
    PRIMARY KEY (source, external_id)
);
