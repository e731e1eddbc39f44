-- taskbox schema, version 4: each client's stored bytes, kept by triggers.
--
-- A client's quota of stored bytes is checked before every upload and every batch of one;
-- summing its files there would read every file row it has. `client_usage` keeps the sum,
-- moved by the statements that change a file's size (a file is made with its size, grows
-- by appends, and is deleted whole), so a check reads one row.

CREATE TABLE client_usage (
    client  TEXT    NOT NULL PRIMARY KEY,
    bytes   INTEGER NOT NULL CHECK (bytes >= 0)
) WITHOUT ROWID;

INSERT INTO client_usage (client, bytes)
    SELECT client, sum(size) FROM files GROUP BY client;

CREATE TRIGGER files_usage_on_insert AFTER INSERT ON files WHEN NEW.size > 0 BEGIN
    INSERT INTO client_usage (client, bytes) VALUES (NEW.client, NEW.size)
        ON CONFLICT (client) DO UPDATE SET bytes = bytes + NEW.size;
END;

CREATE TRIGGER files_usage_on_delete AFTER DELETE ON files WHEN OLD.size > 0 BEGIN
    UPDATE client_usage SET bytes = bytes - OLD.size WHERE client = OLD.client;
END;

CREATE TRIGGER files_usage_on_update AFTER UPDATE OF size ON files
    WHEN NEW.size IS NOT OLD.size
BEGIN
    INSERT INTO client_usage (client, bytes) VALUES (NEW.client, NEW.size - OLD.size)
        ON CONFLICT (client) DO UPDATE SET bytes = bytes + NEW.size - OLD.size;
END;
