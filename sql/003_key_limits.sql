-- 003: per-key limits shared by every FastCGI process and host: a token bucket for
-- rate_per_minute/burst, and concurrency_limit checked when a job is submitted.

CREATE TABLE key_buckets (
    key_id      bigint PRIMARY KEY REFERENCES api_keys(id) ON DELETE CASCADE,
    tokens      double precision NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- Takes one token from the key's bucket (capacity max(burst, 1), refilled at
-- rate_per_minute / 60 per second). Returns whether the request may go on, the whole
-- tokens left, the unix time the bucket is full again, and the seconds to wait when refused.
CREATE FUNCTION corral_take(p_key bigint, p_rate integer, p_burst integer,
                            OUT allowed boolean, OUT remaining integer, OUT reset_at bigint,
                            OUT retry_after integer)
LANGUAGE plpgsql AS $$
DECLARE
    cap   double precision := greatest(p_burst, 1);
    per_s double precision := greatest(p_rate, 1) / 60.0;
    now_t timestamptz := clock_timestamp();
    t     double precision;
BEGIN
    INSERT INTO key_buckets AS b (key_id, tokens, updated_at) VALUES (p_key, cap, now_t)
        ON CONFLICT (key_id) DO UPDATE
        SET tokens = least(cap, b.tokens + greatest(extract(epoch FROM now_t - b.updated_at), 0) * per_s),
            updated_at = now_t
        RETURNING tokens INTO t;
    IF t >= 1 THEN
        t := t - 1;
        UPDATE key_buckets SET tokens = t WHERE key_id = p_key;
        allowed := true;
        retry_after := 0;
    ELSE
        allowed := false;
        retry_after := greatest(ceil((1 - t) / per_s), 1)::integer;
    END IF;
    remaining := floor(t)::integer;
    reset_at := (extract(epoch FROM now_t) + ceil((cap - t) / per_s))::bigint;
END $$;

CREATE INDEX jobs_key_active_idx ON jobs (key_id) WHERE status IN ('pending', 'running');

-- corral_submit, now with the key's concurrency limit: a new job is refused (refused = true,
-- no job) while the key already has p_concurrency jobs pending or running. A replay is
-- answered as before, whatever the count. p_concurrency <= 0 means no limit.
DROP FUNCTION corral_submit(bigint, text, text, text, jsonb, integer);
CREATE FUNCTION corral_submit(p_key bigint, p_sig text, p_dialect text, p_language text,
                              p_request jsonb, p_max_attempts integer, p_concurrency integer,
                              OUT job_id uuid, OUT replayed boolean, OUT refused boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid := gen_random_uuid();
BEGIN
    refused := false;
    IF p_sig IS NOT NULL THEN
        SELECT s.job_id INTO job_id FROM seen_requests s
         WHERE s.key_id = p_key AND s.signature = p_sig;
        IF FOUND THEN
            replayed := true;
            RETURN;
        END IF;
    END IF;
    IF p_concurrency > 0 AND p_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(7261, p_key::integer);   -- one count-then-insert per key at a time
        IF (SELECT count(*) FROM jobs j WHERE j.key_id = p_key AND j.status IN ('pending', 'running'))
           >= p_concurrency THEN
            refused := true;
            replayed := false;
            RETURN;
        END IF;
    END IF;
    IF p_sig IS NOT NULL THEN
        INSERT INTO seen_requests (key_id, signature) VALUES (p_key, p_sig)
            ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            SELECT s.job_id INTO job_id FROM seen_requests s
             WHERE s.key_id = p_key AND s.signature = p_sig;
            replayed := true;
            RETURN;
        END IF;
    END IF;
    INSERT INTO jobs (id, key_id, dialect, language, request, max_attempts)
        VALUES (v_id, p_key, p_dialect, p_language, p_request, p_max_attempts);
    IF p_sig IS NOT NULL THEN
        UPDATE seen_requests SET job_id = v_id WHERE key_id = p_key AND signature = p_sig;
    END IF;
    PERFORM pg_notify('corral_jobs', '');
    job_id := v_id;
    replayed := false;
END $$;
