-- 013: team invitations get a stable id (to list and revoke them without exposing the token's
-- digest) and a workspace has at most one open invitation per e-mail address: inviting again
-- replaces the link (new token, role and expiry) instead of leaving two live ones.

ALTER TABLE auth_tokens ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid();
CREATE UNIQUE INDEX auth_tokens_id ON auth_tokens (id);
CREATE UNIQUE INDEX auth_tokens_open_invite ON auth_tokens (client_id, email)
    WHERE kind = 'invite' AND used_at IS NULL;
