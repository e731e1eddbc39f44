-- taskbox schema, version 3: a task's internal state, and every object owned by a client.
--
-- 1. `tasks.status` held the Web Service Tasks contract's strings. It becomes `state`, the
--    store's own names, with room for the states the scheduler needs: 'scheduled' (waiting
--    for its start time), 'retrying' (waiting after a failed attempt), 'held' (held back by
--    its queue's limit). Each API family maps states to its own words. A column's CHECK
--    cannot change in place, so the table is rebuilt (SQLite's documented procedure, run
--    with foreign keys off: see migrate.rs) and its indexes, triggers and kept counts made
--    anew. AUTOINCREMENT's high-water mark is carried over, so no id is ever reused.
-- 2. Datasets belong to a client: names are unique per client, not globally. Existing
--    datasets go to client 'default', which every request had until now.
-- 3. Files record their client too, so that an upload not yet attached to a task can be
--    used only by the client that sent it.

CREATE TABLE migrate_v3_sequence AS SELECT seq FROM sqlite_sequence WHERE name = 'tasks';

CREATE TABLE tasks_v3 (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids are never reused
    user_id           INTEGER NOT NULL DEFAULT 0,
    user_name         TEXT    NOT NULL DEFAULT '',
    client            TEXT    NOT NULL DEFAULT 'default',
    created_at        TEXT    NOT NULL,                   -- UTC, YYYY-MM-DDTHH:MM:SS
    kind              TEXT    NOT NULL,
    params            TEXT    NOT NULL DEFAULT '{}',      -- JSON object of string values
    io_filename       TEXT    NOT NULL DEFAULT '',
    -- The task's files. No foreign key: a file is only ever deleted with its task (files
    -- cascade from tasks) or when the store replaces the pointer in the same transaction,
    -- and a foreign key here would make every file deletion scan this table.
    io_file_id        INTEGER,
    log_file_id       INTEGER,
    err_file_id       INTEGER,
    percent_complete  INTEGER NOT NULL DEFAULT 0 CHECK (percent_complete BETWEEN 0 AND 100),
    state             TEXT    NOT NULL DEFAULT 'queued'
                      CHECK (state = 'scheduled' OR state = 'queued' OR state = 'held'
                             OR state = 'retrying' OR state = 'running' OR state = 'succeeded'
                             OR state = 'failed' OR state = 'canceled'),
    message           TEXT    NOT NULL DEFAULT '',
    total_records     INTEGER NOT NULL DEFAULT 0 CHECK (total_records >= 0),
    succeeded_records INTEGER NOT NULL DEFAULT 0 CHECK (succeeded_records >= 0),
    duplicate_records INTEGER NOT NULL DEFAULT 0 CHECK (duplicate_records >= 0),
    failed_records    INTEGER NOT NULL DEFAULT 0 CHECK (failed_records >= 0),
    due_at            INTEGER NOT NULL,                   -- unix ms: not claimed before this
    start_time        TEXT,
    end_time          TEXT,
    updated_at        TEXT    NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- The process instance that claimed it: a queued task with an owner is reserved (in
    -- that process's queue, not started); a running task is running there.
    lease_owner       TEXT,
    lease_expires_at  INTEGER,                            -- unix ms
    cancel_requested  INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    -- A running task is leased; only a queued (reserved) or running one is.
    CHECK (state <> 'running' OR lease_owner IS NOT NULL),
    CHECK (state = 'queued' OR state = 'running' OR lease_owner IS NULL),
    -- A task has ended exactly when it has an end time, and then it is complete.
    CHECK ((state = 'succeeded' OR state = 'failed' OR state = 'canceled') = (end_time IS NOT NULL)),
    CHECK (end_time IS NULL OR percent_complete = 100)
);

INSERT INTO tasks_v3 (id, user_id, user_name, client, created_at, kind, params, io_filename,
    io_file_id, log_file_id, err_file_id, percent_complete, state, message, total_records,
    succeeded_records, duplicate_records, failed_records, due_at, start_time, end_time,
    updated_at, attempts, lease_owner, lease_expires_at, cancel_requested)
SELECT id, user_id, user_name, client, created_at, kind, params, io_filename,
    io_file_id, log_file_id, err_file_id, percent_complete,
    CASE status WHEN 'Pending' THEN 'queued' WHEN 'In progress' THEN 'running'
                WHEN 'SUCCESS' THEN 'succeeded' WHEN 'ERROR' THEN 'failed'
                ELSE 'canceled' END,
    message, total_records, succeeded_records, duplicate_records, failed_records, due_at,
    start_time, end_time, updated_at, attempts, lease_owner, lease_expires_at, cancel_requested
FROM tasks;

DROP TABLE tasks;
ALTER TABLE tasks_v3 RENAME TO tasks;

UPDATE sqlite_sequence SET seq = max(seq, (SELECT seq FROM migrate_v3_sequence))
    WHERE name = 'tasks' AND EXISTS (SELECT 1 FROM migrate_v3_sequence);
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'tasks', seq FROM migrate_v3_sequence
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'tasks');
DROP TABLE migrate_v3_sequence;

-- The dispatcher's claim: queued tasks by due time. Partial, so finished tasks cost nothing.
CREATE INDEX tasks_queued_due ON tasks (due_at, id) WHERE state = 'queued' AND lease_owner IS NULL;
-- Recovery and shutdown: the running and reserved tasks.
CREATE INDEX tasks_leased ON tasks (lease_owner) WHERE lease_owner IS NOT NULL;
-- The list query, newest first, with its filters.
CREATE INDEX tasks_client_id ON tasks (client, id);
CREATE INDEX tasks_client_state_id ON tasks (client, state, id);
CREATE INDEX tasks_client_kind_id ON tasks (client, kind, id);
CREATE INDEX tasks_client_user_id ON tasks (client, user_id, id);

-- How many tasks each client has in each state, kept by triggers, so the list's total
-- (X-Total-Count) costs a few rows, not a scan of every task.
DROP TABLE task_counts;
CREATE TABLE task_counts (
    client  TEXT    NOT NULL,
    state   TEXT    NOT NULL,
    n       INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (client, state)
) WITHOUT ROWID;
INSERT INTO task_counts (client, state, n) SELECT client, state, count(*) FROM tasks GROUP BY client, state;

CREATE TRIGGER tasks_counted_on_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO task_counts (client, state, n) VALUES (NEW.client, NEW.state, 1)
        ON CONFLICT (client, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER tasks_counted_on_delete AFTER DELETE ON tasks BEGIN
    UPDATE task_counts SET n = n - 1 WHERE client = OLD.client AND state = OLD.state;
END;

CREATE TRIGGER tasks_counted_on_update AFTER UPDATE OF state, client ON tasks
    WHEN OLD.state IS NOT NEW.state OR OLD.client IS NOT NEW.client
BEGIN
    UPDATE task_counts SET n = n - 1 WHERE client = OLD.client AND state = OLD.state;
    INSERT INTO task_counts (client, state, n) VALUES (NEW.client, NEW.state, 1)
        ON CONFLICT (client, state) DO UPDATE SET n = n + 1;
END;

-- Datasets, owned by a client; a name is unique within its client.
CREATE TABLE datasets_v3 (
    id          INTEGER PRIMARY KEY,
    client      TEXT NOT NULL DEFAULT 'default',
    name        TEXT NOT NULL,                            -- as clients name it, case-sensitive
    columns     TEXT NOT NULL,                            -- JSON array of the header's names
    created_at  TEXT NOT NULL,
    UNIQUE (client, name)
);
INSERT INTO datasets_v3 (id, client, name, columns, created_at)
    SELECT id, 'default', name, columns, created_at FROM datasets;
DROP TABLE datasets;
ALTER TABLE datasets_v3 RENAME TO datasets;

-- A file's client: the task's, or for an upload not yet attached, the sender's.
ALTER TABLE files ADD COLUMN client TEXT NOT NULL DEFAULT 'default';
