-- 003: the CHECK constraints recommended by the database status report.
-- Prisma cannot express CHECK constraints; see docs/database.md.
--
-- Added NOT VALID: new and updated rows are checked at once, old rows are
-- not scanned (an existing database may hold rows that violate them; see
-- docs/database.md for finding them and VALIDATE CONSTRAINT). ADD CONSTRAINT
-- has no IF NOT EXISTS, so each one is guarded by a look-up in pg_constraint
-- and the migration stays idempotent (the application may have added the
-- same constraint itself). Runs in one transaction.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                   WHERE conrelid = '"SessionRating"'::regclass
                     AND conname = 'SessionRating_rating_check') THEN
        ALTER TABLE "SessionRating" ADD CONSTRAINT "SessionRating_rating_check"
            CHECK ("rating" >= 1 AND "rating" <= 5) NOT VALID;
    END IF;

    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                   WHERE conrelid = '"Appointment"'::regclass
                     AND conname = 'Appointment_durationMin_check') THEN
        ALTER TABLE "Appointment" ADD CONSTRAINT "Appointment_durationMin_check"
            CHECK ("durationMin" > 0) NOT VALID;
    END IF;

    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                   WHERE conrelid = '"Session"'::regclass
                     AND conname = 'Session_durationMinutes_check') THEN
        ALTER TABLE "Session" ADD CONSTRAINT "Session_durationMinutes_check"
            CHECK ("durationMinutes" > 0) NOT VALID;
    END IF;
END
$$;
