-- Planning leases (SQLite's 0075). The daemon writing an announcement's
-- deliveries holds its plan until plan_lease_until (Unix milliseconds)
-- and renews it while it writes; once it runs out, any daemon takes the
-- plan over and resumes it from planned_through. A batch is written only
-- by the plan's owner and only from the place it expects, so a daemon
-- that lost the plan cannot write a reader twice.
ALTER TABLE announcements ADD COLUMN plan_owner TEXT;
ALTER TABLE announcements ADD COLUMN plan_lease_until BIGINT;
CREATE INDEX announcements_plan_leases ON announcements (plan_lease_until) WHERE planning;

-- The daemons sharing the store, as each last said it is alive: what
-- `crisisd status` lists.
CREATE TABLE nodes (
    node          TEXT PRIMARY KEY,
    started_at    BIGINT NOT NULL,
    seen_at       BIGINT NOT NULL
);
