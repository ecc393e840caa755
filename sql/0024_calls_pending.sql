-- 0024: calls waiting for calls_refresh during a `cdr import` (docs/calls.md "Import speed").
--
-- `cdr import` stores a batch of legs on one connection and recomputes the calls of the previous batch
-- on a second one, in parallel. The calls a batch touched are written here in the same transaction as
-- its legs and deleted in the transaction that refreshes them, so an import that dies in between leaves
-- them here: the next import of that server refreshes them first (a re-run restores everything).
-- One row per (batch, call), no unique key: a later batch touching the same call adds its own row, so
-- refreshing and deleting an earlier batch never drops a later batch's pending call.
CREATE TABLE calls_pending (
    batch     uuid NOT NULL,
    server    text NOT NULL,
    call_key  text NOT NULL
);
CREATE INDEX calls_pending_batch ON calls_pending (batch);
CREATE INDEX calls_pending_server ON calls_pending (server);
