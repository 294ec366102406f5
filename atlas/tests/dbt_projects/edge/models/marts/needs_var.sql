select account_id, '{{ var("region") }}' as region from {{ ref('stg_crm__accounts') }}
