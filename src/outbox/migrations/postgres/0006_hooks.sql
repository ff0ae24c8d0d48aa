-- Inbound webhooks: every one received, delivery ids already seen, and
-- source incidents held (declare_after) or proposed (mode = "propose").
-- Times are Unix milliseconds (BIGINT).

CREATE TABLE hook_log (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hook          TEXT NOT NULL,
    source        TEXT NOT NULL,
    received_at   BIGINT NOT NULL,
    status        BIGINT NOT NULL,
    verdict       TEXT NOT NULL,
    transitions   TEXT NOT NULL DEFAULT '[]',
    error         TEXT,
    delivery_id   TEXT
);
CREATE INDEX hook_log_by_hook ON hook_log (hook, seq);

CREATE TABLE hook_deliveries (
    hook          TEXT NOT NULL,
    delivery_id   TEXT NOT NULL,
    received_at   BIGINT NOT NULL,
    PRIMARY KEY (hook, delivery_id)
);

CREATE TABLE hook_pending (
    id            TEXT PRIMARY KEY,
    hook          TEXT NOT NULL,
    external_id   TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('held', 'proposed', 'declared', 'confirmed', 'discarded', 'withdrawn')),
    declaration   TEXT NOT NULL,
    due_at        BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    decided_by    TEXT
);
-- One open entry per source incident.
CREATE UNIQUE INDEX hook_pending_open ON hook_pending (hook, external_id)
    WHERE state IN ('held', 'proposed');
CREATE INDEX hook_pending_due ON hook_pending (state, due_at);
