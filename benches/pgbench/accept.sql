-- AcceptInvite's plain transaction: lock the invite by its token's hash,
-- record the redemption, update the invite, write the outbox row.
\set n random(1, :seeded)
\set user random(1, 140737488355327)
BEGIN;
SELECT id, status, use_count, max_uses FROM invites WHERE token_hash = 'seed-' || :n::bigint FOR UPDATE;
INSERT INTO invite_redemptions (invite_id, user_id, redeemed_at)
VALUES (('00000000-0000-7000-9000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid, 'u' || :user::bigint, now());
UPDATE invites SET status = 'accepted', use_count = use_count + 1, accepted_by = 'u' || :user::bigint,
    accepted_at = now(), updated_at = now(), version = version + 1, last_sequence = last_sequence + 1
WHERE id = ('00000000-0000-7000-9000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid
RETURNING last_sequence AS sequence \gset
INSERT INTO invite_events (id, invite_id, sequence, event_type, actor_id, occurred_at, payload)
VALUES (gen_random_uuid(), ('00000000-0000-7000-9000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid, :sequence::bigint,
    'accepted', 'u' || :user::bigint, now(), decode(repeat('ab', 235), 'hex'));
COMMIT;
