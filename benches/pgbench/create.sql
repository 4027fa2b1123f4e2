-- CreateInvite's plain transaction: the invite row and its outbox row, as the
-- service writes them (same tables, same indexes, a 235-byte event body).
-- A colon in a quoted literal would read as a pgbench variable: chr(58).
\set n random(1, 140737488355327)
BEGIN;
INSERT INTO invites (id, target_type, target_id, inviter_id, invitee_email, invitee_key,
    allowed_email_domains, role, status, expires_at, max_uses, use_count, passcode_failures,
    token_hash, created_at, updated_at, version, last_sequence)
VALUES (('00000000-0000-7000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid, 'organization',
    'pgbench', 'alice', 'u' || :n::bigint || '@example.org', 'email' || chr(58) || 'u' || :n::bigint || '@example.org', '[]',
    'member', 'pending', now() + interval '7 days', 1, 0, 0, 'create-' || :n::bigint, now(), now(), 1, 1);
INSERT INTO invite_events (id, invite_id, sequence, event_type, actor_id, occurred_at, payload)
VALUES (gen_random_uuid(), ('00000000-0000-7000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid, 1,
    'created', 'alice', now(), decode(repeat('ab', 235), 'hex'));
COMMIT;
