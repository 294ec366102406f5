select
    c.customer_id,
    c.first_name,
    c.email,
    count(o.order_id) as order_count,
    coalesce(sum(o.total_paid), 0) as lifetime_value,
    min(o.order_date) as first_order
from {{ ref('stg_shop__customers') }} as c
left join {{ ref('orders') }} as o on o.customer_id = c.customer_id
group by c.customer_id, c.first_name, c.email
