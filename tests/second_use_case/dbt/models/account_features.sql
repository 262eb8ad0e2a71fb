-- one row per account per snapshot day: what is known about the account that morning
with source as (select * from {{ source('raw_synth', 'account_days') }})

select
    account_id || '@' || strftime(snapshot_date, '%Y-%m-%d') as snapshot_id,
    snapshot_date,
    plan,
    region,
    tenure_days,
    monthly_spend,
    support_tickets_30d,
    region_churn_rate_prior
from source
