-- Webhooks (docs/api.md "Webhooks"): each project's endpoints, one row per
-- result event to deliver, one delivery per (event, endpoint), and every attempt.
--
-- The dispatcher (kyc-webhooks) writes the event and its deliveries in one
-- transaction and only then acknowledges the AMQP message; attempts are driven
-- from webhook_deliveries (due_at, a lease per claim), so a retry waits here and
-- not in a consumer slot, and a crashed dispatcher's claims expire and are taken
-- again under the same webhook-id.

CREATE TABLE webhook_endpoints (
    id                   uuid        PRIMARY KEY,
    project_id           uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    url                  text        NOT NULL,
    -- Event types delivered ('submission.accepted', …); empty: every type.
    event_types          text[]      NOT NULL DEFAULT '{}',
    enabled              boolean     NOT NULL DEFAULT true,
    -- Why it was disabled (an operator, or the receiver answering 410 Gone).
    disabled_reason      text,
    -- The signing secret (`whsec_…`) sealed with the data key (crates/store/src/pii.rs),
    -- bound to this row and column, and the id of the key that sealed it.
    secret_key_id        text        NOT NULL,
    secret_enc           bytea       NOT NULL,
    -- After a rotation: the previous secret, still signing until it expires.
    previous_key_id      text,
    previous_secret_enc  bytea,
    previous_expires_at  timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_endpoints_project_idx ON webhook_endpoints (project_id);

-- One row per event: the body every endpoint receives, ids and outcome only.
CREATE TABLE webhook_events (
    -- The webhook-id (`msg_<id without hyphens>`), derived from the event itself
    -- so a redelivered AMQP message yields the same row.
    id          uuid        PRIMARY KEY,
    project_id  uuid        NOT NULL,
    type        text        NOT NULL,
    body        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id           uuid        PRIMARY KEY,
    event_id     uuid        NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id  uuid        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    project_id   uuid        NOT NULL,
    status       text        NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'delivered', 'failed')),
    -- Attempts in the current round of the retry schedule (a replay starts a new round).
    attempts     integer     NOT NULL DEFAULT 0,
    due_at       timestamptz NOT NULL DEFAULT now(),
    -- A dispatcher's claim: until then no other dispatcher takes the row.
    lease_until  timestamptz,
    lease_token  uuid,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    UNIQUE (event_id, endpoint_id)
);

CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (due_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_project_idx ON webhook_deliveries (project_id, created_at);
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id);

CREATE TABLE webhook_attempts (
    id             bigserial   PRIMARY KEY,
    delivery_id    uuid        NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at             timestamptz NOT NULL DEFAULT now(),
    -- The HTTP status, or NULL when no response came (timeout, connection error).
    status_code    integer,
    latency_ms     integer     NOT NULL,
    error          text,
    -- The first bytes of the response body only.
    response_body  text
);

CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id);
