-- Before compensation was retried (issue 4), a refund or release that failed once ended the saga
-- FAILED, and nothing resumes a FAILED saga: a cancelled order could keep its customer's money
-- or its stock. Those sagas compensate again, now until done. Whatever their forward steps had
-- attempted and not seen undone is undone again, by key (a no-op for what did go back); only a
-- definitive refusal ends them FAILED again, with the refusal in the step log this time. Their
-- orders are already CANCELLED and announced: the saga does not announce them twice.
UPDATE orders SET saga_state = 'COMPENSATING', saga_owner = NULL, saga_lease_until = NULL
WHERE saga_state = 'FAILED';

INSERT INTO saga_steps (order_id, position, name, status)
SELECT o.id, (SELECT max(position) + 1 FROM saga_steps m WHERE m.order_id = o.id), 'REFUND_PAYMENT', 'PENDING'
FROM orders o JOIN saga_steps s ON s.order_id = o.id AND s.name = 'CHARGE_PAYMENT'
WHERE o.saga_state = 'COMPENSATING' AND s.status IN ('RUNNING', 'SUCCEEDED', 'FAILED')
  AND NOT EXISTS (SELECT 1 FROM saga_steps c WHERE c.order_id = o.id AND c.name = 'REFUND_PAYMENT');

INSERT INTO saga_steps (order_id, position, name, status)
SELECT o.id, (SELECT max(position) + 1 FROM saga_steps m WHERE m.order_id = o.id), 'RELEASE_STOCK', 'PENDING'
FROM orders o JOIN saga_steps s ON s.order_id = o.id AND s.name = 'RESERVE_STOCK'
WHERE o.saga_state = 'COMPENSATING' AND s.status IN ('RUNNING', 'SUCCEEDED', 'FAILED')
  AND NOT EXISTS (SELECT 1 FROM saga_steps c WHERE c.order_id = o.id AND c.name = 'RELEASE_STOCK');
