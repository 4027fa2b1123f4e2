-- Invites for the accept yardstick to lock, one per token hash `seed-N`.
INSERT INTO invites (id, target_type, target_id, inviter_id, invitee_user_id, invitee_key,
    allowed_email_domains, role, status, expires_at, max_uses, use_count, passcode_failures,
    token_hash, created_at, updated_at, version, last_sequence)
SELECT ('00000000-0000-7000-9000-' || lpad(to_hex(n), 12, '0'))::uuid, 'organization',
    'seed-' || n, 'alice', 'bob', 'user:bob', '[]', 'member', 'pending',
    now() + interval '7 days', 1000000, 0, 0, 'seed-' || n, now(), now(), 1, 1
FROM generate_series(1, :seeded) AS n;
