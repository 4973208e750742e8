-- coach:no-transaction
-- 001: "User"."skoolUserId", the Skool member id of a user, nullable and
-- unique. schema.prisma: `skoolUserId String? @unique` on model User.
--
-- Runs outside a transaction so the unique index can be built CONCURRENTLY
-- on the application's live table. Every statement is idempotent; the
-- migration is recorded only after all of them succeeded. Statements end
-- with ';' at the end of a line and contain no other ';'.

ALTER TABLE "User" ADD COLUMN IF NOT EXISTS "skoolUserId" TEXT;

CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "User_skoolUserId_key" ON "User"("skoolUserId");
