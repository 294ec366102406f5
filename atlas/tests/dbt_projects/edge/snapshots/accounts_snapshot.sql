{% snapshot accounts_snapshot %}
select * from {{ source('crm', 'accounts') }}
{% endsnapshot %}
