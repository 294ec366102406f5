{{ config(severity='warn') }}
select payment_id, amount
from {{ ref('stg_shop__payments') }}
where is_refund and amount > 20
