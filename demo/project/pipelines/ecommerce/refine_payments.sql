WITH typed AS (
  SELECT
    CAST(payment_id AS bigint) AS payment_id,
    CAST(order_id AS bigint) AS order_id,
    lower(trim(method)) AS method,
    CAST(amount AS numeric(12, 2)) AS amount,
    CAST(paid_at AS timestamp) AS paid_at,
    card_last4,
    _ingested_at,
    _row_number
  FROM explore.payments
)
SELECT DISTINCT ON (payment_id) payment_id, order_id, method, amount, paid_at, card_last4
FROM typed
ORDER BY payment_id, _ingested_at DESC, _row_number DESC
