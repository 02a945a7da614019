-- Compensation is logged as steps of its own (REFUND_PAYMENT, RELEASE_STOCK), added when a saga
-- starts compensating and retried until done (issue 4). Sagas caught compensating by this
-- upgrade get theirs here, undoing whatever they had attempted: both undo by key, so undoing
-- what never happened is harmless.
INSERT INTO saga_steps (order_id, position, name, status)
SELECT o.id, 4, 'REFUND_PAYMENT', 'PENDING'
FROM orders o JOIN saga_steps s ON s.order_id = o.id AND s.name = 'CHARGE_PAYMENT'
WHERE o.saga_state = 'COMPENSATING' AND s.status IN ('RUNNING', 'SUCCEEDED', 'FAILED');

INSERT INTO saga_steps (order_id, position, name, status)
SELECT o.id, (SELECT max(position) + 1 FROM saga_steps m WHERE m.order_id = o.id), 'RELEASE_STOCK', 'PENDING'
FROM orders o JOIN saga_steps s ON s.order_id = o.id AND s.name = 'RESERVE_STOCK'
WHERE o.saga_state = 'COMPENSATING' AND s.status IN ('RUNNING', 'SUCCEEDED', 'FAILED');
