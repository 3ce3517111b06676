-- 001: keys, jobs, results, workers, replay window, and the queue functions.
-- Applied by `corral-admin migrate`, which records it in schema_migrations.

CREATE TABLE api_keys (
    id                bigserial PRIMARY KEY,
    public_key        text NOT NULL UNIQUE,
    secret_hash       bytea NOT NULL UNIQUE,      -- SHA-256 of the secret: finds a key by its secret
    secret_sealed     bytea NOT NULL,             -- AES-256-GCM(master key, secret), nonce || ciphertext || tag
    name              text NOT NULL DEFAULT '',
    tier              text NOT NULL DEFAULT 'standard',
    rate_per_minute   integer NOT NULL DEFAULT 60 CHECK (rate_per_minute > 0),
    burst             integer NOT NULL DEFAULT 10 CHECK (burst >= 0),
    concurrency_limit integer NOT NULL DEFAULT 5 CHECK (concurrency_limit > 0),
    expires_at        timestamptz,
    suspended         boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE jobs (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key_id        bigint REFERENCES api_keys(id) ON DELETE SET NULL,
    dialect       text NOT NULL DEFAULT 'unsandbox',
    language      text NOT NULL,
    request       jsonb NOT NULL,                 -- the normalized job model (job_to_json)
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN
                  ('pending', 'running', 'completed', 'wrong_answer', 'timeout', 'compilation_error',
                   'runtime_error', 'memory_limit', 'output_limit', 'cancelled', 'internal_error')),
    attempt       integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL DEFAULT 3,
    worker_id     text,
    lease_until   timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at    timestamptz,                    -- latest claim
    completed_at  timestamptz
);
CREATE INDEX jobs_pending_idx ON jobs (created_at) WHERE status = 'pending';
CREATE INDEX jobs_running_idx ON jobs (lease_until) WHERE status = 'running';
CREATE INDEX jobs_key_idx ON jobs (key_id, created_at);

CREATE TABLE results (
    job_id          uuid PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    status          text NOT NULL,
    stdout          text NOT NULL DEFAULT '',
    stderr          text NOT NULL DEFAULT '',
    compile_output  text NOT NULL DEFAULT '',
    exit_code       integer,
    exit_signal     integer,
    wall_ms         double precision,
    cpu_ms          double precision,
    memory_kb       bigint,
    stdout_truncated boolean NOT NULL DEFAULT false,
    stderr_truncated boolean NOT NULL DEFAULT false,
    stdout_dropped  bigint NOT NULL DEFAULT 0,
    stderr_dropped  bigint NOT NULL DEFAULT 0,
    error           text,
    worker_id       text,
    attempt         integer,
    timings         jsonb NOT NULL DEFAULT '{}',  -- sandbox setup, compile, run, in ms
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE workers (
    id            text PRIMARY KEY,               -- host:pid
    host          text NOT NULL,
    pid           integer NOT NULL,
    slots         integer NOT NULL,
    busy          integer NOT NULL DEFAULT 0,
    cgroup        text NOT NULL DEFAULT '',
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at    timestamptz
);

-- Signed state-changing requests seen within the timestamp window: a repeat does no new work.
CREATE TABLE seen_requests (
    key_id        bigint NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    signature     text NOT NULL,
    job_id        uuid REFERENCES jobs(id) ON DELETE CASCADE,
    response_status integer,                      -- for requests that made no job
    response_body text,
    seen_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, signature)
);
CREATE INDEX seen_requests_at_idx ON seen_requests (seen_at);

-- Enqueues one job, once per signature (NULL signature: no replay protection).
-- Returns the job id and whether this call was a replay of an earlier one.
CREATE FUNCTION corral_submit(p_key bigint, p_sig text, p_dialect text, p_language text,
                              p_request jsonb, p_max_attempts integer,
                              OUT job_id uuid, OUT replayed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid := gen_random_uuid();
BEGIN
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

-- Claims the oldest pending job for a worker slot with a lease; no row when none is pending.
CREATE FUNCTION corral_claim(p_worker text, p_lease_s integer)
RETURNS TABLE (job_id uuid, attempt integer, request jsonb)
LANGUAGE sql AS $$
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
    RETURNING j.id, j.attempt, j.request
$$;

-- Extends the lease of a job still held by this worker and attempt; returns false when
-- the job was taken away (lease lost) or cancellation was asked for.
CREATE FUNCTION corral_renew(p_job uuid, p_worker text, p_attempt integer, p_lease_s integer)
RETURNS boolean
LANGUAGE sql AS $$
    WITH r AS (
        UPDATE jobs SET lease_until = clock_timestamp() + make_interval(secs => p_lease_s)
         WHERE id = p_job AND worker_id = p_worker AND attempt = p_attempt AND status = 'running'
        RETURNING cancel_requested
    )
    SELECT coalesce((SELECT NOT cancel_requested FROM r), false)
$$;

-- Records a result, fenced by worker and attempt: a worker that lost its lease writes nothing.
CREATE FUNCTION corral_complete(p_job uuid, p_worker text, p_attempt integer, p_status text,
                                p_result jsonb)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE jobs SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE p_status END,
                    completed_at = clock_timestamp(), lease_until = NULL
     WHERE id = p_job AND worker_id = p_worker AND attempt = p_attempt AND status = 'running';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO results (job_id, status, stdout, stderr, compile_output, exit_code, exit_signal,
                         wall_ms, cpu_ms, memory_kb, stdout_truncated, stderr_truncated,
                         stdout_dropped, stderr_dropped, error, worker_id, attempt, timings)
    SELECT p_job, j.status, coalesce(p_result->>'stdout', ''), coalesce(p_result->>'stderr', ''),
           coalesce(p_result->>'compile_output', ''), (p_result->>'exit_code')::integer,
           (p_result->>'exit_signal')::integer, (p_result->>'wall_ms')::double precision,
           (p_result->>'cpu_ms')::double precision, (p_result->>'memory_kb')::bigint,
           coalesce((p_result->>'stdout_truncated')::boolean, false),
           coalesce((p_result->>'stderr_truncated')::boolean, false),
           coalesce((p_result->>'stdout_dropped')::bigint, 0),
           coalesce((p_result->>'stderr_dropped')::bigint, 0),
           p_result->>'error', p_worker, p_attempt, coalesce(p_result->'timings', '{}')
      FROM jobs j WHERE j.id = p_job
    ON CONFLICT (job_id) DO NOTHING;
    PERFORM pg_notify('corral_done', p_job::text);
    RETURN true;
END $$;

-- Puts jobs whose lease expired back in the queue (or fails them after max_attempts),
-- and forgets replay signatures older than the window. Returns how many jobs it requeued.
CREATE FUNCTION corral_reap(p_window_s integer) RETURNS integer
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
             RETURNING id, status, attempt, worker_id
    LOOP
        INSERT INTO results (job_id, status, error, worker_id, attempt, exit_code)
        VALUES (r.id, r.status,
                CASE WHEN r.status = 'cancelled' THEN 'cancelled'
                     ELSE format('the job lost its worker %s times (lease expired)', r.attempt) END,
                r.worker_id, r.attempt, -1)
        ON CONFLICT (job_id) DO NOTHING;
        PERFORM pg_notify('corral_done', r.id::text);
    END LOOP;
    IF n > 0 THEN
        PERFORM pg_notify('corral_jobs', '');
    END IF;
    DELETE FROM seen_requests WHERE seen_at < now() - make_interval(secs => 2 * p_window_s);
    RETURN n;
END $$;

-- Wakes the worker slot running a job whose cancellation was just asked for.
CREATE FUNCTION corral_cancel_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('corral_cancel', NEW.id::text);
    RETURN NEW;
END $$;
CREATE TRIGGER jobs_cancel_notify AFTER UPDATE OF cancel_requested ON jobs
    FOR EACH ROW WHEN (NEW.cancel_requested AND NOT OLD.cancel_requested AND NEW.status = 'running')
    EXECUTE FUNCTION corral_cancel_notify();

-- Gives a job back to the queue when its worker stops gracefully (the claim does not count).
CREATE FUNCTION corral_release(p_job uuid, p_worker text, p_attempt integer) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE jobs SET status = 'pending', worker_id = NULL, lease_until = NULL, attempt = attempt - 1
     WHERE id = p_job AND worker_id = p_worker AND attempt = p_attempt AND status = 'running'
       AND NOT cancel_requested;
    IF FOUND THEN
        PERFORM pg_notify('corral_jobs', '');
    END IF;
    RETURN FOUND;
END $$;

-- Inspection views (documented in the README, "Inspecting jobs with SQL").
CREATE VIEW active_jobs AS
SELECT j.id, k.public_key, j.language, j.status, j.attempt, j.worker_id, j.created_at, j.started_at,
       j.lease_until, round(extract(epoch FROM clock_timestamp() - j.created_at) * 1000) AS age_ms
  FROM jobs j LEFT JOIN api_keys k ON k.id = j.key_id
 WHERE j.status IN ('pending', 'running')
 ORDER BY j.created_at;

CREATE VIEW queue_depth AS
SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'running') AS running,
       coalesce(round(extract(epoch FROM clock_timestamp() - min(created_at) FILTER (WHERE status = 'pending')) * 1000), 0)
           AS oldest_pending_ms
  FROM jobs WHERE status IN ('pending', 'running');

CREATE VIEW recent_jobs AS
SELECT j.id, k.public_key, j.language, j.status, r.exit_code, r.exit_signal, j.attempt, j.worker_id,
       j.created_at,
       round(extract(epoch FROM j.started_at - j.created_at) * 1000, 1) AS queue_ms,
       r.wall_ms, r.cpu_ms, r.memory_kb,
       round(extract(epoch FROM j.completed_at - j.created_at) * 1000, 1) AS total_ms,
       r.stdout_truncated OR r.stderr_truncated AS truncated, r.error
  FROM jobs j LEFT JOIN api_keys k ON k.id = j.key_id LEFT JOIN results r ON r.job_id = j.id
 ORDER BY j.created_at DESC
 LIMIT 100;

CREATE VIEW worker_status AS
SELECT id, host, pid, slots, busy, cgroup, started_at, heartbeat_at,
       round(extract(epoch FROM now() - heartbeat_at)) AS heartbeat_age_s,
       stopped_at IS NULL AND heartbeat_at > now() - interval '15 seconds' AS alive
  FROM workers ORDER BY heartbeat_at DESC;
