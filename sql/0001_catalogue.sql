-- 0001 (baseline): the contracts catalogue (tiers, calendars, tenants, requesters, trunks, maintenance) and
-- the Asterisk servers. Rows removed from a catalogue file are deactivated (active = false), never deleted,
-- so history stays reportable.
--
-- Layout (docs/schema.md): the baseline files 0001-0099 hold the tables, indexes, constraints and roles, one
-- file per table family (0001 catalogue, 0010 AMI sessions and trunks, 0020 calls, 0030 support line,
-- 0040 billing); functions and views live in sql/repeatable/, one file per rule. Later changes are new
-- versioned files in the changing issue's number block (12NN, 13NN, ...).

CREATE TABLE servers (
    name        text PRIMARY KEY,          -- [[asterisk]] name, or a `cdr import --server` label
    first_seen  timestamptz NOT NULL DEFAULT now()
);

-- One row per `contracts apply` that changed something: the whole validated catalogue as JSON
-- (PIN hashes only), so the routing core can be rebuilt exactly from one row.
CREATE TABLE catalogue_revisions (
    id          bigserial PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL,             -- file path given to `contracts apply`
    sha256      text NOT NULL,             -- of the normalised document
    document    jsonb NOT NULL
);

CREATE TABLE catalogue_settings (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    timezone      text NOT NULL,
    country_code  text NOT NULL CHECK (country_code ~ '^[1-9][0-9]{0,2}$'),
    revision_id   bigint REFERENCES catalogue_revisions (id)
);

CREATE TABLE calendars (
    name      text PRIMARY KEY,
    always    boolean NOT NULL,            -- "24/7"
    hours     jsonb NOT NULL,              -- {"mon": [["09:00","18:00"]], ...}; {} when always
    holidays  date[] NOT NULL DEFAULT '{}',
    active    boolean NOT NULL DEFAULT true
);

CREATE TABLE tiers (
    name                   text PRIMARY KEY,
    price_per_year         numeric(14, 2) NOT NULL CHECK (price_per_year >= 0),
    currency               text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    max_calls_per_day      integer CHECK (max_calls_per_day >= 0),   -- NULL: no threshold
    max_employees          integer CHECK (max_employees >= 0),
    calendar               text NOT NULL REFERENCES calendars (name),
    queue                  text NOT NULL,
    priority               integer NOT NULL,
    out_of_hours           text NOT NULL,  -- closed | voicemail | queue:<name>
    answer_target_seconds  integer NOT NULL CHECK (answer_target_seconds > 0),
    service_level_target   numeric(6, 5) CHECK (service_level_target BETWEEN 0 AND 1),
    availability_target    numeric(7, 6) CHECK (availability_target BETWEEN 0 AND 1),
    credits                jsonb NOT NULL DEFAULT '[]',   -- [{"metric","below","percent"}]
    active                 boolean NOT NULL DEFAULT true
);

CREATE TABLE tenants (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    tier            text NOT NULL REFERENCES tiers (name),
    employees       integer NOT NULL CHECK (employees >= 0),
    contract_start  date NOT NULL,
    contract_end    date,                  -- inclusive last day under contract; NULL: open-ended
    active          boolean NOT NULL DEFAULT true,
    CHECK (contract_end IS NULL OR contract_end >= contract_start)
);

-- Attribution lookups (spec: account code, else dialled DID, else the caller among requesters).
-- An inactive row keeps its tenant for history but no longer attributes new calls.
CREATE TABLE tenant_accountcodes (
    accountcode  text PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (id),
    active       boolean NOT NULL DEFAULT true
);

CREATE TABLE tenant_dids (
    did        text PRIMARY KEY CHECK (did ~ '^\+[1-9][0-9]{1,14}$'),   -- E.164
    tenant_id  text NOT NULL REFERENCES tenants (id),
    active     boolean NOT NULL DEFAULT true
);

CREATE TABLE trunks (
    server               text NOT NULL,
    name                 text NOT NULL,    -- PJSIP endpoint name
    availability_target  numeric(7, 6) CHECK (availability_target BETWEEN 0 AND 1),
    in_catalogue         boolean NOT NULL DEFAULT false,   -- false: seen on the PBX only
    active               boolean NOT NULL DEFAULT true,
    first_seen           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server, name)
);

CREATE TABLE tenant_trunks (
    tenant_id  text NOT NULL REFERENCES tenants (id),
    server     text NOT NULL,
    trunk      text NOT NULL,
    active     boolean NOT NULL DEFAULT true,
    PRIMARY KEY (tenant_id, server, trunk),
    FOREIGN KEY (server, trunk) REFERENCES trunks (server, name)
);

CREATE TABLE requesters (
    id         bigserial PRIMARY KEY,
    tenant_id  text NOT NULL REFERENCES tenants (id),
    name       text NOT NULL,
    pin_hash   text,                       -- scrypt$N$r$p$salt$hash; never the PIN
    active     boolean NOT NULL DEFAULT true,
    UNIQUE (tenant_id, name)
);

CREATE TABLE requester_phones (
    phone         text PRIMARY KEY CHECK (phone ~ '^\+[1-9][0-9]{1,14}$'),  -- E.164
    requester_id  bigint NOT NULL REFERENCES requesters (id),
    active        boolean NOT NULL DEFAULT true
);

CREATE TABLE maintenance_windows (
    id        bigserial PRIMARY KEY,
    server    text,                        -- NULL with trunk NULL: every trunk of every server
    trunk     text,                        -- NULL: every trunk (of server, when given)
    during    tstzrange NOT NULL CHECK (NOT isempty(during)),
    reason    text NOT NULL DEFAULT '',
    active    boolean NOT NULL DEFAULT true,
    UNIQUE NULLS NOT DISTINCT (server, trunk, during)   -- PostgreSQL >= 15
);
CREATE INDEX maintenance_windows_during ON maintenance_windows USING gist (during);
