-- tools/seed-demo.sql: the demo data `tools/dev run` puts into a development
-- database after migrating it: a coach and a client (with a profile), a
-- session token for each, and an appointment between them starting now.
--
-- Run with psql --single-transaction; idempotent (fixed ids, ON CONFLICT).
-- Values from the caller come only as psql variables (-v), quoted with :'x':
--   coach_token, client_token          the tokens of the last run ('' if none)
--   new_coach_token, new_client_token  fresh tokens, used when the old ones
--                                      are missing, inactive or expire within a day
--   new_appt_id, new_room_id           used when the latest demo appointment
--                                      cannot be reused
-- Prints one line: coach_token|client_token|room_id
--
-- Needs the gateway's migrations ("User"."skoolUserId").

\set ON_ERROR_STOP on
\set QUIET on
\pset format unaligned
\pset tuples_only on
\pset fieldsep '|'

-- Prisma keeps UTC in its TIMESTAMP(3) columns; now() is converted in the
-- session's time zone.
SET TIME ZONE 'UTC';

-- Two runs at once take turns.
SELECT pg_advisory_xact_lock(hashtext('coach-gateway:seed-demo')) AS seed_lock \gset

INSERT INTO "User" ("id", "email", "displayName", "role", "skoolUserId", "updatedAt")
VALUES ('cdemocoach000000000000000', 'coach@demo.local', 'Dana Coach', 'coach', 'demo-coach', now()),
       ('cdemoclient00000000000000', 'client@demo.local', 'Sam Client', 'client', 'demo-client', now())
ON CONFLICT ("id") DO UPDATE
    SET "email" = EXCLUDED."email",
        "displayName" = EXCLUDED."displayName",
        "role" = EXCLUDED."role",
        "skoolUserId" = EXCLUDED."skoolUserId",
        "updatedAt" = EXCLUDED."updatedAt";

INSERT INTO "Profile" ("id", "userId", "clientFacts", "challenges")
VALUES ('cdemoprofile0000000000000', 'cdemoclient00000000000000',
        ARRAY['Works night shifts as a nurse', 'Took up running this spring'],
        ARRAY['Sleeping after late shifts', 'Keeping a steady routine on days off'])
ON CONFLICT ("userId") DO UPDATE
    SET "clientFacts" = EXCLUDED."clientFacts",
        "challenges" = EXCLUDED."challenges";

-- The (spent) codes the demo sessions were "redeemed" with.
INSERT INTO "AuthCode" ("id", "code", "skoolUserId", "skoolUsername", "generatedAt",
                        "expiresAt", "usedAt", "usedIpAddress", "userAgent",
                        "deviceFingerprint", "isActive")
VALUES ('cdemoauthcoach00000000000', 'DEMO-COACH', 'demo-coach', 'dana-coach', now(),
        now() + interval '30 days', now(), '127.0.0.1', 'tools/dev', 'dev', false),
       ('cdemoauthclient0000000000', 'DEMO-CLIENT', 'demo-client', 'sam-client', now(),
        now() + interval '30 days', now(), '127.0.0.1', 'tools/dev', 'dev', false)
ON CONFLICT ("id") DO UPDATE
    SET "expiresAt" = EXCLUDED."expiresAt";

-- A session keeps its token while it is active, the caller still knows it
-- and it has more than a day left; otherwise it gets the new token.
INSERT INTO "UserSession" ("id", "sessionId", "skoolUserId", "skoolUsername", "authCodeUsed",
                           "createdAt", "expiresAt", "lastActive", "ipAddress", "userAgent",
                           "deviceFingerprint", "isActive")
VALUES ('cdemosesscoach00000000000', :'new_coach_token', 'demo-coach', 'dana-coach',
        'DEMO-COACH', now(), now() + interval '30 days', now(), '127.0.0.1', 'tools/dev',
        'dev', true),
       ('cdemosessclient0000000000', :'new_client_token', 'demo-client', 'sam-client',
        'DEMO-CLIENT', now(), now() + interval '30 days', now(), '127.0.0.1', 'tools/dev',
        'dev', true)
ON CONFLICT ("id") DO UPDATE
    SET "sessionId" = EXCLUDED."sessionId",
        "skoolUserId" = EXCLUDED."skoolUserId",
        "skoolUsername" = EXCLUDED."skoolUsername",
        "authCodeUsed" = EXCLUDED."authCodeUsed",
        "createdAt" = EXCLUDED."createdAt",
        "expiresAt" = EXCLUDED."expiresAt",
        "lastActive" = EXCLUDED."lastActive",
        "ipAddress" = EXCLUDED."ipAddress",
        "userAgent" = EXCLUDED."userAgent",
        "deviceFingerprint" = EXCLUDED."deviceFingerprint",
        "isActive" = true
    WHERE NOT ("UserSession"."isActive"
               AND "UserSession"."expiresAt" > now() + interval '1 day'
               AND "UserSession"."sessionId" =
                   CASE "UserSession"."id"
                       WHEN 'cdemosesscoach00000000000' THEN :'coach_token'
                       ELSE :'client_token'
                   END);

-- Reuse the latest demo appointment while it is open and started less than
-- 20 minutes ago; otherwise make a new one, starting now.
WITH latest AS (
    SELECT "roomId", "status", "scheduledFor"
    FROM "Appointment"
    WHERE "coachId" = 'cdemocoach000000000000000'
      AND "clientId" = 'cdemoclient00000000000000'
      AND "roomId" LIKE 'demo-%'
    ORDER BY "scheduledFor" DESC, "createdAt" DESC
    LIMIT 1
), reused AS (
    SELECT "roomId" FROM latest
    WHERE "status" NOT IN ('completed', 'cancelled')
      AND "scheduledFor" <= now()
      AND "scheduledFor" > now() - interval '20 minutes'
), created AS (
    INSERT INTO "Appointment" ("id", "scheduledFor", "durationMin", "clientId", "coachId",
                               "roomId", "status")
    SELECT :'new_appt_id', now(), 20, 'cdemoclient00000000000000', 'cdemocoach000000000000000',
           :'new_room_id', 'scheduled'
    WHERE NOT EXISTS (SELECT 1 FROM reused)
    RETURNING "roomId"
)
SELECT "roomId" AS room_id FROM reused
UNION ALL
SELECT "roomId" FROM created \gset

SELECT c."sessionId", s."sessionId", :'room_id'
FROM "UserSession" c, "UserSession" s
WHERE c."id" = 'cdemosesscoach00000000000'
  AND s."id" = 'cdemosessclient0000000000';
