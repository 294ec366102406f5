select
    id as payment_id,
    order_id,
    payment_method,
    {{ cents_to_dollars('amount_cents') }} as amount,
    is_refund
from {{ ref('raw_payments') }}
