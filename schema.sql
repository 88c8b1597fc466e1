-- UFRECS schema: the single source of truth, embedded in the binary and applied at every
-- start (every statement is idempotent). `PRAGMA user_version` records the schema version
-- for later migrations. Documented column by column in docs/integrators.md.
--
-- Conventions:
--   * timestamps are RFC 3339 UTC text with second precision ('2025-08-15T14:02:11Z'),
--     so they sort and compare as text;
--   * booleans are 0/1 integers;
--   * `idx` is a voter's or a ballot's rank in its office (1..limits.max_index, at most
--     1000000);
--   * accepted values (cross-checked, section 6 of the spec) are persisted in `votes` and
--     `ballots` so offline readers need not re-implement the rules; totals are not stored.

CREATE TABLE IF NOT EXISTS sources (
    n             INTEGER PRIMARY KEY,          -- public number: the source's name is source-{n}
    elector_id    TEXT NOT NULL UNIQUE,         -- national voter number: personal data, never published
    status        TEXT NOT NULL DEFAULT 'unverified'
                  CHECK (status IN ('unverified', 'independent', 'official', 'political_party')),
    password_hash TEXT,                         -- argon2id PHC string; NULL while none is set
    full_name     TEXT,
    official_org  TEXT,
    email         TEXT,
    phone_number  TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS tokens (
    token_hash     TEXT PRIMARY KEY,            -- lowercase hex SHA-256 of the token (never the token)
    source_n       INTEGER NOT NULL REFERENCES sources (n),
    poll_office_id TEXT NOT NULL,               -- the office the token is bound to
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    revoked_at     TEXT                         -- set on rotation or password reset
) WITHOUT ROWID;                            -- rows are deleted once expired
CREATE INDEX IF NOT EXISTS tokens_by_source ON tokens (source_n, poll_office_id);
-- The live tokens of a source at an office, without walking the revoked ones (a source
-- that authenticated thousands of times rotates in one lookup).
CREATE INDEX IF NOT EXISTS tokens_live ON tokens (source_n, poll_office_id) WHERE revoked_at IS NULL;
-- Expired tokens are deleted once a minute.
CREATE INDEX IF NOT EXISTS tokens_by_expiry ON tokens (expires_at);

CREATE TABLE IF NOT EXISTS poll_offices (
    id             INTEGER PRIMARY KEY,         -- numeric directory id (served by /api/polloffices/)
    identifier     TEXT NOT NULL UNIQUE,        -- the poll_office_id used everywhere else
    name           TEXT NOT NULL,
    country        TEXT,
    state          TEXT,
    region         TEXT,
    city           TEXT,
    county         TEXT,
    district       TEXT,
    voters_count   INTEGER                      -- registered voters, when known
);

CREATE TABLE IF NOT EXISTS parties (
    id             INTEGER PRIMARY KEY,
    identifier     TEXT NOT NULL UNIQUE,        -- the party_id ballots carry
    party_name     TEXT,
    candidate_name TEXT
);

-- One row per (office, index): the vote's global id and its accepted attributes.
-- poll_office_id is not a foreign key: outside registry.strict, offices need not be in
-- the directory.
CREATE TABLE IF NOT EXISTS votes (
    id                INTEGER PRIMARY KEY,      -- global vote id, served as a decimal string
    poll_office_id    TEXT NOT NULL,
    idx               INTEGER NOT NULL CHECK (idx BETWEEN 1 AND 1000000),
    first_reported_at TEXT NOT NULL,            -- when any source first reported it
    live              INTEGER NOT NULL,         -- 1 when first reported alone, 0 in a batch (offered to voters, section 7)
    timed             INTEGER NOT NULL DEFAULT 0, -- 1 when that first report's time is an observation time (version 3; section 6b)
    counted           INTEGER NOT NULL DEFAULT 0, -- 1 when at least one proposal counts
    gender            TEXT,                     -- accepted: male | female | undecided; NULL when not counted
    age               TEXT,                     -- accepted: less_30 | less_60 | more_60 | undecided; NULL when not counted
    has_torn          INTEGER,                  -- accepted; NULL when not counted
    disputed          INTEGER NOT NULL DEFAULT 0, -- counted proposals disagree, or the verification differs
    observed_at       TEXT,                     -- earliest counted observed_at, NULL when none
    UNIQUE (poll_office_id, idx)
);

-- What each source said about each vote (its latest word: corrections replace it, the
-- old value stays in audit_log).
CREATE TABLE IF NOT EXISTS vote_proposals (
    vote_id        INTEGER NOT NULL REFERENCES votes (id),
    source_n       INTEGER NOT NULL REFERENCES sources (n),
    poll_office_id TEXT NOT NULL,               -- copied from votes for readers' convenience
    idx            INTEGER NOT NULL,
    gender         TEXT NOT NULL CHECK (gender IN ('male', 'female')),
    age            TEXT NOT NULL CHECK (age IN ('less_30', 'less_60', 'more_60')),
    has_torn       INTEGER NOT NULL CHECK (has_torn IN (0, 1)),
    observed_at    TEXT,                        -- as the app recorded it, kept from the first report
    batch          INTEGER NOT NULL DEFAULT 0,  -- 1 when it arrived in a batch
    log_seq        INTEGER,                     -- audit_log.seq of the entry that recorded this value (version 4): a resend's receipt
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (vote_id, source_n)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vote_proposals_by_office ON vote_proposals (poll_office_id, idx);

-- The seed's VoteVerified: at most one per vote and one per voter.
CREATE TABLE IF NOT EXISTS vote_verifications (
    vote_id        INTEGER PRIMARY KEY REFERENCES votes (id),
    voter_hash     TEXT NOT NULL UNIQUE,        -- hex HMAC-SHA256(server secret, voter elector_id)
    gender         TEXT NOT NULL CHECK (gender IN ('male', 'female')),
    age            TEXT NOT NULL CHECK (age IN ('less_30', 'less_60', 'more_60')),
    has_torn       INTEGER NOT NULL CHECK (has_torn IN (0, 1)),
    created_at     TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS ballots (
    id                INTEGER PRIMARY KEY,
    poll_office_id    TEXT NOT NULL,
    idx               INTEGER NOT NULL CHECK (idx BETWEEN 1 AND 1000000),
    first_reported_at TEXT NOT NULL,
    counted           INTEGER NOT NULL DEFAULT 0,
    party_id          TEXT,                     -- accepted party; NULL when undecided or not counted
    disputed          INTEGER NOT NULL DEFAULT 0,
    UNIQUE (poll_office_id, idx)
);

CREATE TABLE IF NOT EXISTS ballot_proposals (
    ballot_id      INTEGER NOT NULL REFERENCES ballots (id),
    source_n       INTEGER NOT NULL REFERENCES sources (n),
    poll_office_id TEXT NOT NULL,
    idx            INTEGER NOT NULL,
    party_id       TEXT NOT NULL,
    log_seq        INTEGER,                     -- as in vote_proposals (version 4)
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (ballot_id, source_n)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ballot_proposals_by_office ON ballot_proposals (poll_office_id, idx);

-- Which sources report at which office, per kind: decides an office's trust tier and
-- its `sources` count without scanning its proposals.
CREATE TABLE IF NOT EXISTS office_sources (
    poll_office_id TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('vote', 'ballot')),
    source_n       INTEGER NOT NULL REFERENCES sources (n),
    first_at       TEXT NOT NULL,
    last_at        TEXT,                        -- its last logged proposal or correction of this kind here (version 3; NULL before)
    PRIMARY KEY (poll_office_id, kind, source_n)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS office_sources_by_source ON office_sources (source_n);

-- Per office and kind: how many sources report there (`office_sources`) and how many of
-- them are trusted. The office's trust tier in one lookup, however many sources invented
-- themselves there. Derived from office_sources and sources.status, kept with them in the
-- same transactions (and rebuilt from them when a database from before it is opened).
CREATE TABLE IF NOT EXISTS office_tiers (
    poll_office_id TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('vote', 'ballot')),
    sources        INTEGER NOT NULL,            -- rows of office_sources
    trusted        INTEGER NOT NULL,            -- of which sources with a trusted status
    PRIMARY KEY (poll_office_id, kind)
) WITHOUT ROWID;

-- The public, hash-chained log (spec section 6c):
--   hash = hex(SHA-256(previous hash + "\n" + canonical JSON of {seq, at, kind, actor,
--   poll_office_id, detail})), the first previous hash being 64 zeros.
CREATE TABLE IF NOT EXISTS audit_log (
    seq            INTEGER PRIMARY KEY,         -- 1, 2, 3, ... without gaps
    at             TEXT NOT NULL,
    kind           TEXT NOT NULL,
    actor          TEXT NOT NULL,               -- source-{n} | admin | cli | voter | system
    poll_office_id TEXT,
    detail         TEXT NOT NULL,               -- canonical JSON object
    hash           TEXT NOT NULL
);

-- Per office and kind ('vote': its stats, 'ballot': its results): the seq of the last
-- audit entry without a poll_office_id that concerns those numbers (a status change of a
-- source reporting there, directory rows with its voters_count). The bodies carry as
-- `log_seq` the later of it and the office's last entry naming it (found by the start-up's
-- scan of the log; ballots date the stats too, whose flags read them): replaying the log
-- up to it reproduces their numbers.
CREATE TABLE IF NOT EXISTS office_log (
    poll_office_id TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('vote', 'ballot')),
    log_seq        INTEGER NOT NULL,
    PRIMARY KEY (poll_office_id, kind)
) WITHOUT ROWID;

-- The transparency log over audit_log (section 6e). Derived data: rebuilt from
-- audit_log when missing or damaged, never an input.
--   The RFC 6962 tree's full hash tiles (C2SP tlog-tiles, height 8): tile `n` of tile
--   level `level` holds the 256 hashes of tree level 8 * level, 32 bytes each.
CREATE TABLE IF NOT EXISTS log_tiles (
    level  INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    hashes BLOB NOT NULL,
    PRIMARY KEY (level, n)
) WITHOUT ROWID;

-- Every checkpoint the log signed (C2SP signed notes), one per tree size.
CREATE TABLE IF NOT EXISTS log_checkpoints (
    size INTEGER PRIMARY KEY,
    at   TEXT NOT NULL,
    note TEXT NOT NULL                          -- the signed note, as served
);

-- The latest cosignature of each witness key listed in log.witnesses (C2SP
-- tlog-cosignature), for the checkpoint of `size`.
CREATE TABLE IF NOT EXISTS log_cosignatures (
    witness TEXT NOT NULL,                      -- the witness key's name
    key_id  INTEGER NOT NULL,
    size    INTEGER NOT NULL REFERENCES log_checkpoints (size),
    time    INTEGER NOT NULL,                   -- the cosignature's own timestamp (seconds)
    line    TEXT NOT NULL,                      -- the signature line, as the witness sent it
    at      TEXT NOT NULL,                      -- when the log accepted it
    PRIMARY KEY (witness, key_id)
) WITHOUT ROWID;

-- What the file keeps of the hashing secret (`auth.secret_file`): HMAC-SHA256(secret,
-- a fixed text), so that a start with another secret is refused once voters verified.
CREATE TABLE IF NOT EXISTS secret_fingerprints (
    secret      TEXT PRIMARY KEY,               -- 'hashing'
    fingerprint TEXT NOT NULL
) WITHOUT ROWID;
