WITH typed AS (
  SELECT
    CAST(trim(order_id) AS bigint) AS order_id,
    CAST(trim(customer_id) AS bigint) AS customer_id,
    CASE
      WHEN order_date ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}' THEN CAST(order_date AS timestamp)
      WHEN order_date ~ '^[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}$'
        THEN to_timestamp(order_date, 'DD/MM/YYYY HH24:MI')::timestamp
    END AS ordered_at,
    nullif(lower(trim(status)), '') AS status,
    upper(trim(currency)) AS currency,
    trim(shipping_city) AS shipping_city,
    _ingested_at,
    _row_number
  FROM explore.orders
)
SELECT DISTINCT ON (order_id) order_id, customer_id, ordered_at, status, currency, shipping_city
FROM typed
ORDER BY order_id, _ingested_at DESC, _row_number DESC
