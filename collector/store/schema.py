"""The store's schema as named migrations, applied in order, each in a transaction.

Written once for both stores: types are the common subset of SQLite and
PostgreSQL (TEXT, BIGINT, INTEGER); times are Unix epoch milliseconds (UTC)
in BIGINT columns; raw bytes are BYTEA (the SQLite store writes BLOB);
months are ``'YYYY-MM'`` in the policy's time zone.

Rollup kinds (``rollups.kind``), decided at ingest from a press's flags:

- ``rated``       a press counted as a rating (no repeat/too-fast/unsolicited flag)
- ``unsolicited`` a press with no open invite (policy decides if it counts)
- ``misuse``      a repeat press or one closer than the minimum interval
- ``invite``      an invite (``level`` 0)
- ``unrated``     an invite that expired unrated (``level`` 0)

``late`` is 1 for events stored after their month was closed: a closed
month's report reads ``late = 0`` and shows ``late = 1`` as a revision.
Presses with nobody signed in roll up under ``officer_id = ''``.

Rollup ``scale`` is the press's
``events.scale`` for ``rated``/``unsolicited``/``misuse`` rows and 0 for
``invite``/``unrated``: whether a level counts as satisfied depends on the
scale (level 2 is 不满意 on a 2-level box, 基本满意 on a 3-level one).
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
CREATE TABLE units (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    parent_id   TEXT,
    leader      TEXT
);
CREATE TABLE windows (
    id          TEXT PRIMARY KEY,
    unit_id     TEXT NOT NULL REFERENCES units(id),
    name        TEXT NOT NULL
);
CREATE TABLE officers (
    id          TEXT PRIMARY KEY,              -- badge number 警号
    name        TEXT NOT NULL,
    unit_id     TEXT NOT NULL REFERENCES units(id),
    window_id   TEXT REFERENCES windows(id),   -- usual window, informative
    active      INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE devices (
    id              TEXT PRIMARY KEY,
    window_id       TEXT NOT NULL REFERENCES windows(id),
    key_hex         TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    boot_floor      INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL DEFAULT 'unknown',  -- online | offline | unknown
    last_seen_ms    BIGINT,
    boot            INTEGER,
    uptime_ms       BIGINT,
    status_wall_ms  BIGINT,      -- the box's wall time in its last status, if synced
    fw              TEXT,
    outbox          INTEGER,
    outbox_full     INTEGER,
    mem             INTEGER,
    rssi            INTEGER,
    reset_cause     TEXT,
    last_error      TEXT,
    selftest        TEXT,
    config_version  INTEGER
);
CREATE TABLE events (
    device_id    TEXT NOT NULL,
    boot         INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    type         TEXT NOT NULL,          -- press | signin | signout | invite | unrated
    officer_id   TEXT,
    window_id    TEXT,
    press_ms     BIGINT NOT NULL,        -- when it happened (device time, or placed)
    device_ts_ms BIGINT,                 -- the box's wall time, NULL when unsynced
    uptime_ms    BIGINT NOT NULL,
    recv_ms      BIGINT NOT NULL,
    month        TEXT NOT NULL,          -- YYYY-MM of press_ms in the policy zone
    level        INTEGER,                -- press: 1 = best .. scale = worst
    scale        INTEGER,
    invite_no    INTEGER,
    ticket       TEXT,
    flags        INTEGER NOT NULL DEFAULT 0,
    kind         TEXT NOT NULL,          -- rollup kind (see module doc) or the type
    source       TEXT NOT NULL,          -- mqtt | serial
    late         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, boot, seq)
);
CREATE INDEX events_month_officer ON events (month, officer_id);
CREATE INDEX events_recv ON events (recv_ms);
CREATE TABLE duty (
    device_id    TEXT NOT NULL,
    officer_id   TEXT NOT NULL,
    start_ms     BIGINT NOT NULL,
    end_ms       BIGINT,
    PRIMARY KEY (device_id, officer_id, start_ms)
);
CREATE TABLE invites (
    device_id    TEXT NOT NULL,
    boot         INTEGER NOT NULL,
    invite_no    INTEGER NOT NULL,
    officer_id   TEXT,
    ticket       TEXT,
    opened_ms    BIGINT NOT NULL,
    outcome      TEXT NOT NULL DEFAULT 'open',   -- open | rated | unrated
    rating_seq   INTEGER,
    PRIMARY KEY (device_id, boot, invite_no)
);
CREATE TABLE rejected (
    id           INTEGER PRIMARY KEY,    -- bounded: oldest rows deleted past the cap
    at_ms        BIGINT NOT NULL,
    reason       TEXT NOT NULL,
    source       TEXT NOT NULL,          -- mqtt | serial
    origin       TEXT NOT NULL,          -- topic or port
    detail       TEXT NOT NULL,
    raw          BYTEA
);
CREATE TABLE rejected_counts (
    reason       TEXT PRIMARY KEY,
    n            BIGINT NOT NULL
);
CREATE TABLE rollups (
    officer_id   TEXT NOT NULL,          -- '' when nobody was signed in
    month        TEXT NOT NULL,
    window_id    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    level        INTEGER NOT NULL,       -- 0 for invite/unrated
    scale        INTEGER NOT NULL,       -- events.scale for presses, 0 for invite/unrated
    late         INTEGER NOT NULL,
    n            BIGINT NOT NULL,
    PRIMARY KEY (month, officer_id, window_id, kind, level, scale, late)
);
CREATE TABLE months (
    month        TEXT PRIMARY KEY,
    closed_ms    BIGINT NOT NULL,
    closed_by    TEXT NOT NULL
);
""",
    ),
    (
        "0003_report_complaints",
        """
CREATE TABLE complaints (
    id           BIGINT PRIMARY KEY,     -- assigned by the writer (max + 1)
    officer_id   TEXT NOT NULL REFERENCES officers(id),
    day          TEXT NOT NULL,          -- YYYY-MM-DD, local date of the complaint
    note         TEXT NOT NULL,
    added_ms     BIGINT NOT NULL,
    added_by     TEXT NOT NULL
);
CREATE INDEX complaints_officer_day ON complaints (officer_id, day);
""",
    ),
]

# Web page: users and their units, sessions, login throttling, bad-review
# cases, alerts with per-sink delivery state, flagged presses (anomalies) and
# the scanners' watermarks. Owned by ``collector.web``.
MIGRATIONS.append(
    (
        "0004_web_users_cases_alerts_anomalies",
        """
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,               -- admin | supervisor
    password_hash TEXT NOT NULL,               -- argon2id
    created_ms    BIGINT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE user_units (
    user_name     TEXT NOT NULL REFERENCES users(name),
    unit_id       TEXT NOT NULL,               -- the unit and every unit under it
    PRIMARY KEY (user_name, unit_id)
);
CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY,            -- sha256 of the cookie value
    user_name     TEXT NOT NULL REFERENCES users(name),
    csrf          TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    expires_ms    BIGINT NOT NULL              -- idle expiry, capped at the absolute limit
);
CREATE TABLE login_failures (
    key           TEXT PRIMARY KEY,            -- 'user:NAME' or 'addr:IP'
    failures      INTEGER NOT NULL,
    first_ms      BIGINT NOT NULL,
    locked_until_ms BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE cases (
    id            INTEGER PRIMARY KEY,
    device_id     TEXT NOT NULL,
    boot          INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    officer_id    TEXT NOT NULL,
    window_id     TEXT NOT NULL,
    unit_id       TEXT NOT NULL,
    month         TEXT NOT NULL,
    press_ms      BIGINT NOT NULL,
    level         INTEGER NOT NULL,
    scale         INTEGER NOT NULL,
    ticket        TEXT,
    opened_ms     BIGINT NOT NULL,
    visit_due_ms  BIGINT NOT NULL,             -- return visit deadline (working days)
    fix_due_ms    BIGINT NOT NULL,             -- rectification deadline (working days)
    visit_ms      BIGINT,
    visit_by      TEXT,
    visit_note    TEXT,
    fix_ms        BIGINT,
    fix_by        TEXT,
    fix_note      TEXT,
    state         TEXT NOT NULL DEFAULT 'open', -- open | closed | appeal
    closed_ms     BIGINT,
    closed_by     TEXT,
    appeal_reason TEXT,
    UNIQUE (device_id, boot, seq)
);
CREATE INDEX cases_month ON cases (month, unit_id);
CREATE TABLE alerts (
    id            INTEGER PRIMARY KEY,
    key           TEXT NOT NULL UNIQUE,        -- dedupe: one alert per cause
    kind          TEXT NOT NULL,               -- bad_rating | below_floor | offline | outbox
    unit_id       TEXT,
    subject       TEXT NOT NULL,               -- officer or device id
    created_ms    BIGINT NOT NULL,
    text_zh       TEXT NOT NULL,
    text_en       TEXT NOT NULL,
    payload       TEXT NOT NULL,               -- JSON sent to the sinks
    acked_ms      BIGINT,
    acked_by      TEXT
);
CREATE TABLE alert_deliveries (
    alert_id      INTEGER NOT NULL REFERENCES alerts(id),
    sink          TEXT NOT NULL,
    state         TEXT NOT NULL DEFAULT 'pending', -- pending | delivered
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_ms       BIGINT NOT NULL,
    last_error    TEXT,
    delivered_ms  BIGINT,
    PRIMARY KEY (alert_id, sink)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_ms);
CREATE TABLE anomalies (
    device_id     TEXT NOT NULL,
    boot          INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    rule          TEXT NOT NULL,               -- burst | no_invite | outside_hours | no_officer | ...
    officer_id    TEXT NOT NULL,
    unit_id       TEXT,
    month         TEXT NOT NULL,
    press_ms      BIGINT NOT NULL,
    detail        TEXT NOT NULL,               -- JSON: the numbers behind the flag
    detected_ms   BIGINT NOT NULL,
    PRIMARY KEY (device_id, boot, seq, rule)
);
CREATE INDEX anomalies_month ON anomalies (month, unit_id);
CREATE TABLE device_watch (
    device_id     TEXT PRIMARY KEY,
    outbox        INTEGER NOT NULL,
    seen_ms       BIGINT NOT NULL
);
CREATE TABLE web_watermarks (
    name          TEXT PRIMARY KEY,
    value         BIGINT NOT NULL
);
""",
    )
)


# Session settings the collector hands each box in its signed, retained config.
# ``settings_cv`` is bumped only when they change, so republishing the same
# config (every collector start) is a no-op on the box.
MIGRATIONS.append(
    (
        "0005_device_settings",
        """
ALTER TABLE devices ADD COLUMN scale INTEGER NOT NULL DEFAULT 2;
ALTER TABLE devices ADD COLUMN invite_ms BIGINT NOT NULL DEFAULT 10000;
ALTER TABLE devices ADD COLUMN min_interval_ms BIGINT NOT NULL DEFAULT 5000;
ALTER TABLE devices ADD COLUMN gated INTEGER NOT NULL DEFAULT 1;
ALTER TABLE devices ADD COLUMN open_min INTEGER;
ALTER TABLE devices ADD COLUMN close_min INTEGER;
ALTER TABLE devices ADD COLUMN settings_cv INTEGER NOT NULL DEFAULT 1;
ALTER TABLE devices ADD COLUMN transport TEXT NOT NULL DEFAULT 'mqtt';   -- mqtt | serial
""",
    )
)


# Commands for a box from the window PC or the queue system (invite with a
# ticket number, sign-in, sign-out): ``evalbox box-cmd`` queues one here; the
# running collector signs it (``cmd``, ``cid`` = id) and sends it over the
# transport the box last spoke on; the box applies each ``cid`` once.
MIGRATIONS.append(
    (
        "0006_box_commands",
        """
CREATE TABLE box_commands (
    id           INTEGER PRIMARY KEY,
    device_id    TEXT NOT NULL REFERENCES devices(id),
    op           TEXT NOT NULL,             -- invite | signin | signout
    officer_id   TEXT,
    ticket       TEXT,
    created_ms   BIGINT NOT NULL,
    sent_ms      BIGINT,
    via          TEXT                       -- mqtt | serial:<port>
);
CREATE INDEX box_commands_pending ON box_commands (sent_ms, id);
""",
    )
)


# A closed month's frozen state (``evalbox month close``): the policy in force
# at closing and the registry (JSON), and the month's rollup counts as they
# stood. The closed month's figures and judgement (band, penalty points, rank)
# are computed from these alone, so a later policy change or ``evalbox
# rebuild`` (even in another time zone) never changes them; what the month
# would be now shows as a revision beside them. Months closed before this
# migration keep the counts they had (their policy and registry: NULL, the
# current ones are used).
MIGRATIONS.append(
    (
        "0007_month_snapshots",
        """
CREATE TABLE month_snapshots (
    month        TEXT PRIMARY KEY REFERENCES months(month),
    policy       TEXT,                      -- JSON: the policy tables in force at closing
    registry     TEXT,                      -- JSON: units, windows, officers at closing
    taken_ms     BIGINT NOT NULL
);
CREATE TABLE month_rollups (
    month        TEXT NOT NULL REFERENCES month_snapshots(month),
    officer_id   TEXT NOT NULL,
    window_id    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    level        INTEGER NOT NULL,
    scale        INTEGER NOT NULL,
    n            BIGINT NOT NULL,
    PRIMARY KEY (month, officer_id, window_id, kind, level, scale)
);
INSERT INTO month_snapshots (month, policy, registry, taken_ms) SELECT month, NULL, NULL, closed_ms FROM months;
INSERT INTO month_rollups (month, officer_id, window_id, kind, level, scale, n)
    SELECT month, officer_id, window_id, kind, level, scale, SUM(n) FROM rollups
    WHERE late = 0 AND month IN (SELECT month FROM months)
    GROUP BY month, officer_id, window_id, kind, level, scale;
""",
    )
)


# Placing events from a box whose clock never synced (``ts`` null): the box's boot in wall time is
# ``recv_ms - uptime_ms`` of a message that came straight from it. One reference per box and boot,
# kept across collector restarts (``collector.ingest.clockref`` decides what may set it; a retained
# status re-delivered by the broker never does). The writer keeps the last few boots of each box.
MIGRATIONS.append(
    (
        "0008_clock_refs",
        """
CREATE TABLE clock_refs (
    device_id    TEXT NOT NULL,
    boot         INTEGER NOT NULL,
    recv_ms      BIGINT NOT NULL,           -- when the collector received the reference message
    uptime_ms    BIGINT NOT NULL,           -- the box's uptime in it
    PRIMARY KEY (device_id, boot)
);
""",
    )
)


# Officer-month checks (collector/report/officer_stats.py): the flags found for
# a month, recorded by ``evalbox flags check`` (kept as found; a later run
# replaces the month's flags), and a supervisor's review of an officer-month
# (复核: confirmed or explained, with a note, who and when). A flagged month
# that is not explained is left out of the officer's own history.
MIGRATIONS.append(
    (
        "0010_officer_flags",
        """
CREATE TABLE officer_flags (
    officer_id   TEXT NOT NULL,
    month        TEXT NOT NULL,
    rule         TEXT NOT NULL,
    unit_id      TEXT NOT NULL,
    detail       TEXT NOT NULL,             -- JSON: p, q, explain_zh, explain_en
    detected_ms  BIGINT NOT NULL,
    PRIMARY KEY (officer_id, month, rule)
);
CREATE TABLE officer_flag_reviews (
    officer_id   TEXT NOT NULL,
    month        TEXT NOT NULL,
    decision     TEXT NOT NULL,             -- confirmed | explained
    note         TEXT NOT NULL,
    reviewed_by  TEXT NOT NULL,
    reviewed_ms  BIGINT NOT NULL,
    PRIMARY KEY (officer_id, month)
);
""",
    )
)


# The audit trail (collector/store/audit.py): every change that decides appraisals, hash-chained (each entry
# carries the SHA-256 of the one before); ``audit_head`` is the chain's last entry, the row concurrent writers
# lock to append one after the other. ``month_digests``: a closed month's seal (its events' and its close's
# SHA-256, and the month's digest over both, which the report prints), also recorded in the chain.
MIGRATIONS.append(
    (
        "0011_audit_log",
        """
CREATE TABLE audit_log (
    seq          BIGINT PRIMARY KEY,        -- 1, 2, 3 ... the entry's place in the chain
    at_ms        BIGINT NOT NULL,
    actor        TEXT NOT NULL,             -- a login, an OS user, system, token:NAME
    action       TEXT NOT NULL,             -- month.close, case.visit, policy.in_force ...
    subject      TEXT NOT NULL,             -- kind:id, e.g. case:12, month:2026-09
    before_json  TEXT,                      -- canonical JSON, no personal data
    after_json   TEXT,
    prev_hash    TEXT NOT NULL,             -- the previous entry's hash (64 zeros for the first)
    hash         TEXT NOT NULL              -- SHA-256 of this entry's canonical JSON with prev_hash
);
CREATE INDEX audit_log_subject ON audit_log (subject, seq);
CREATE INDEX events_month_identity ON events (month, device_id, boot, seq, press_ms);  -- a month's digest, in order
CREATE TABLE audit_head (
    chain        TEXT PRIMARY KEY,
    seq          BIGINT NOT NULL,
    hash         TEXT NOT NULL
);
INSERT INTO audit_head (chain, seq, hash)
    VALUES ('audit', 0, '0000000000000000000000000000000000000000000000000000000000000000');
CREATE TABLE month_digests (
    month          TEXT PRIMARY KEY,
    timezone       TEXT NOT NULL,           -- the zone the month's events were selected in
    events         BIGINT NOT NULL,
    events_sha256  TEXT NOT NULL,
    close_sha256   TEXT NOT NULL,
    digest         TEXT NOT NULL,
    sealed_ms      BIGINT NOT NULL
);
""",
    )
)


# Retention (collector/report/retention.py): a month whose raw events were pruned keeps its rollups, digest
# and audit chain; ``rollups_sha256`` seals the rollups its report is then made of, ``officer_checks`` keeps
# the officer-month checks that were computed from its raw events.
MIGRATIONS.append(
    (
        "0012_retention",
        """
ALTER TABLE month_digests ADD COLUMN pruned_ms BIGINT;
ALTER TABLE month_digests ADD COLUMN rollups_sha256 TEXT;
ALTER TABLE month_digests ADD COLUMN officer_checks TEXT;   -- JSON: the month's officer checks, taken at pruning
""",
    )
)


# API tokens for integrations (``evalbox token add``; collector/web/tokens.py): a
# token is ``evb_<id>_<secret>``; the store keeps the public id and the SHA-256
# of the whole token, never the secret. One scope per token, optionally limited
# to a unit and the units under it. ``last_used_ms``/``uses`` say when and how
# often it was used; ``rate_window_ms``/``rate_n`` are the per-token rate
# limit's current window and its count (shared by every collector on a store).
MIGRATIONS.append(
    (
        "0013_api_tokens",
        """
CREATE TABLE api_tokens (
    id             TEXT PRIMARY KEY,          -- public part of the token (evb_<id>_…)
    name           TEXT NOT NULL UNIQUE,
    token_hash     TEXT NOT NULL,             -- sha256 hex of the whole token
    scope          TEXT NOT NULL,             -- read:reports | read:devices | write:box-commands
    unit_id        TEXT,                      -- NULL: every unit
    created_ms     BIGINT NOT NULL,
    created_by     TEXT NOT NULL,
    expires_ms     BIGINT,                    -- NULL: never
    revoked_ms     BIGINT,
    revoked_by     TEXT,
    last_used_ms   BIGINT,
    uses           BIGINT NOT NULL DEFAULT 0,
    limited        BIGINT NOT NULL DEFAULT 0, -- requests refused by the rate limit
    rate_window_ms BIGINT NOT NULL DEFAULT 0,
    rate_n         INTEGER NOT NULL DEFAULT 0
);
""",
    )
)


# The provincial 好差评 feed (collector/feed): one row per rating queued for the
# configured endpoint, with its delivery state, like ``alert_deliveries``. A
# rating is queued once (primary key) and marked delivered once the endpoint
# acknowledged the batch holding it; ``next_ms`` is its next attempt (backoff
# after a failure); ``lease_ms``: a pusher holds it until then (two pushers
# never send the same rating at once).
MIGRATIONS.append(
    (
        "0014_feed_ledger",
        """
CREATE TABLE feed_ledger (
    device_id     TEXT NOT NULL,
    boot          INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    press_ms      BIGINT NOT NULL,
    queued_ms     BIGINT NOT NULL,
    state         TEXT NOT NULL DEFAULT 'pending', -- pending | delivered
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_ms       BIGINT NOT NULL,
    lease_ms      BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    delivered_ms  BIGINT,
    PRIMARY KEY (device_id, boot, seq)
);
CREATE INDEX feed_ledger_due ON feed_ledger (state, next_ms);
""",
    )
)


# Staged firmware rollouts (collector/fleet/rollout.py): a rollout of one signed release to the boxes
# of a unit (or all), a canary share first; each box's place in it (phase, state, the box's reason when
# it refused or rolled back); and each box's firmware as it last reported it (version, slot, trial,
# last update error) for `evalbox fleet status` and the devices page.
MIGRATIONS.append(
    (
        "0015_fleet_updates",
        """
CREATE TABLE fw_rollouts (
    id           INTEGER PRIMARY KEY,
    release_id   TEXT NOT NULL,              -- the first 16 hex digits of the release's SHA-256
    release_path TEXT NOT NULL,
    version      TEXT NOT NULL,
    board        TEXT NOT NULL,
    unit_id      TEXT,                       -- null: every box
    canary_pct   INTEGER NOT NULL,
    max_failed_pct INTEGER NOT NULL,         -- the canary halts the rollout above this share of failures
    state        TEXT NOT NULL,              -- canary | canary_done | rest | done | halted
    why          TEXT,
    created_ms   BIGINT NOT NULL,
    updated_ms   BIGINT NOT NULL
);
CREATE TABLE fw_rollout_boxes (
    rollout_id   INTEGER NOT NULL REFERENCES fw_rollouts(id),
    device_id    TEXT NOT NULL,
    phase        TEXT NOT NULL,              -- canary | rest
    state        TEXT NOT NULL,              -- pending | ok | refused | rolled_back | timeout
    why          TEXT,
    seconds      INTEGER,
    updated_ms   BIGINT,
    PRIMARY KEY (rollout_id, device_id)
);
CREATE TABLE fw_box_state (
    device_id    TEXT PRIMARY KEY,
    version      TEXT,                       -- null: the base (USB) install
    slot         TEXT NOT NULL,              -- a | b | usb
    trial        INTEGER NOT NULL,
    state        TEXT NOT NULL,              -- the box's fws state
    received     BIGINT NOT NULL DEFAULT 0,  -- bytes of the release being received it has
    size         BIGINT NOT NULL DEFAULT 0,  -- that release's size
    why          TEXT,                       -- the box's last update error
    updated_ms   BIGINT NOT NULL
);
""",
    )
)


# Applied in the order of their numbers, whatever order the blocks above were written in.
MIGRATIONS.sort(key=lambda m: m[0])
