-- coach:no-transaction
-- 002: the indexes recommended by the database status report, named the way
-- Prisma names `@@index([...])` ("<Table>_<col>_<col>_idx") so that the
-- application can declare the same indexes in schema.prisma.
--
-- Runs outside a transaction: CREATE INDEX CONCURRENTLY does not block the
-- application's writes. An index left INVALID by an interrupted run is
-- dropped and rebuilt by the migration runner before its CREATE. Statements
-- end with ';' at the end of a line and contain no other ';'.

CREATE INDEX CONCURRENTLY IF NOT EXISTS "User_role_idx" ON "User"("role");
CREATE INDEX CONCURRENTLY IF NOT EXISTS "User_isAvailable_idx" ON "User"("isAvailable");

CREATE INDEX CONCURRENTLY IF NOT EXISTS "Appointment_status_scheduledFor_idx"
    ON "Appointment"("status", "scheduledFor");
CREATE INDEX CONCURRENTLY IF NOT EXISTS "Appointment_coachId_status_idx"
    ON "Appointment"("coachId", "status");
CREATE INDEX CONCURRENTLY IF NOT EXISTS "Appointment_clientId_scheduledFor_idx"
    ON "Appointment"("clientId", "scheduledFor");

CREATE INDEX CONCURRENTLY IF NOT EXISTS "Session_userId_status_idx"
    ON "Session"("userId", "status");
CREATE INDEX CONCURRENTLY IF NOT EXISTS "Session_status_startedAt_idx"
    ON "Session"("status", "startedAt");

CREATE INDEX CONCURRENTLY IF NOT EXISTS "Message_sessionId_createdAt_idx"
    ON "Message"("sessionId", "createdAt");

CREATE INDEX CONCURRENTLY IF NOT EXISTS "Profile_onboardingCompleted_idx"
    ON "Profile"("onboardingCompleted");
