-- 005: no WAL flush wait for the two statements whose loss in a crash costs nothing a
-- client was promised: a token taken from a rate bucket (a crash refunds it) and a claim
-- (a crash leaves the job pending, and completion is fenced by worker and attempt, so it
-- simply runs again). corral_submit and corral_complete stay flushed: a client told
-- "accepted" or given a result never loses it. set_config(..., true) lasts until the
-- end of the calling transaction, i.e. through its commit.

CREATE OR REPLACE FUNCTION corral_take(p_key bigint, p_rate integer, p_burst integer,
                                       OUT allowed boolean, OUT remaining integer,
                                       OUT reset_at bigint, OUT retry_after integer)
LANGUAGE plpgsql AS $$
DECLARE
    cap   double precision := greatest(p_burst, 1);
    per_s double precision := greatest(p_rate, 1) / 60.0;
    now_t timestamptz := clock_timestamp();
    t     double precision;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
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

CREATE OR REPLACE FUNCTION corral_claim(p_worker text, p_lease_s integer)
RETURNS TABLE (job_id uuid, attempt integer, request jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
    WITH next AS (
        SELECT j.id FROM jobs j
         WHERE j.status = 'pending'
         ORDER BY j.created_at
         LIMIT 1
         FOR UPDATE SKIP LOCKED
    )
    UPDATE jobs j
       SET status = 'running', attempt = j.attempt + 1, worker_id = p_worker,
           lease_until = clock_timestamp() + make_interval(secs => p_lease_s),
           started_at = clock_timestamp()
      FROM next
     WHERE j.id = next.id
    RETURNING j.id, j.attempt, j.request;
END $$;
