-- Drafts submitted in the console for a second person's approval. The
-- approval is kept with the content hash it was given for. Times are Unix
-- milliseconds.

CREATE TABLE console_submissions (
    id             TEXT PRIMARY KEY,
    draft          TEXT NOT NULL,
    content_hash   TEXT NOT NULL,
    author         TEXT NOT NULL,
    state          TEXT NOT NULL,
    approved_by    TEXT,
    approved_hash  TEXT,
    crisis_id      TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX console_submissions_by_state ON console_submissions (state, created_at);
