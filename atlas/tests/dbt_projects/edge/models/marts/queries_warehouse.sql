{% set tiers = run_query("select distinct tier from accounts") %}
select 1 as one
