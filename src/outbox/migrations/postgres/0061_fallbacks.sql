-- Fallbacks (issue 16): a reader's message on their next contact point,
-- planned with the first and held until that one fails (dead, undelivered,
-- hard-bounced) or has no receipt within `wait_ms`. `id` is the delivery
-- it becomes once released; `outcome` says why it was released or skipped.
CREATE TABLE fallbacks (
    id              TEXT PRIMARY KEY,
    after_id        TEXT NOT NULL,
    channel         TEXT NOT NULL,
    point           TEXT NOT NULL CHECK (point IN ('email', 'phone')),
    destination     TEXT NOT NULL,
    content         TEXT NOT NULL,
    rendition_id    TEXT,
    recipient_name  TEXT,
    unsubscribe_url TEXT,
    wait_ms         BIGINT,
    created_at      BIGINT NOT NULL,
    released_at     BIGINT,
    outcome         TEXT
);
CREATE INDEX fallbacks_waiting ON fallbacks (after_id) WHERE released_at IS NULL;
-- The delivery a fallback delivery stands in for.
ALTER TABLE deliveries ADD COLUMN fallback_of TEXT;
