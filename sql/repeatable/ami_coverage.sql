-- When trunk state of a server was KNOWN (docs/trunks.md): one interval [known_from, known_to) per resynced
-- AMI session (table ami_sessions, sql/0010_ami_trunks.sql); UNKNOWN outside them. A live session ends at
-- its last_seen_at (refreshed every ping_interval).
CREATE OR REPLACE VIEW ami_coverage AS
SELECT server,
       session_id,
       resynced_at                                          AS known_from,
       GREATEST(resynced_at, COALESCE(lost_at, last_seen_at, resynced_at)) AS known_to,
       lost_at IS NULL                                      AS live
FROM ami_sessions
WHERE resynced_at IS NOT NULL;
