-- What an opt-out stops: 'all', or 'follow_ups' only (crisis announcements
-- still come). Every opt-out before this stopped everything.
ALTER TABLE opt_outs ADD COLUMN scope TEXT NOT NULL DEFAULT 'all'
    CHECK (scope IN ('all', 'follow_ups'));
