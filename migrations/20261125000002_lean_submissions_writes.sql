-- Cheaper batch inserts: every index on `submissions` is paid for by every row a
-- worker writes. submissions_project_received_idx served no query (results are
-- read by primary key and checked against the project), so it only cost writes.
-- A listing by project and time can bring it back when one is built.
DROP INDEX submissions_project_received_idx;
