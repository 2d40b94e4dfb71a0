-- Cheaper batch inserts, continued: the foreign key from submissions to projects
-- ran a referential-integrity check (an index probe and a row lock on the project)
-- for every row a worker writes, about 4 µs per row on a 2-core machine (500-row
-- INSERT … SELECT batches, with the key ~1.7 s per 200 000 rows, without ~0.9 s).
-- It guarded nothing the service can do: projects are never deleted (a project is
-- retired by disabling it), and a worker writes a row only for the project it has
-- just looked up. project_id stays NOT NULL; results are read by id and project.
ALTER TABLE submissions DROP CONSTRAINT submissions_project_id_fkey;
