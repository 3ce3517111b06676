-- 006: one wake-up per job, completion told to its waiter only, and durable commits that
-- do not queue behind each other.
--
-- Why (measured with PostgreSQL 15, bench/run section 3): every committing transaction that
-- sent a NOTIFY signals every LISTENing backend of the database, whatever the channel (the
-- server keeps no channel -> listener map before version 19), and holds a cluster-wide lock
-- from its NOTIFY until the end of its commit, WAL flush included, so notifying durable
-- commits never share a flush. A per-key advisory lock held through a flushed commit does
-- the same to one key's submits. Hence:
--
-- * A worker host has one listening connection (its main process, which hands jobs to its
--   slots) and a FastCGI host one (its supervisor, which hands each answer to the process
--   waiting for it): two listeners per pair of hosts instead of one per slot and per
--   FastCGI process.
-- * jobs.waiter names that waiting process: "<channel> <tag>" (the FastCGI host's channel,
--   the process's tag; a comma-separated list when a retried sync request waits too); NULL
--   when nobody waits (POST /execute/async). A finished job is told on that channel only,
--   payload "<tag> <job id>" (corral_notify_done). The broadcast channel corral_done is gone.
-- * corral_enqueue (a procedure: takes the rate-limit token and submits in one round trip)
--   commits the token, then the job, then its NOTIFY, each without waiting for the disk,
--   so the key's bucket row, its concurrency lock and the NOTIFY lock are held for
--   microseconds and never one while waiting for another, then makes those commits durable
--   with a last, synchronous transaction that writes one WAL record (a row lock) and waits
--   for the flush: it returns only once the job is on disk, and concurrent submits share
--   flushes.
-- * corral_finish (a procedure) commits a result synchronously first, without a NOTIFY,
--   then tells the waiter in a second transaction that writes no WAL.
-- * corral_claim_batch claims up to one job per idle slot in one statement.
-- * corral_take writes its bucket row once instead of twice.

ALTER TABLE jobs ADD COLUMN waiter text;

-- Claim statements a worker ran and jobs they returned (written with each heartbeat):
-- claimed / claims near 1 means no wasted wake-ups.
ALTER TABLE workers ADD COLUMN claims bigint NOT NULL DEFAULT 0,
                    ADD COLUMN claimed bigint NOT NULL DEFAULT 0;

CREATE OR REPLACE VIEW worker_status AS
SELECT id, host, pid, slots, busy, cgroup, started_at, heartbeat_at,
       round(extract(epoch FROM now() - heartbeat_at)) AS heartbeat_age_s,
       stopped_at IS NULL AND heartbeat_at > now() - interval '15 seconds' AS alive,
       claims, claimed
  FROM workers ORDER BY heartbeat_at DESC;

-- corral_take (sql/005) in one statement instead of an upsert and an update: the refill,
-- the decision and the decrement in one row write. key_buckets.last_allowed carries the
-- decision out of that write (RETURNING sees only the new row).
ALTER TABLE key_buckets ADD COLUMN last_allowed boolean NOT NULL DEFAULT true;

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
    INSERT INTO key_buckets AS b (key_id, tokens, updated_at, last_allowed)
        VALUES (p_key, cap - 1, now_t, true)
        ON CONFLICT (key_id) DO UPDATE
        SET tokens = CASE
                WHEN least(cap, b.tokens + greatest(extract(epoch FROM now_t - b.updated_at), 0) * per_s) >= 1
                THEN least(cap, b.tokens + greatest(extract(epoch FROM now_t - b.updated_at), 0) * per_s) - 1
                ELSE least(cap, b.tokens + greatest(extract(epoch FROM now_t - b.updated_at), 0) * per_s) END,
            last_allowed =
                least(cap, b.tokens + greatest(extract(epoch FROM now_t - b.updated_at), 0) * per_s) >= 1,
            updated_at = now_t
        RETURNING b.tokens, b.last_allowed INTO t, allowed;
    retry_after := CASE WHEN allowed THEN 0 ELSE greatest(ceil((1 - t) / per_s), 1)::integer END;
    remaining := floor(t)::integer;
    reset_at := (extract(epoch FROM now_t) + ceil((cap - t) / per_s))::bigint;
END $$;

-- Tells the processes waiting for a job (jobs.waiter: "<channel> <tag>", several separated
-- by commas when a sync request was retried while its job ran) that it finished.
CREATE FUNCTION corral_notify_done(p_waiter text, p_job uuid) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify(split_part(w, ' ', 1), split_part(w, ' ', 2) || ' ' || p_job::text)
      FROM unnest(string_to_array(p_waiter, ',')) w
     WHERE w <> ''
$$;

-- Takes a rate-limit token and enqueues one job, once per signature; see the top of this
-- file for its transactions. allowed = false: no token, no job. refused: the key's
-- concurrency limit. replayed: the signature was seen before and job_id is that job's (NULL
-- when it no longer exists). p_waiter: jobs.waiter, NULL for nobody. CALL it outside any
-- transaction block (it commits). A replay of a sync request still going adds p_waiter to
-- the job's waiters (at most 16; a waiter not told finds out by looking at the job).
CREATE PROCEDURE corral_enqueue(p_key bigint, p_rate integer, p_burst integer, p_sig text,
                                p_dialect text, p_language text, p_request jsonb,
                                p_max_attempts integer, p_concurrency integer, p_waiter text,
                                INOUT allowed boolean DEFAULT NULL,
                                INOUT remaining integer DEFAULT NULL,
                                INOUT reset_at bigint DEFAULT NULL,
                                INOUT retry_after integer DEFAULT NULL,
                                INOUT job_id uuid DEFAULT NULL,
                                INOUT replayed boolean DEFAULT NULL,
                                INOUT refused boolean DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid := gen_random_uuid();
    v_other uuid;
BEGIN
    replayed := false;
    refused := false;
    -- Transaction 0, not flushed (corral_take sets synchronous_commit = off): the token.
    -- Committed at once, so the key's bucket row is locked for microseconds only.
    SELECT t.allowed, t.remaining, t.reset_at, t.retry_after
      INTO allowed, remaining, reset_at, retry_after
      FROM corral_take(p_key, p_rate, p_burst) t;
    IF NOT allowed THEN
        RETURN;
    END IF;
    COMMIT;
    -- Transaction 1, not flushed: the job.
    PERFORM set_config('synchronous_commit', 'off', true);
    IF p_sig IS NOT NULL THEN
        SELECT s.job_id INTO v_other FROM seen_requests s
         WHERE s.key_id = p_key AND s.signature = p_sig;
        IF FOUND THEN
            replayed := true;
        END IF;
    END IF;
    IF NOT replayed AND p_concurrency > 0 AND p_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(7261, p_key::integer);   -- one count-then-insert per key at a time
        IF (SELECT count(*) FROM (SELECT 1 FROM jobs j
                                    WHERE j.key_id = p_key AND j.status IN ('pending', 'running')
                                    LIMIT p_concurrency) active) >= p_concurrency THEN
            refused := true;
            RETURN;
        END IF;
    END IF;
    IF NOT replayed THEN
        INSERT INTO jobs (id, key_id, dialect, language, request, max_attempts, waiter)
            VALUES (v_id, p_key, p_dialect, p_language, p_request, p_max_attempts, p_waiter);
        IF p_sig IS NOT NULL THEN
            INSERT INTO seen_requests (key_id, signature, job_id) VALUES (p_key, p_sig, v_id)
                ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN      -- the same request, committed since we looked: it wins
                DELETE FROM jobs j WHERE j.id = v_id;
                SELECT s.job_id INTO v_other FROM seen_requests s
                 WHERE s.key_id = p_key AND s.signature = p_sig;
                replayed := true;
            END IF;
        END IF;
    END IF;
    COMMIT;    -- releases the key's lock without waiting for the NOTIFY lock below
    IF replayed THEN
        v_id := v_other;
        IF p_waiter IS NOT NULL THEN       -- a retry of a sync request: tell this one too
            UPDATE jobs j SET waiter = CASE WHEN coalesce(j.waiter, '') = '' THEN p_waiter
                                            ELSE j.waiter || ',' || p_waiter END
             WHERE j.id = v_id AND j.status IN ('pending', 'running')
               AND NOT p_waiter = ANY (string_to_array(coalesce(j.waiter, ''), ','))
               AND cardinality(string_to_array(coalesce(j.waiter, ''), ',')) < 16;
        END IF;
    ELSE
        PERFORM pg_notify('corral_jobs', '');
        COMMIT;    -- writes no WAL of its own: nothing to wait for
    END IF;
    -- Transaction 2, synchronous: a row lock is one WAL record, so this commit waits for
    -- the flush, which covers transactions 0 and 1 (and, for a replay, the first request's).
    PERFORM 1 FROM jobs j WHERE j.id = v_id FOR KEY SHARE;
    job_id := v_id;
END $$;

-- Claims up to one pending job per slot id in p_slots, oldest first, with a lease; the
-- k-th job goes to p_slots[k] (its worker_id). more: other jobs were pending besides
-- these (the caller claims again when a slot is free, without waiting for a NOTIFY). Not
-- flushed (a crash re-runs the job).
CREATE FUNCTION corral_claim_batch(p_slots text[], p_lease_s integer)
RETURNS TABLE (job_id uuid, attempt integer, request jsonb, worker_id text, more boolean)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
    WITH next AS (
        SELECT n.id, row_number() OVER () AS k FROM (
            SELECT j.id FROM jobs j
             WHERE j.status = 'pending'
             ORDER BY j.created_at
             LIMIT cardinality(p_slots)
             FOR NO KEY UPDATE SKIP LOCKED) n
    ), pending AS (      -- the statement's snapshot: the jobs claimed here still count
        SELECT count(*) > cardinality(p_slots) AS more
          FROM (SELECT 1 FROM jobs j WHERE j.status = 'pending' LIMIT cardinality(p_slots) + 1) p
    )
    UPDATE jobs j
       SET status = 'running', attempt = j.attempt + 1, worker_id = p_slots[next.k],
           lease_until = clock_timestamp() + make_interval(secs => p_lease_s),
           started_at = clock_timestamp()
      FROM next, pending
     WHERE j.id = next.id
    RETURNING j.id, j.attempt, j.request, j.worker_id, pending.more;
END $$;

-- corral_claim (one job for one slot), kept for other callers; its row lock no longer
-- conflicts with corral_enqueue's key-share lock, so no fresh job is skipped.
CREATE OR REPLACE FUNCTION corral_claim(p_worker text, p_lease_s integer)
RETURNS TABLE (job_id uuid, attempt integer, request jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT c.job_id, c.attempt, c.request FROM corral_claim_batch(ARRAY[p_worker], p_lease_s) c;
END $$;

-- Records a result (fenced by worker and attempt) and returns the job's waiter, in the
-- caller's transaction. recorded = false: the lease was lost, nothing written.
CREATE FUNCTION corral_record(p_job uuid, p_worker text, p_attempt integer, p_status text,
                              p_result jsonb, OUT recorded boolean, OUT waiter text)
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    UPDATE jobs j SET status = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE p_status END,
                      completed_at = clock_timestamp(), lease_until = NULL
     WHERE j.id = p_job AND j.worker_id = p_worker AND j.attempt = p_attempt AND j.status = 'running'
    RETURNING j.status, j.waiter INTO v_status, waiter;
    recorded := v_status IS NOT NULL;
    IF NOT recorded THEN
        RETURN;
    END IF;
    INSERT INTO results (job_id, status, stdout, stderr, compile_output, exit_code, exit_signal,
                         wall_ms, cpu_ms, memory_kb, stdout_truncated, stderr_truncated,
                         stdout_dropped, stderr_dropped, error, worker_id, attempt, timings,
                         artifacts, artifacts_note)
    VALUES (p_job, v_status, coalesce(p_result->>'stdout', ''), coalesce(p_result->>'stderr', ''),
            coalesce(p_result->>'compile_output', ''), (p_result->>'exit_code')::integer,
            (p_result->>'exit_signal')::integer, (p_result->>'wall_ms')::double precision,
            (p_result->>'cpu_ms')::double precision, (p_result->>'memory_kb')::bigint,
            coalesce((p_result->>'stdout_truncated')::boolean, false),
            coalesce((p_result->>'stderr_truncated')::boolean, false),
            coalesce((p_result->>'stdout_dropped')::bigint, 0),
            coalesce((p_result->>'stderr_dropped')::bigint, 0),
            p_result->>'error', p_worker, p_attempt, coalesce(p_result->'timings', '{}'),
            CASE WHEN jsonb_typeof(p_result->'artifacts') = 'array' THEN p_result->'artifacts'
                 ELSE '[]' END,
            p_result->>'artifacts_note')
    ON CONFLICT (job_id) DO NOTHING;
END $$;

-- Records a result durably (synchronous commit, no NOTIFY in it), then tells the waiter in
-- a transaction of its own that writes no WAL. recorded = false: fenced out (lease lost).
-- CALL it outside any transaction block (it commits).
CREATE PROCEDURE corral_finish(p_job uuid, p_worker text, p_attempt integer, p_status text,
                               p_result jsonb, INOUT recorded boolean DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    v_waiter text;
BEGIN
    SELECT r.recorded, r.waiter INTO recorded, v_waiter
      FROM corral_record(p_job, p_worker, p_attempt, p_status, p_result) r;
    IF NOT recorded THEN
        RETURN;
    END IF;
    COMMIT;
    PERFORM corral_notify_done(v_waiter, p_job);
END $$;

-- corral_complete, kept for callers inside a transaction: one transaction, the waiter told
-- at its commit.
CREATE OR REPLACE FUNCTION corral_complete(p_job uuid, p_worker text, p_attempt integer, p_status text,
                                           p_result jsonb)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM corral_record(p_job, p_worker, p_attempt, p_status, p_result);
    IF r.recorded THEN
        PERFORM corral_notify_done(r.waiter, p_job);
    END IF;
    RETURN r.recorded;
END $$;

-- corral_reap: as in 001, but a job failed for lost leases is told to its waiter only.
CREATE OR REPLACE FUNCTION corral_reap(p_window_s integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    r record;
BEGIN
    UPDATE jobs SET status = 'pending', worker_id = NULL, lease_until = NULL
     WHERE status = 'running' AND lease_until < clock_timestamp() AND attempt < max_attempts
       AND NOT cancel_requested;
    GET DIAGNOSTICS n = ROW_COUNT;
    FOR r IN UPDATE jobs SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'internal_error' END,
                             completed_at = clock_timestamp(), lease_until = NULL
              WHERE status = 'running' AND lease_until < clock_timestamp()
             RETURNING id, status, attempt, worker_id, waiter
    LOOP
        INSERT INTO results (job_id, status, error, worker_id, attempt, exit_code)
        VALUES (r.id, r.status,
                CASE WHEN r.status = 'cancelled' THEN 'cancelled'
                     ELSE format('the job lost its worker %s times (lease expired)', r.attempt) END,
                r.worker_id, r.attempt, -1)
        ON CONFLICT (job_id) DO NOTHING;
        PERFORM corral_notify_done(r.waiter, r.id);
    END LOOP;
    IF n > 0 THEN
        PERFORM pg_notify('corral_jobs', '');
    END IF;
    DELETE FROM seen_requests WHERE seen_at < now() - make_interval(secs => 2 * p_window_s);
    RETURN n;
END $$;
