with payments as (
    select
        order_id,
        {{ amount_per_method('amount') }}
        sum(amount) as total_paid
    from {{ ref('stg_shop__payments') }}
    where not is_refund
    group by order_id
)

select
    o.order_id,
    o.customer_id,
    o.order_date,
    o.status,
    o.amount,
    {%- for method in payment_methods() %}
    coalesce(p.{{ method }}_amount, 0) as {{ method }}_amount,
    {%- endfor %}
    coalesce(p.total_paid, 0) as total_paid
from {{ ref('stg_shop__orders') }} as o
left join payments as p on p.order_id = o.order_id
where o.amount >= {{ var('min_amount') }}
