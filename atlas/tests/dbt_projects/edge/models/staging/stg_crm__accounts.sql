select id as account_id, name, tier from {{ source('crm', 'accounts') }}
