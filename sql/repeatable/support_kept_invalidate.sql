-- The upkeep of the kept support requests (sql/1720): statement triggers on the facts requests are derived
-- from (support_calls, queue_events, cdr_legs) delete every kept tenant whose cut a statement's rows can
-- reach; the report functions derive and store them again when next asked (pbx_sla/store/kept_requests.py).
--
-- A tenant's kept rows hold the facts before its cut. What a changed row can reach:
-- * support_calls, inserted: the contact of its channel from its decided_at on (a channel's contact is its
--   first authorised run): the tenants with a run on that channel; and a support-line leg kept as an AGI
--   failure (no support-call record) stops being one: the tenants that kept that channel. Deleted or updated in a column requests read (retention's
--   deletes, hand edits): every tenant (the leg of a deleted run may become an AGI-failure contact).
-- * queue_events: a contact's outcome, answer and talk time, i.e. the contact of its channel: each tenant
--   with a support call of that uniqueid, from its earliest one, and the tenants that kept it as an
--   AGI-failure channel. A queue event of
--   a channel without either is no contact's yet (its record, when it comes, invalidates as above).
-- * cdr_legs: callbacks (answered legs of the staff endpoints the tenants were derived with) and AGI-failure
--   contacts (legs in the support line's contexts), from the leg's earliest instant on; a leg in which a
--   queue offered a call to an endpoint not in a tenant's staff makes that endpoint staff (a queue member),
--   so its answered calls at any time may become callbacks: those tenants go whole; a deleted one may end
--   a membership: every tenant whose staff holds that endpoint.
-- An UPDATE of a column requests read deletes everything (PostgreSQL gives no transition tables to triggers
-- with a column list; pbx-sla updates these columns only in retention's pseudonymisation of legs' numbers and
-- endpoints, after which the next report derives every tenant again, once); the triggers name the columns,
-- so updates of others (support_calls' caller fields, queue_events' member) keep the rows. TRUNCATE of a fact
-- table deletes everything.
--
-- Writers of kept rows derive and store under the exclusive advisory lock below; these triggers take it
-- shared before deleting, so rows derived from a snapshot that missed a concurrent change are always deleted
-- after they are stored (as trunk_known_days does; the changing transaction must be READ COMMITTED).
CREATE OR REPLACE FUNCTION support_kept_support_calls() RETURNS trigger
    LANGUAGE plpgsql
    AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('pbx-sla support_kept', 0));
    IF TG_OP = 'INSERT' THEN
        -- the tenants with a run on an inserted run's channel (its own included): the channel's first run,
        -- whose tenant has the contact, may be the new one
        DELETE FROM support_kept_tenants k
         USING (SELECT s.tenant_id, min(c.decided_at) AS since
                  FROM changed c JOIN support_calls s ON s.uniqueid = c.uniqueid AND s.server = c.server
                 WHERE s.tenant_id IS NOT NULL
                 GROUP BY s.tenant_id) t
         WHERE k.tenant_id = t.tenant_id AND k.cut > t.since;
        DELETE FROM support_kept_tenants k
         WHERE k.tenant_id IN (SELECT a.tenant_id FROM support_kept_agi_channels a
                                WHERE a.uniqueid IN (SELECT uniqueid FROM changed));
    ELSE
        DELETE FROM support_kept_tenants;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION support_kept_queue_events() RETURNS trigger
    LANGUAGE plpgsql
    AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('pbx-sla support_kept', 0));
    -- per tenant with a run on the channel, from its earliest run there (the contact is a run's)
    DELETE FROM support_kept_tenants k
     USING (SELECT s.tenant_id, min(s.decided_at) AS since FROM support_calls s
             WHERE s.uniqueid IN (SELECT DISTINCT uniqueid FROM changed) AND s.tenant_id IS NOT NULL
             GROUP BY s.tenant_id) t
     WHERE k.tenant_id = t.tenant_id AND k.cut > t.since;
    DELETE FROM support_kept_tenants k
     WHERE k.tenant_id IN (SELECT a.tenant_id FROM support_kept_agi_channels a
                            WHERE a.uniqueid IN (SELECT uniqueid FROM changed));
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION support_kept_cdr_legs() RETURNS trigger
    LANGUAGE plpgsql
    AS $fn$
DECLARE
    all_staff text[];
    all_contexts text[];
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('pbx-sla support_kept', 0));
    SELECT array_agg(DISTINCT s), array_agg(DISTINCT c) INTO all_staff, all_contexts
      FROM support_kept_tenants k LEFT JOIN LATERAL unnest(k.staff) s ON true
      LEFT JOIN LATERAL unnest(k.line_contexts) c ON true;
    IF all_staff IS NULL AND all_contexts IS NULL THEN
        RETURN NULL;  -- nothing kept
    END IF;
    -- queue members (pbx_sla.store.requests.queue_member_endpoints)
    IF TG_OP = 'INSERT' THEN
        DELETE FROM support_kept_tenants k
         WHERE EXISTS (SELECT 1 FROM changed c
                        WHERE c.lastapp = 'Queue' AND c.disposition = 'ANSWERED' AND c.dst_endpoint <> ''
                          AND NOT (c.dst_endpoint = ANY (k.staff)));
    ELSE
        DELETE FROM support_kept_tenants k
         WHERE EXISTS (SELECT 1 FROM changed c
                        WHERE c.lastapp = 'Queue' AND c.disposition = 'ANSWERED' AND c.dst_endpoint = ANY (k.staff));
    END IF;
    -- staff calls (callbacks) and support-line legs (AGI-failure contacts)
    DELETE FROM support_kept_tenants k
     WHERE k.cut > (SELECT min(LEAST(c.start_at, c.answer_at, c.end_at - c.billsec * interval '1 second'))
                      FROM changed c
                     WHERE (c.disposition = 'ANSWERED' AND c.src_endpoint = ANY (all_staff))
                        OR c.dcontext = ANY (all_contexts));
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION support_kept_truncate() RETURNS trigger
    LANGUAGE plpgsql
    AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('pbx-sla support_kept', 0));
    DELETE FROM support_kept_tenants;
    RETURN NULL;
END
$fn$;

DO $do$
BEGIN
    IF to_regclass('support_kept_tenants') IS NOT NULL THEN
        CREATE OR REPLACE TRIGGER support_calls_kept_insert AFTER INSERT ON support_calls
            REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION support_kept_support_calls();
        CREATE OR REPLACE TRIGGER support_calls_kept_delete AFTER DELETE ON support_calls
            FOR EACH STATEMENT EXECUTE FUNCTION support_kept_support_calls();
        CREATE OR REPLACE TRIGGER support_calls_kept_update
            AFTER UPDATE OF server, uniqueid, decided_at, tenant_id, authorised, action, reason ON support_calls
            FOR EACH STATEMENT EXECUTE FUNCTION support_kept_support_calls();
        CREATE OR REPLACE TRIGGER support_calls_kept_truncate AFTER TRUNCATE ON support_calls
            FOR EACH STATEMENT EXECUTE FUNCTION support_kept_truncate();

        CREATE OR REPLACE TRIGGER queue_events_kept_insert AFTER INSERT ON queue_events
            REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION support_kept_queue_events();
        CREATE OR REPLACE TRIGGER queue_events_kept_delete AFTER DELETE ON queue_events
            REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION support_kept_queue_events();
        CREATE OR REPLACE TRIGGER queue_events_kept_update
            AFTER UPDATE OF server, uniqueid, event, at, talk_time ON queue_events
            FOR EACH STATEMENT EXECUTE FUNCTION support_kept_truncate();
        CREATE OR REPLACE TRIGGER queue_events_kept_truncate AFTER TRUNCATE ON queue_events
            FOR EACH STATEMENT EXECUTE FUNCTION support_kept_truncate();

        CREATE OR REPLACE TRIGGER cdr_legs_kept_insert AFTER INSERT ON cdr_legs
            REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION support_kept_cdr_legs();
        CREATE OR REPLACE TRIGGER cdr_legs_kept_delete AFTER DELETE ON cdr_legs
            REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION support_kept_cdr_legs();
        CREATE OR REPLACE TRIGGER cdr_legs_kept_update
            AFTER UPDATE OF server, fingerprint, uniqueid, start_at, answer_at, end_at, billsec, disposition, dst,
                            dcontext, lastapp, caller_e164, dialled_e164, src_endpoint, dst_endpoint ON cdr_legs
            FOR EACH STATEMENT EXECUTE FUNCTION support_kept_truncate();
        CREATE OR REPLACE TRIGGER cdr_legs_kept_truncate AFTER TRUNCATE ON cdr_legs
            FOR EACH STATEMENT EXECUTE FUNCTION support_kept_truncate();
    END IF;
END
$do$;
