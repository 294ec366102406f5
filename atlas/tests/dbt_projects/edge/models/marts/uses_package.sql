select {{ dbt_utils.star(ref('stg_crm__accounts')) }} from {{ ref('stg_crm__accounts') }}
