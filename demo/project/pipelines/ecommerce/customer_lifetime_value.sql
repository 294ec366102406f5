WITH order_totals AS (
  SELECT order_id, sum(line_amount) AS amount FROM chart.order_items GROUP BY order_id
)
SELECT
  c.customer_id,
  count(o.order_id) AS orders,
  coalesce(sum(t.amount), 0) AS lifetime_value,
  min(o.ordered_at) AS first_order_at,
  max(o.ordered_at) AS last_order_at
FROM chart.customers AS c
LEFT JOIN chart.orders AS o
  ON o.customer_id = c.customer_id AND coalesce(o.status, '') NOT IN ('cancelled', 'returned')
LEFT JOIN order_totals AS t ON t.order_id = o.order_id
GROUP BY c.customer_id
