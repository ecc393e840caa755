-- Issue 17: retention (docs/retention.md). A row whose personal fields `pbx-sla retention apply` replaced by
-- pseudonyms is marked, so the daily run touches only rows that passed the retention age since (the
-- partial indexes hold only unmarked rows: once the history is done they stay small). Rows stored late
-- (a `cdr import` of an old file) are unmarked and are handled by the next run.
ALTER TABLE cdr_legs ADD COLUMN pseudonymised boolean NOT NULL DEFAULT false;
ALTER TABLE calls ADD COLUMN pseudonymised boolean NOT NULL DEFAULT false;
ALTER TABLE support_calls ADD COLUMN pseudonymised boolean NOT NULL DEFAULT false;
ALTER TABLE queue_events ADD COLUMN pseudonymised boolean NOT NULL DEFAULT false;
ALTER TABLE qos_legs ADD COLUMN pseudonymised boolean NOT NULL DEFAULT false;
CREATE INDEX cdr_legs_retention ON cdr_legs (start_at) WHERE NOT pseudonymised;
CREATE INDEX calls_retention ON calls (started_at) WHERE NOT pseudonymised;
CREATE INDEX support_calls_retention ON support_calls (decided_at) WHERE NOT pseudonymised;
CREATE INDEX queue_events_retention ON queue_events (at) WHERE NOT pseudonymised;
CREATE INDEX qos_legs_retention ON qos_legs (at) WHERE NOT pseudonymised;
