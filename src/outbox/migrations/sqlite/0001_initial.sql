-- Crisis state, the audit trail, and the outbox. Times are Unix milliseconds.

CREATE TABLE crises (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    severity      TEXT NOT NULL,
    title         TEXT NOT NULL,
    summary       TEXT NOT NULL,
    localized     TEXT NOT NULL DEFAULT '{}',
    status        TEXT NOT NULL CHECK (status IN ('declared', 'updated', 'resolved')),
    version       INTEGER NOT NULL,
    last_message  TEXT,
    declared_at   INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    resolved_at   INTEGER
);
CREATE INDEX crises_by_status ON crises (status, declared_at);

-- Every transition and who or what made it.
CREATE TABLE crisis_events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    crisis_id     TEXT NOT NULL REFERENCES crises (id),
    status        TEXT NOT NULL,
    actor_source  TEXT NOT NULL,
    actor_name    TEXT NOT NULL,
    message       TEXT,
    at            INTEGER NOT NULL
);
CREATE INDEX crisis_events_by_crisis ON crisis_events (crisis_id, seq);

CREATE TABLE announcements (
    id            TEXT PRIMARY KEY,
    crisis_id     TEXT NOT NULL REFERENCES crises (id),
    kind          TEXT NOT NULL,
    message       TEXT,
    created_at    INTEGER NOT NULL
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
    priority         INTEGER NOT NULL DEFAULT 0,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'in_flight', 'retrying', 'sent', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    available_at     INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_until      INTEGER,
    last_error       TEXT,
    provider_ref     TEXT,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER
);
CREATE INDEX deliveries_due ON deliveries (channel, state, priority, available_at);
CREATE INDEX deliveries_by_crisis ON deliveries (crisis_id, channel, state);

-- Replays of POSTs carrying an Idempotency-Key get the first response.
CREATE TABLE idempotency_keys (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    status        INTEGER NOT NULL,
    body          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
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
