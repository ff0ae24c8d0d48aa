-- Every version of a crisis as a transition left it (title, summary and
-- message in every locale), so the crisis page's history, each CAP
-- document and each feed entry show the text of their own transition.
-- Times are Unix milliseconds.

CREATE TABLE crisis_versions (
    crisis_id     TEXT NOT NULL REFERENCES crises (id),
    version       BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    severity      TEXT NOT NULL,
    title         TEXT NOT NULL,
    summary       TEXT NOT NULL,
    localized     TEXT NOT NULL DEFAULT '{}',
    status        TEXT NOT NULL,
    last_message  TEXT,
    declared_at   BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    resolved_at   BIGINT,
    PRIMARY KEY (crisis_id, version)
);
CREATE INDEX crisis_versions_by_time ON crisis_versions (updated_at);

-- A crisis from before this table has its current version only: its
-- earlier texts were not kept.
INSERT INTO crisis_versions (crisis_id, version, kind, severity, title, summary, localized,
    status, last_message, declared_at, updated_at, resolved_at)
SELECT id, version, kind, severity, title, summary, localized, status, last_message,
    declared_at, updated_at, resolved_at
FROM crises;
