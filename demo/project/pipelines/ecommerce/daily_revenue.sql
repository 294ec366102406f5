SELECT
  CAST(date_trunc('day', o.ordered_at) AS date) AS day,
  o.currency,
  count(DISTINCT o.order_id) AS orders,
  sum(i.line_amount) AS revenue
FROM chart.orders AS o
JOIN chart.order_items AS i ON i.order_id = o.order_id
WHERE coalesce(o.status, '') NOT IN ('cancelled', 'returned')
GROUP BY 1, 2
ORDER BY 1, 2
