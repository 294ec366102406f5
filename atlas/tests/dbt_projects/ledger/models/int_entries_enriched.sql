{{ config(materialized='ephemeral') }}

select
    e.id,
    e.account_code,
    a.kind,
    e.entry_date,
    e.currency,
    {{ signed('e.amount', 'a.kind') }} as signed_amount
from {{ ref('entries') }} as e
inner join {{ ref('accounts') }} as a on a.account_code = e.account_code
