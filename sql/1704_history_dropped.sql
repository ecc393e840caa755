-- 1704 (issue 17): retention by partition (docs/retention.md). `pbx-sla retention apply` drops a history
-- table's month partition whose whole month is past the table's retention age and whose figures are kept
-- elsewhere (usage_daily, never dropped; the closed statements of every local month it overlaps). Each drop
-- is recorded here:
--   * for the operator: what was dropped, when, how many rows;
--   * for `statement close`: a closed month that overlaps a dropped range is final: it is no longer
--     recomputed for adjustments (its rows are gone, so its figures could only seem to change);
--   * for the leg writer: a leg that starts before the end of the newest dropped cdr_legs month is not
--     stored again (its call was counted in usage_daily when it was first stored).
CREATE TABLE history_dropped (
    partition   text PRIMARY KEY,
    parent      text NOT NULL,
    from_at     timestamptz NOT NULL,
    to_at       timestamptz NOT NULL,
    rows        bigint NOT NULL,
    dropped_at  timestamptz NOT NULL DEFAULT now()
);
