-- 004: artifacts. The files a job left in /tmp/artifacts (and its compiled binary when it
-- set return_artifact) as [{filename, content_base64, size}], and what was left out.
ALTER TABLE results ADD COLUMN artifacts jsonb NOT NULL DEFAULT '[]',
                    ADD COLUMN artifacts_note text;

-- corral_complete, now storing the result's artifacts and artifacts_note.
CREATE OR REPLACE FUNCTION corral_complete(p_job uuid, p_worker text, p_attempt integer, p_status text,
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
                         stdout_dropped, stderr_dropped, error, worker_id, attempt, timings,
                         artifacts, artifacts_note)
    SELECT p_job, j.status, coalesce(p_result->>'stdout', ''), coalesce(p_result->>'stderr', ''),
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
           p_result->>'artifacts_note'
      FROM jobs j WHERE j.id = p_job
    ON CONFLICT (job_id) DO NOTHING;
    PERFORM pg_notify('corral_done', p_job::text);
    RETURN true;
END $$;
