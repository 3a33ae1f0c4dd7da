-- 029: fewer bytes written per delivery (issue 18). A delivery updates its task twice (claimed,
-- then its outcome) and its event once (the roll-up). With full pages every new row version went
-- to another page: the whole tuple was written to the WAL again (an event's tuple holds its ~1 KiB
-- payload) and the table grew by a second copy of every row. With room left on each page, the new
-- version stays on the page of the old one, where PostgreSQL logs only the bytes that changed (the
-- unchanged prefix, payload included, is taken from the old version) and page pruning reclaims the
-- old version. Only pages written from now on keep the room; existing ones fill as they are.
ALTER TABLE events SET (fillfactor = 50);
ALTER TABLE tasks SET (fillfactor = 70);
