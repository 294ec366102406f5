select order_id, total_paid
from {{ ref('orders') }}
where total_paid < 0
