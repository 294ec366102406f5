{{ config(materialized='incremental', tags=['daily']) }}

select
    entry_date,
    count(*) as entries,
    sum(signed_amount) as net
from {{ ref('int_entries_enriched') }}
{% if is_incremental() %}
where entry_date > (select max(entry_date) from {{ this }})
{% endif %}
group by entry_date
