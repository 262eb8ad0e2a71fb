-- one row per account per snapshot day: did the account churn within the next 7 days (known a week later)
with source as (select * from {{ source('raw_synth', 'account_days') }})

select
    account_id || '@' || strftime(snapshot_date, '%Y-%m-%d') as snapshot_id,
    churned_7d::integer as churned_7d,
    snapshot_date::timestamp + interval 7 day as known_at
from source
