-- Delivery receipts (issue 16): what a provider said after it accepted a
-- delivery. `receipt` is null until one came; then delivered, undelivered
-- or bounced, with the provider's reason. `receipt_hard` tells a hard
-- bounce (5.x.x) from a soft one (4.x.x), the one receipt a later one may
-- still replace. Times are Unix milliseconds.
ALTER TABLE deliveries ADD COLUMN receipt TEXT
    CHECK (receipt IN ('delivered', 'undelivered', 'bounced'));
ALTER TABLE deliveries ADD COLUMN receipt_hard INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN receipt_reason TEXT;
ALTER TABLE deliveries ADD COLUMN receipt_at INTEGER;
-- A receipt names the provider's id for the message (Twilio's SID,
-- Vonage's message-id) on the channel that sent it.
CREATE INDEX deliveries_by_provider_ref ON deliveries (channel, provider_ref)
    WHERE provider_ref IS NOT NULL;

-- Addresses a hard bounce marked bad: the next crisis plans the fallback
-- route first.
CREATE TABLE bad_addresses (
    point         TEXT NOT NULL CHECK (point IN ('email', 'phone')),
    address       TEXT NOT NULL,
    reason        TEXT NOT NULL,
    marked_at     INTEGER NOT NULL,
    PRIMARY KEY (point, address)
);
