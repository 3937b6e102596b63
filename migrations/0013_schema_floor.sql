-- The oldest rollcall that may still write to this schema, so binaries of different versions can share a
-- database during a rolling update or after a rollback. Migrations are additive (expand); a later release
-- may contract (drop or rename what older binaries use), and that migration raises the floor to itself in
-- the same transaction:
--   UPDATE rollcall.schema_floor
--      SET min_writer_schema = GREATEST(min_writer_schema, <N>), min_writer_release = '<x.y.z>',
--          set_by_migration = <N>, updated_at = now();
-- A binary whose newest migration is below min_writer_schema refuses to run (its own exit code); one at or
-- above it runs, with a warning when the schema is newer than it knows.
-- 13: only binaries from this one on read the floor; older ones stop on the migration they do not know.
CREATE TABLE IF NOT EXISTS rollcall.schema_floor (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    min_writer_schema bigint NOT NULL,
    min_writer_release text NOT NULL,
    set_by_migration bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO rollcall.schema_floor (min_writer_schema, min_writer_release, set_by_migration)
VALUES (13, '0.1.0', 13)
ON CONFLICT (singleton) DO NOTHING;

COMMENT ON TABLE rollcall.schema_floor IS
    'One row: the oldest rollcall binary that may still write to this schema. Raised only by a migration that removes or renames something older binaries use.';
COMMENT ON COLUMN rollcall.schema_floor.min_writer_schema IS
    'A binary may run here only if its newest migration is at least this number.';
COMMENT ON COLUMN rollcall.schema_floor.min_writer_release IS
    'The rollcall release that first shipped migration min_writer_schema, for messages.';
COMMENT ON COLUMN rollcall.schema_floor.set_by_migration IS
    'The migration that last set the floor.';
