-- Console accounts (SQLite's 0030; Argon2id hashes only), their sessions (stored by the
-- SHA-256 of the cookie) and the account audit trail. Times are Unix
-- milliseconds.

CREATE TABLE console_users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE console_sessions (
    token_digest  TEXT PRIMARY KEY,
    user_name     TEXT NOT NULL REFERENCES console_users (name) ON DELETE CASCADE,
    csrf          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_user ON console_sessions (user_name);
CREATE INDEX console_sessions_by_last_seen ON console_sessions (last_seen_at);

CREATE TABLE console_audit (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    user_name     TEXT NOT NULL,
    detail        TEXT NOT NULL
);
