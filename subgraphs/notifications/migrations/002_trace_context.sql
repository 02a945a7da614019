-- The W3C trace context of the event that created the notification, so its delivery job (and
-- the email it sends) joins the order's trace across RabbitMQ.
ALTER TABLE notifications ADD COLUMN trace_context jsonb NOT NULL DEFAULT '{}'::jsonb;
