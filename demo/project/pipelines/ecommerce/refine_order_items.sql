WITH typed AS (
  SELECT
    CAST(trim(order_id) AS bigint) AS order_id,
    CAST(trim(line_no) AS integer) AS line_no,
    trim(sku) AS sku,
    trim(product_name) AS product_name,
    CAST(trim(quantity) AS integer) AS quantity,
    CAST(trim(unit_price) AS numeric(12, 2)) AS unit_price,
    _ingested_at,
    _row_number
  FROM explore.order_items
)
SELECT DISTINCT ON (order_id, line_no)
  order_id, line_no, sku, product_name, quantity, unit_price,
  CAST(quantity * unit_price AS numeric(14, 2)) AS line_amount
FROM typed
ORDER BY order_id, line_no, _ingested_at DESC, _row_number DESC
