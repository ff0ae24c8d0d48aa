-- Questions with numbered answers (issue 16). An announcement whose SMS
-- end with a question keeps its key (`[answers.questions]`); replies are
-- kept in `answers`, matched to the latest open question sent to the
-- number (or, for email, answered by a signed link). `answer` is the
-- number chosen, null for free text; `urgent` puts the reader on the
-- callback list. `message_ref` is the provider's id for the reply, so a
-- retried webhook records it once. No foreign keys: an answer outlives
-- the retention of its crisis's rows, for the support team's records.
-- Times are Unix milliseconds.
ALTER TABLE announcements ADD COLUMN question TEXT;

CREATE TABLE answers (
    id               TEXT PRIMARY KEY,
    crisis_id        TEXT,
    announcement_id  TEXT,
    question         TEXT,
    point            TEXT NOT NULL CHECK (point IN ('email', 'phone')),
    address          TEXT NOT NULL,
    locale           TEXT NOT NULL,
    channel          TEXT NOT NULL,
    answer           INTEGER,
    text             TEXT NOT NULL,
    urgent           BOOLEAN NOT NULL DEFAULT FALSE,
    message_ref      TEXT,
    received_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX answers_once ON answers (channel, message_ref)
    WHERE message_ref IS NOT NULL;
CREATE INDEX answers_by_crisis ON answers (crisis_id, received_at);
CREATE INDEX answers_urgent ON answers (received_at) WHERE urgent;
-- A reply finds the messages sent to its number.
CREATE INDEX deliveries_by_destination ON deliveries (destination, finished_at);
